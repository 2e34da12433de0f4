"""A failed reply tells users the provider and a plain reason, never an internal address; admins, the logs and
the generation record keep the address."""

import pytest
from sqlalchemy import select

from tests.fakes import closed_port_url
from tests.support.accounts import AuthActions
from tests.support.admin import make_user
from tests.support.chat import start_chat
from webapp.extensions import db
from webapp.models import Generation

DOWN = closed_port_url() + "/v1"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "INHOUSE_API_BASE": DOWN, "RETRY_MAX_ATTEMPTS": 1}


def failed_reply_page(app, client, run_jobs, who):
    conversation_id = start_chat(client, f"hello from {who}", model="inhouse")
    run_jobs()
    return client.get(f"/chat/{conversation_id}").get_data(as_text=True), conversation_id


def test_users_see_the_provider_and_a_plain_reason_admins_and_the_record_see_the_address(app, client, run_jobs, caplog):
    address = DOWN.removeprefix("http://").removesuffix("/v1")
    AuthActions(client).signup("plain")
    page, conversation_id = failed_reply_page(app, client, run_jobs, "plain")
    assert "in-house model server unavailable" in page.lower()
    assert address not in page and DOWN not in page
    status = client.get(f"/chat/generations/{_generation_id(app, conversation_id)}/status").get_json()
    assert status["status"] == "failed" and address not in (status["error"] or "")
    assert address not in client.get(f"/chat/{conversation_id}/export.md").get_data(as_text=True)
    with app.app_context():
        assert address in db.session.scalar(
            select(Generation.error).where(Generation.id == _generation_id(app, conversation_id))
        )

    make_user(app, "root", role="admin")
    admin = app.test_client()
    AuthActions(admin).login("root")
    admin_page, _ = failed_reply_page(app, admin, run_jobs, "root")
    assert address in admin_page


def _generation_id(app, conversation_id):
    with app.app_context():
        return db.session.scalar(select(Generation.id).where(Generation.conversation_id == conversation_id))
