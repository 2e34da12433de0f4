"""Calling the JSON APIs over real HTTP (urllib, or curl exactly as the documents write it), and the keys tests use."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

OPENAI_KEY = "sk-test-0123456789abcdef"
GEMINI_KEY = "AIzaTestKey0123456789abcdef"
USERNAME, PASSWORD = "charming_user", "secure_pwd"  # the API document's example user


@dataclass
class Reply:
    status: int
    headers: dict
    text: str

    @property
    def json(self):
        return json.loads(self.text)


def http(method: str, url: str, body=None, headers: dict | None = None, raw: bytes | None = None) -> Reply:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read().decode())


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def curl(command: str, base_url: str, **values) -> Reply:
    """Run a curl example as written, against ``base_url`` (status via -w)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    for name, value in values.items():
        command = command.replace(f"${name}", value)
    command = command.replace("http://localhost:8000", base_url).replace("http://127.0.0.1:8000", base_url)
    result = subprocess.run(
        ["bash", "-c", command + " -s -S -w '\\n%{http_code}'"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    text, _, status = result.stdout.rpartition("\n")
    return Reply(int(status), {}, text)
