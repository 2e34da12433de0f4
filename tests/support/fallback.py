"""Helpers for fallback tests: an app with OpenAI and Gemini set up against their fake servers, a model's
fallback chain, and one chat message run through a real RQ worker."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.accounts import AuthActions
from tests.support.chat import send
from tests.support.queue import run_queued_jobs
from webapp import create_app
from webapp.extensions import db
from webapp.fallbacks import DEFAULT_KINDS, save_chain
from webapp.models import Generation, User
from webapp.queue import get_redis

OPENAI_KEY = "sk-test-secret-key-0123456789"
GEMINI_KEY = "AIzaFakeKey0123456789abcdef"


def fallback_app(app_config, openai_server, gemini_server, **settings):
    """An app whose OpenAI and Gemini providers are the fakes; fresh tables and an empty Redis database."""
    app = create_app(
        {
            **app_config,
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai_server.base_url,
            "GEMINI_API_KEY": GEMINI_KEY,
            "GEMINI_API_BASE": gemini_server.url,
            "LLM_REQUEST_TIMEOUT": 5.0,  # roomy: the box may be busy; the timeout test sets a short one
            "RETRY_BACKOFF_BASE": 0.01,
            **settings,
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
        get_redis().flushdb()
    return app


def dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def set_chain(app, model_id: str, fallbacks: list[str], on=DEFAULT_KINDS) -> None:
    with app.app_context():
        save_chain(model_id, fallbacks, list(on))
        db.session.commit()


def signed_up(app, model_id: str, username: str = "alice"):
    """A test client signed in as a new user whose conversations start on ``model_id``."""
    client = app.test_client()
    AuthActions(client).signup(username)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        user.default_model = model_id
        db.session.commit()
    return client


def latest(app) -> Generation:
    with app.app_context():
        generation = db.session.scalar(select(Generation).order_by(Generation.id.desc()))
        db.session.expunge(generation)
        return generation


def chat_once(app, client, text="How is the weather on Venus?") -> Generation:
    """Send one message, run its job in a real RQ worker; the generation's record."""
    response = send(client, text)
    assert response.status_code == 302, response.get_data(as_text=True)
    run_queued_jobs(app)
    return latest(app)
