"""generations: attempt_log (every provider call of a reply: model, time, wait before it, error kind)

Revision ID: generation_attempt_log
Revises: generation_streams
Create Date: 2026-12-03 12:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'generation_attempt_log'
down_revision = 'generation_streams'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_log', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_column('attempt_log')
