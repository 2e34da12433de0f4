"""The ``llm`` click group (``flask llm`` / ``python -m webapp.llm``)."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

import webapp.llm as llm
from tests.fakes import closed_port_url
from tests.support.api import OPENAI_KEY
from webapp.llm.cli import llm as llm_cli


def run(*args, input=None):
    return CliRunner().invoke(llm_cli, list(args), input=input)


def test_models_lists_ids_and_aliases():
    result = run("models")
    assert result.exit_code == 0, result.output
    assert "echo: echo (aliases: offline)" in result.output
    assert "openai: gpt-3.5-turbo (aliases: 3.5, chatgpt)" in result.output


def test_models_with_options():
    result = run("models", "--options")
    assert result.exit_code == 0
    assert "  delay: float" in result.output and "Sampling temperature" in result.output


def test_prompt_echo_and_options():
    result = run("prompt", "hello there", "-o", "delay", "0")
    assert result.exit_code == 0, result.output
    assert result.output == "Echo (offline model): hello there\n"
    result = run("prompt", "-m", "offline", input="from stdin")
    assert result.exit_code == 0, result.output
    assert result.output == "Echo (offline model): from stdin\n"


def test_prompt_against_openai(openai_settings):
    result = run("prompt", "hi", "-m", "chatgpt", "-s", "be short", "-o", "temperature", "0.3")
    assert result.exit_code == 0, result.output
    assert result.output == "Fake answer to: hi\n"
    body = openai_settings.last_request.json
    assert body["temperature"] == 0.3 and body["messages"][0] == {"role": "system", "content": "be short"}


def test_prompt_errors_exit_non_zero(use_settings):
    for args, fragment in [
        (("prompt", "x", "-m", "nope"), "Unknown model: 'nope'"),
        (("prompt", "x", "-o", "delay", "99"), "delay"),
        (("prompt", "x", "-o", "colour", "red"), "unknown option 'colour'"),
        (("prompt", "x", "-m", "gpt-4o"), "OPENAI_API_KEY"),
    ]:
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "Error: " in result.output and fragment in result.output
    dead = closed_port_url()
    use_settings(INHOUSE_API_BASE=dead)
    result = run("prompt", "x", "-m", "inhouse")
    assert result.exit_code == 1 and f"in-house model server unavailable at {dead}" in result.output


def test_aliases_commands():
    assert run("aliases", "set", "fast", "4o-mini").output == "fast -> gpt-4o-mini\n"
    listing = run("aliases", "list").output
    assert "fast: gpt-4o-mini" in listing and "4o: gpt-4o" in listing
    assert llm.get_model("fast").model_id == "gpt-4o-mini"
    assert run("aliases", "remove", "fast").exit_code == 0
    result = run("aliases", "remove", "fast")
    assert result.exit_code == 1 and "No alias called 'fast'" in result.output
    result = run("aliases", "set", "x", "missing-model")
    assert result.exit_code == 1 and "Unknown model" in result.output


def test_providers_command(openai_server, use_settings):
    use_settings(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY=OPENAI_KEY)
    result = run("providers", "--remote")
    assert result.exit_code == 0, result.output
    assert "openai: OpenAI (configured)" in result.output and "  gpt-4o-mini" in result.output
    assert "inhouse: In-house model server (not configured)" in result.output


@pytest.mark.slow  # starts a process
def test_python_dash_m():
    result = subprocess.run(
        [sys.executable, "-m", "webapp.llm", "prompt", "plain", "-o", "delay", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo (offline model): plain\n"
    bad = subprocess.run(
        [sys.executable, "-m", "webapp.llm", "prompt", "x", "-m", "nope"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "Unknown model" in bad.stderr


def test_prompt_with_attachments_from_a_path_and_stdin(tmp_path):
    from tests.support.files import pdf, png

    photo = tmp_path / "photo.png"
    photo.write_bytes(png(12, 34))
    result = run("prompt", "-m", "echo", "-a", str(photo), "look")
    assert result.exit_code == 0, result.output
    assert "(received 1 image, 12×34 PNG) look" in result.output
    result = run("prompt", "-m", "echo", "-a", "-", "read", input=pdf("a", "b"))
    assert result.exit_code == 0, result.output
    assert "(received 1 PDF, 2 pages) read" in result.output
    result = run("prompt", "-m", "gpt-3.5-turbo", "-a", str(photo), "look")
    assert result.exit_code != 0 and "cannot read images" in result.output
    assert run("prompt", "-a", str(tmp_path / "missing.png"), "x").exit_code != 0
