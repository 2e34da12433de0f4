"""Single sign-on (users.sso_subject, users.break_glass) and shared conversation links

Revision ID: sso_and_shared_links
Revises: groups_budgets_usage_ledger
"""
from alembic import op
import sqlalchemy as sa


revision = 'sso_and_shared_links'
down_revision = 'groups_budgets_usage_ledger'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sso_subject', sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column('break_glass', sa.Boolean(), server_default='0', nullable=False))
        batch_op.create_unique_constraint('uq_users_sso_subject', ['sso_subject'])

    op.create_table('shared_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('turns', sa.JSON(), nullable=False),
    sa.Column('system_prompt', sa.Text(), nullable=True),
    sa.Column('include_system_prompt', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('snapshot_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shared_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shared_links_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shared_links_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shared_links_token'), ['token'], unique=True)


def downgrade():
    with op.batch_alter_table('shared_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shared_links_token'))
        batch_op.drop_index(batch_op.f('ix_shared_links_owner_id'))
        batch_op.drop_index(batch_op.f('ix_shared_links_conversation_id'))
    op.drop_table('shared_links')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_sso_subject', type_='unique')
        batch_op.drop_column('break_glass')
        batch_op.drop_column('sso_subject')
