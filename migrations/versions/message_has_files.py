"""messages: has_files (a page or a reply's history looks up a message's files only when it has some)

Revision ID: message_has_files
Revises: generation_attempt_log
Create Date: 2026-12-03 15:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'message_has_files'
down_revision = 'generation_attempt_log'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('has_files', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(
        "UPDATE messages SET has_files = true"
        " WHERE EXISTS (SELECT 1 FROM attachments WHERE attachments.message_id = messages.id)"
    )


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('has_files')
