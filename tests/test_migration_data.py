"""The data steps of the branches and key-name migrations: existing conversations become one line of
messages, and existing duplicate key names get a number so the new unique constraint holds."""

from flask_migrate import upgrade
from sqlalchemy import text

from webapp import create_app
from webapp.extensions import db
from webapp.paths import PROJECT_ROOT

MIGRATIONS = str(PROJECT_ROOT / "migrations")


def test_existing_rows_are_carried_over(instance_path, app_config):
    app = create_app(app_config)
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        try:
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
        finally:
            db.drop_all()
            with db.engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            db.engine.dispose()
