"""One provider client per configuration in each process: connections kept between calls, a new key a new client."""

from sqlalchemy import select

from tests.fakes import FakeOpenAIServer
from tests.support.admin import save_models, save_provider
from tests.support.chat import send
from webapp.extensions import db
from webapp.models import Generation

FIRST_KEY, SECOND_KEY = "sk-test-first-0000000000001", "sk-test-second-000000000002"


def answered(app) -> list[str]:
    with app.app_context():
        return [g.status for g in db.session.scalars(select(Generation).order_by(Generation.id))]


def test_calls_share_a_connection_until_the_key_changes(app, client, admin, run_jobs):
    with FakeOpenAIServer(keep_alive=True) as server:
        save_provider(client, "openai", base_url=server.base_url, api_key=FIRST_KEY)
        save_models(client, enabled=["echo", "gpt-4o"], default="gpt-4o")
        send(client, "first call")
        run_jobs()
        after_first = server.connections  # (the pages may list the provider's models on their own connections)
        send(client, "second call")
        run_jobs()
        assert answered(app) == ["succeeded", "succeeded"]
        assert [r.header("authorization") for r in server.chat_requests] == [f"Bearer {FIRST_KEY}"] * 2
        assert server.connections == after_first, "the second call reused the first one's connection"

        save_provider(client, "openai", base_url=server.base_url, api_key=SECOND_KEY)
        send(client, "third call")
        before_third = server.connections
        run_jobs()
        assert answered(app) == ["succeeded"] * 3
        assert server.last_request.header("authorization") == f"Bearer {SECOND_KEY}"
        assert server.connections == before_third + 1, "a new key: a new client, with its own connection"
