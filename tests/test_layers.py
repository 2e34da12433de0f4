"""The layers of docs/architecture.md hold: no module imports from a floor above its own, pages and jobs never
import each other, the domain's own order holds, and every job named by a dotted string is a function in workers/.
"""

import ast
import importlib
import re
from pathlib import Path

from webapp.paths import PROJECT_ROOT

# Lowest first. A module may import from its own floor and the ones below. Pages and jobs share a height but are
# separate floors: neither may import the other (pages queue jobs by dotted name, through the domain).
FLOORS = [
    ("storage", ["webapp/models.py", "webapp/extensions.py", "webapp/database.py", "webapp/paths.py"]),
    (
        "LLM layer and queue",
        [
            "webapp/llm",
            "webapp/queue.py",
            "webapp/live.py",
            "webapp/live_feed.py",
            "webapp/logs.py",
            "webapp/fairqueue.py",
            "webapp/cooldowns.py",
        ],
    ),
    (
        "domain: settings and records",
        [
            "webapp/config.py",
            "webapp/site_settings.py",
            "webapp/audit.py",
            "webapp/accounts/throttle.py",
            "webapp/message_size.py",
            "webapp/markdown.py",
            "webapp/json_input.py",
            "webapp/usage.py",
            "webapp/prices.py",
            "webapp/groups.py",
            "webapp/accounts/signed_in.py",
            "webapp/accounts/sessions.py",
            "webapp/accounts/api_keys.py",
            "webapp/attachments.py",
        ],
    ),
    (
        "domain: rules",
        [
            "webapp/accounts/__init__.py",
            "webapp/signups.py",
            "webapp/access.py",
            "webapp/limits.py",
            "webapp/provider_checks.py",
            "webapp/metrics.py",
            "webapp/sso.py",
            "webapp/scheduling.py",
            "webapp/fallbacks.py",
        ],
    ),
    ("domain: choices and summaries", ["webapp/model_options.py", "webapp/usage_summary.py"]),
    (
        "domain: conversations and generations",
        [
            "webapp/generations.py",
            "webapp/stopping.py",
            "webapp/reply_events.py",
            "webapp/conversations",
            "webapp/sharing.py",
        ],
    ),
    (
        "pages and API",
        [
            "webapp/auth",
            "webapp/chat",
            "webapp/account",
            "webapp/model_settings",
            "webapp/admin",
            "webapp/share",
            "webapp/api",
            "webapp/ops",
            "webapp/errors.py",
            "webapp/security.py",
            "webapp/request_body.py",
            "webapp/root.py",
        ],
    ),
    (
        "jobs",
        [
            "workers/generation.py",
            "workers/history.py",
            "workers/routing.py",
            "workers/admin.py",
            "workers/recovery.py",
            "workers/threaded.py",
            "workers/base.py",
        ],
    ),
    (
        "wiring",
        [
            "webapp/app.py",
            "webapp/cli.py",
            "supervisor.py",
            "webapp/__init__.py",
            "workers/__init__.py",
            "workers/__main__.py",
            "workers/app_context.py",
        ],
    ),
]
SIBLINGS = {("pages and API", "jobs"), ("jobs", "pages and API")}
# Upward imports with a reason. A job runs inside the app the factory builds.
ALLOWED = {("workers/generation.py", "workers/app_context.py"), ("workers/admin.py", "workers/app_context.py")}


def floor(relative: str) -> int | None:
    for index, (_name, places) in enumerate(FLOORS):
        if any(relative == place or relative.startswith(place + "/") for place in places):
            return index
    return None


def target(module: str) -> str | None:
    path = module.replace(".", "/")
    if (PROJECT_ROOT / f"{path}.py").exists():
        return f"{path}.py"
    if (PROJECT_ROOT / path / "__init__.py").exists():
        return f"{path}/__init__.py"
    return None


def imported(path: Path, relative: str):
    package = relative[: -len("/__init__.py")] if relative.endswith("__init__.py") else relative.rsplit("/", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split("/")[: len(package.split("/")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def sources():
    for path in sorted(
        [*PROJECT_ROOT.glob("webapp/**/*.py"), *PROJECT_ROOT.glob("workers/**/*.py"), PROJECT_ROOT / "supervisor.py"]
    ):
        yield path, str(path.relative_to(PROJECT_ROOT))


def test_every_module_has_a_floor_and_nothing_imports_upward_or_sideways():
    wrong, unplaced = [], []
    for path, relative in sources():
        own = floor(relative)
        if own is None:
            unplaced.append(relative)
            continue
        for module in imported(path, relative):
            if module in ("webapp", "workers") or not module.startswith(("webapp", "workers", "supervisor")):
                continue  # the packages themselves: `from . import x` names x, checked on its own
            if (place := target(module)) is None:
                continue
            theirs = floor(place)
            if theirs is None or (relative, place) in ALLOWED:
                continue
            names = (FLOORS[own][0], FLOORS[theirs][0])
            if theirs > own or names in SIBLINGS:
                wrong.append(f"{relative} ({names[0]}) imports {module} ({names[1]})")
    assert not unplaced, f"modules on no floor (add them to FLOORS and docs/architecture.md): {unplaced}"
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_the_llm_layer_imports_nothing_of_the_app():
    for path, relative in sources():
        if relative.startswith("webapp/llm/"):
            for module in imported(path, relative):
                assert not module.startswith(("webapp", "workers", "flask")) or module.startswith("webapp.llm"), (
                    f"{relative} imports {module}"
                )


JOB_NAME_RE = re.compile(r"""["'](workers\.[a-z_]+\.[a-z_]+)["']""")


def test_every_job_named_by_a_dotted_string_is_a_function_in_workers():
    names = set()
    for path, _relative in sources():
        names.update(JOB_NAME_RE.findall(path.read_text()))
    assert names, "no job names found: the pattern no longer matches how jobs are queued"
    for name in sorted(names):
        module, _, function = name.rpartition(".")
        assert (PROJECT_ROOT / (module.replace(".", "/") + ".py")).exists(), f"{name}: no module {module}"
        assert callable(getattr(importlib.import_module(module), function, None)), f"{name}: no function {function}"
