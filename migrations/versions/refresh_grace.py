"""user_sessions: refreshed_at (the refresh token grace period)

Revision ID: refresh_grace
Revises: signup_policy
Create Date: 2026-12-03 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'refresh_grace'
down_revision = 'signup_policy'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refreshed_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_column('refreshed_at')
