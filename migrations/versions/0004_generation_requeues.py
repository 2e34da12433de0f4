"""generations: how many times recovery re-queued the job (bounded)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requeues', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_column('requeues')
