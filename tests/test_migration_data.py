"""The data steps of the migrations: existing conversations become one line of messages, existing duplicate
key names get a number so the new unique constraint holds, messages with files are marked so, and usage ledger
rows become part 0 of their reply."""

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from webapp import create_app
from webapp.accounts import create_user
from webapp.extensions import db
from webapp.models import Conversation
from webapp.paths import PROJECT_ROOT

MIGRATIONS = str(PROJECT_ROOT / "migrations")


def _drop_everything():
    db.drop_all()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


@pytest.fixture
def empty_database(instance_path, app_config):
    """An app whose database has no tables (the migrations make them), in its app context."""
    app = create_app(app_config)
    with app.app_context():
        _drop_everything()
        try:
            yield app
        finally:
            _drop_everything()
            db.engine.dispose()


def test_existing_rows_are_carried_over(empty_database):
    upgrade(directory=MIGRATIONS, revision="i15_user_sessions")
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, password_hash, role, is_disabled,"
                " default_options, created_at) VALUES (1, 'old', 'x', 'user', false, '{}',"
                " CURRENT_TIMESTAMP)"
            )
        )
        for number, name in enumerate(["laptop", "laptop", "laptop", "laptop (2)"], start=1):
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) VALUES"
                    " (:id, 1, :name, 'sb-x', :hash, CURRENT_TIMESTAMP)"
                ),
                {"id": number, "name": name, "hash": str(number) * 64},
            )
        conn.execute(
            text(
                "INSERT INTO conversations (id, user_id, title, model_id, options, created_at,"
                " updated_at) VALUES (1, 1, 't', 'echo', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        for number in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES"
                    " (:id, 1, 'user', 'm', CURRENT_TIMESTAMP)"
                ),
                {"id": number},
            )
    upgrade(directory=MIGRATIONS)
    with db.engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM api_keys ORDER BY id")).scalars().all()
        tree = conn.execute(text("SELECT id, parent_id, selected FROM messages ORDER BY id")).all()
        theme = conn.execute(text("SELECT theme FROM users")).scalar()
    assert names == ["laptop", "laptop (3)", "laptop (4)", "laptop (2)"]
    assert [tuple(row) for row in tree] == [(1, None, True), (2, 1, True), (3, 2, True)]
    assert theme == "system"


def test_messages_with_files_are_marked(empty_database):
    upgrade(directory=MIGRATIONS, revision="generation_attempt_log")
    user = create_user("old", "old password 123")  # users and conversations are as they were then
    db.session.flush()
    user_id = user.id
    db.session.add(Conversation(id=1, user_id=user_id, title="t", model_id="echo"))
    db.session.commit()
    db.session.remove()  # no transaction left open: the tables are dropped at the end
    with db.engine.begin() as conn:
        for number in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO messages (id, conversation_id, role, content, selected, created_at)"
                    " VALUES (:id, 1, 'user', 'm', true, CURRENT_TIMESTAMP)"
                ),
                {"id": number},
            )
        conn.execute(
            text(
                "INSERT INTO stored_files (id, sha256, content_type, size, data, created_at)"
                " VALUES (1, :sha, 'image/png', 1, :data, CURRENT_TIMESTAMP)"
            ),
            {"sha": "0" * 64, "data": b"x"},
        )
        conn.execute(
            text(
                "INSERT INTO attachments (id, file_id, message_id, user_id, filename, position, created_at)"
                " VALUES (1, 1, 2, :user, 'a.png', 0, CURRENT_TIMESTAMP)"
            ),
            {"user": user_id},
        )
    upgrade(directory=MIGRATIONS)
    with db.engine.connect() as conn:
        marked = conn.execute(text("SELECT id, has_files FROM messages ORDER BY id")).all()
    assert [(number, bool(has_files)) for number, has_files in marked] == [(1, False), (2, True)]


LEDGER_ROW = (
    "INSERT INTO usage_records (generation_id, {part}user_id, username, source, model_id, provider, status,"
    " input_tokens, output_tokens, cost, created_at)"
    " VALUES (7, {value}1, 'old', 'web', :model, 'openai', 'succeeded', 10, :output, :cost, CURRENT_TIMESTAMP)"
)


def test_ledger_rows_become_part_0_and_a_continuation_gets_a_row_of_its_own(empty_database):
    upgrade(directory=MIGRATIONS, revision="message_has_files")
    with db.engine.begin() as conn:
        conn.execute(text(LEDGER_ROW.format(part="", value="")), {"model": "gpt-4o", "output": 20, "cost": 0.5})
    upgrade(directory=MIGRATIONS)
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT generation_id, part FROM usage_records")).all() == [(7, 0)]
        row = LEDGER_ROW.format(part="part, ", value=":part, ")
        conn.execute(text(row), {"part": 1, "model": "gpt-4o-mini", "output": 5, "cost": 0.25})
    with pytest.raises(IntegrityError), db.engine.begin() as conn:  # one row per part
        conn.execute(text(row), {"part": 1, "model": "gpt-4o-mini", "output": 5, "cost": 0.25})

    downgrade(directory=MIGRATIONS, revision="message_has_files")  # one row per reply again, holding it all
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT generation_id, model_id, input_tokens, output_tokens, cost FROM usage_records")
        )
        assert [tuple(r) for r in rows] == [(7, "gpt-4o", 20, 25, 0.75)]
