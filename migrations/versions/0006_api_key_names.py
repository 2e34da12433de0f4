"""api keys: names unique per user

Revision ID: i16a_api_key_names
Revises: i15_user_sessions
Create Date: 2026-12-02 04:45:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'i16a_api_key_names'
down_revision = 'i15_user_sessions'
branch_labels = None
depends_on = None


def upgrade():
    # Keys created before names were unique: the later ones of a name get " (2)", " (3)", ...
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, user_id, name FROM api_keys ORDER BY id")).all()
    taken = {(user_id, name) for _id, user_id, name in rows}
    seen = set()
    for key_id, user_id, name in rows:
        if (user_id, name) not in seen:
            seen.add((user_id, name))
            continue
        number = 2
        while (user_id, f"{name[:90]} ({number})") in taken:
            number += 1
        new_name = f"{name[:90]} ({number})"
        taken.add((user_id, new_name))
        seen.add((user_id, new_name))
        connection.execute(sa.text("UPDATE api_keys SET name = :name WHERE id = :id"), {"name": new_name, "id": key_id})
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_api_keys_user_id_name', ['user_id', 'name'])


def downgrade():
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint('uq_api_keys_user_id_name', type_='unique')
