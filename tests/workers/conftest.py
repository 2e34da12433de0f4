"""The fallback and cooldown tests' apps: each against its own fake OpenAI and Gemini servers."""

import pytest

from tests.fakes import FakeGeminiServer, FakeOpenAIServer
from tests.support.fallback import dispose, fallback_app


@pytest.fixture
def servers():
    with FakeOpenAIServer() as openai_server, FakeGeminiServer() as gemini_server:
        yield openai_server, gemini_server


@pytest.fixture
def make_app(app_config, instance_path, servers):
    apps = []

    def make(**settings):
        apps.append(fallback_app(app_config, *servers, **settings))
        return apps[-1]

    yield make
    for app in apps:
        dispose(app)
