"""users: theme (system, light or dark)

Revision ID: i16c_user_theme
Revises: i16b_message_branches
Create Date: 2026-12-02 05:02:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'i16c_user_theme'
down_revision = 'i16b_message_branches'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('theme', sa.String(length=8), nullable=False, server_default='system'))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('theme', server_default=None)


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('theme')
