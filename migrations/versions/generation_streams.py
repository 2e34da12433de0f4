"""generations: streams (whether the client reads the reply as it grows)

Revision ID: generation_streams
Revises: refresh_grace
Create Date: 2026-12-03 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'generation_streams'
down_revision = 'refresh_grace'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('streams', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.alter_column('streams', server_default=None)


def downgrade():
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_column('streams')
