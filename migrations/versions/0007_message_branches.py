"""messages: a tree (parent message, selected sibling) so edits make branches

Revision ID: i16b_message_branches
Revises: i16a_api_key_names
Create Date: 2026-12-02 04:56:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'i16b_message_branches'
down_revision = 'i16a_api_key_names'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('selected', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.create_index(batch_op.f('ix_messages_parent_id'), ['parent_id'], unique=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.alter_column('selected', server_default=None)
    # Conversations so far were one line: each message follows the one before it.
    connection = op.get_bind()
    previous = {}
    for message_id, conversation_id in connection.execute(
            sa.text("SELECT id, conversation_id FROM messages ORDER BY conversation_id, id")).all():
        if conversation_id in previous:
            connection.execute(sa.text("UPDATE messages SET parent_id = :parent WHERE id = :id"),
                               {"parent": previous[conversation_id], "id": message_id})
        previous[conversation_id] = message_id


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_parent_id'))
        batch_op.drop_column('selected')
        batch_op.drop_column('parent_id')
