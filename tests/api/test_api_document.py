"""The API document's curl examples (docs/api.md), parsed out of it and run with curl as written against a real
server. Only the port is substituted, in one place (a test must not take the machine's port 8000)."""

import json
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.support.api import PASSWORD, USERNAME
from webapp.config import load_config
from webapp.paths import PROJECT_ROOT

DOCUMENT = PROJECT_ROOT / "docs" / "api.md"
CURL_BLOCK_RE = re.compile(r"```bash\n(curl .*?)\n```", re.S)
DOCUMENTED_PORT = ":8000"


def examples() -> list[str]:
    return CURL_BLOCK_RE.findall(DOCUMENT.read_text())


def run(command: str, port: int, **placeholders) -> tuple[int, str]:
    command = command.replace(DOCUMENTED_PORT, f":{port}")  # the one substitution
    for name, value in placeholders.items():  # the values the document asks the reader to fill in
        command = command.replace(f"${name}", value)
    result = subprocess.run(
        ["bash", "-c", command + " -s -S -w '\\n%{http_code}'"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, (command, result.stderr)
    text, _, status = result.stdout.rpartition("\n")
    return int(status), text


def test_make_run_serves_where_the_document_says(instance_path):
    assert len(examples()) == 6 and all(DOCUMENTED_PORT in command for command in examples())
    # `make run` runs supervisor.py, whose --port defaults to the PORT setting (unset here: its default).
    assert f":{load_config()['PORT']}" == DOCUMENTED_PORT
    assert "http://127.0.0.1:8000/" in (PROJECT_ROOT / "README.md").read_text()


def test_every_curl_example_runs_as_written(server, worker, openai_server, gemini_server):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    port = urlsplit(server).port
    welcome, signup, token, refresh, supported, completion = examples()

    status, text = run(welcome, port)
    assert status == 200 and json.loads(text) == {"message": "Welcome to the LLM API!"}
    status, text = run(signup, port)
    assert status == 201 and json.loads(text) == {"message": "User created successfully"}
    status, text = run(token, port, USERNAME=USERNAME, PASSWORD=PASSWORD)
    assert status == 200
    tokens = json.loads(text)
    status, text = run(refresh, port, REFRESH_TOKEN=tokens["refresh"])
    assert status == 200 and "access" in json.loads(text)  # (and a rotated refresh token)
    status, text = run(supported, port, ACCESS_TOKEN=tokens["access"])
    assert status == 200 and "gemini-1.5-pro" in json.loads(text)["models"]
    status, text = run(completion, port, ACCESS_TOKEN=tokens["access"])
    assert status == 200, text
    answer = json.loads(text)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "Fake answer to: How is the weather on Venus?"
