"""docs/api.md, run as a reader would: every ```bash block, in order, in one bash shell (so the variables the
document sets carry over), against a real server with a worker. The one change: the port (a test must not take
the machine's port 8000). Every ```json sample must be valid JSON."""

import json
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from webapp.config import load_config
from webapp.paths import PROJECT_ROOT

DOCUMENT = PROJECT_ROOT / "docs" / "api.md"
BLOCK_RE = re.compile(r"```(bash|json|python)\n(.*?)\n```", re.S)
DOCUMENTED_PORT = ":8000"
MARK = "@@example-done@@"


def blocks(kind: str) -> list[str]:
    return [text for block_kind, text in BLOCK_RE.findall(DOCUMENT.read_text()) if block_kind == kind]


def run_in_one_shell(commands: list[str], port: int) -> list[str]:
    """Each command's output, the commands run one after another in a single bash (as a reader's terminal)."""
    script = "\n".join(f"{command.replace(DOCUMENTED_PORT, f':{port}')}\necho\necho {MARK}" for command in commands)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    outputs = result.stdout.split(f"{MARK}\n")
    assert len(outputs) == len(commands) + 1, result.stdout
    return [output.strip() for output in outputs[:-1]]


def test_the_document_serves_where_make_run_does_and_its_samples_are_json(instance_path):
    assert f":{load_config()['PORT']}" == DOCUMENTED_PORT  # make run's --port default
    for command in blocks("bash"):
        assert "127.0.0.1:8000" in command or "localhost:8000" in command, command
    for sample in blocks("json"):
        json.loads(sample.replace("...", ""))  # abbreviated strings are still strings
    text = DOCUMENT.read_text()
    for leftover in ("views.py", "settings.py", "Django", "llm_api", "manage.py", "uv "):
        assert leftover not in text, leftover


def test_every_example_runs_as_written(server, worker, openai_server, gemini_server):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    commands = blocks("bash")
    outputs = run_in_one_shell(commands, urlsplit(server).port)
    welcome, signup, token, keep_tokens, refresh, supported, echo, openai = outputs

    assert json.loads(welcome) == {"message": "Welcome to the LLM API!"}
    assert json.loads(signup) == {"message": "User created successfully"}
    assert set(json.loads(token)) == {"access", "refresh"}
    assert keep_tokens.startswith("access token: eyJ")
    assert set(json.loads(refresh)) == {"access", "refresh"}
    assert "gemini-1.5-pro" in json.loads(supported)["models"] and gemini_server.requests
    answer = json.loads(echo)
    assert (
        answer["object"] == "chat.completion"
        and "How is the weather on Venus?" in answer["choices"][0]["message"]["content"]
    )
    answer = json.loads(openai)
    assert answer["object"] == "chat.completion" and answer["model"] == "gpt-3.5-turbo"
    assert answer["choices"][0]["message"]["content"] == "Fake answer to: How is the weather on Venus?"


@pytest.mark.slow  # starts a process
def test_the_python_example_runs_as_written(server, worker, api_key):
    [example] = blocks("python")
    env = {"SWITCHBOARD_API_KEY": api_key, "PATH": "/usr/bin:/bin"}
    code = example.replace(DOCUMENTED_PORT, f":{urlsplit(server).port}")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "Hello" in result.stdout
