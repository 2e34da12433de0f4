"""The layers of the README's Layout section hold: no module imports from a floor above its own."""

import ast
from pathlib import Path

from webapp.paths import PROJECT_ROOT

# Lowest first. A module may import from its own floor and the ones below.
FLOORS = [
    ("storage", ["webapp/models.py", "webapp/extensions.py", "webapp/database.py", "webapp/paths.py"]),
    ("LLM layer and queue", ["webapp/llm", "webapp/queue.py", "webapp/live.py", "webapp/observability.py"]),
    (
        "domain",
        [
            "webapp/accounts.py",
            "webapp/sessions.py",
            "webapp/throttle.py",
            "webapp/conversations.py",
            "webapp/generations.py",
            "webapp/access.py",
            "webapp/limits.py",
            "webapp/usage.py",
            "webapp/groups.py",
            "webapp/audit.py",
            "webapp/api_keys.py",
            "webapp/admin_settings.py",
            "webapp/connection_tests.py",
            "webapp/model_options.py",
            "webapp/markdown.py",
            "webapp/monitoring.py",
            "webapp/user_defaults.py",
            "webapp/json_input.py",
            "webapp/reply_events.py",
            "webapp/config.py",
            "webapp/sso.py",
        ],
    ),
    (
        "pages, API and workers",
        [
            "webapp/auth",
            "webapp/chat",
            "webapp/settings",
            "webapp/model_settings",
            "webapp/admin",
            "webapp/api",
            "webapp/ops",
            "webapp/errors.py",
            "webapp/security.py",
            "webapp/request_body.py",
            "webapp/app.py",
            "webapp/root.py",
            "webapp/cli.py",
            "webapp/serve.py",
            "webapp/__init__.py",
            "workers",
        ],
    ),
]


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
        return path
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


def test_every_module_has_a_floor_and_nothing_imports_upward():
    upward, unplaced = [], []
    for path in sorted([*PROJECT_ROOT.glob("webapp/**/*.py"), *PROJECT_ROOT.glob("workers/**/*.py")]):
        relative = str(path.relative_to(PROJECT_ROOT))
        own = floor(relative)
        if own is None:
            unplaced.append(relative)
            continue
        for module in imported(path, relative):
            if not module.startswith(("webapp", "workers")) or (place := target(module)) is None:
                continue
            if (theirs := floor(place)) is not None and theirs > own:
                upward.append(f"{relative} ({FLOORS[own][0]}) imports {module} ({FLOORS[theirs][0]})")
    assert not unplaced, f"modules on no floor (add them to FLOORS and the README): {unplaced}"
    assert not upward, "\n".join(sorted(set(upward)))
