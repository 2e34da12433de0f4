"""Fixtures for the LLM layer: an isolated instance folder and settings, and
session-wide fake provider servers (reset before each test)."""

from __future__ import annotations

import pytest

import webapp.llm as llm
from tests.support.api import OPENAI_KEY

PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_MODEL",
    "OPENAI_BASE_URL",
    "GEMINI_API_KEY",
    "GEMINI_API_BASE",
    "GOOGLE_API_KEY",
    "INHOUSE_API_BASE",
    "INHOUSE_API_KEY",
    "INHOUSE_MODEL",
    "LLM_MODELS",
    "DEFAULT_LLM_MODEL",
    "ECHO_DELAY",
    "LLM_REQUEST_TIMEOUT",
    "LLM_CONNECT_TIMEOUT",
)


@pytest.fixture(autouse=True)
def llm_instance(tmp_path, monkeypatch):
    """Every test gets its own instance folder and no provider settings from the developer's shell."""
    path = tmp_path / "instance"
    monkeypatch.setenv("SWITCHBOARD_INSTANCE_PATH", str(path))
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECHO_DELAY", "0")
    llm.configure(None, key_resolver=None, overrides=None)
    yield path
    llm.configure(None, key_resolver=None, overrides=None)


@pytest.fixture
def use_settings():
    """``use_settings(KEY=value, ...)``: configure webapp.llm as the app would."""

    def apply(**values):
        base = {"ECHO_DELAY": 0, "LLM_REQUEST_TIMEOUT": 10}
        base.update(values)
        llm.configure(base)
        return base

    return apply


@pytest.fixture
def openai_settings(openai_server, use_settings):
    """OpenAI pointed at the fake server, with a key."""
    use_settings(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY=OPENAI_KEY)
    return openai_server


@pytest.fixture(scope="session")
def litellm_module():
    """Import litellm once per session (it takes seconds)."""
    from webapp.llm.providers.litellm import import_litellm

    return import_litellm()
