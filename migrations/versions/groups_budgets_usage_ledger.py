"""groups (model allow-lists, per-member and pooled limits), monthly budgets, and the usage ledger

Revision ID: groups_budgets_usage_ledger
Revises: i16c_user_theme
Create Date: 2026-12-03 08:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'groups_budgets_usage_ledger'
down_revision = 'i16c_user_theme'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('models', sa.JSON(), nullable=False),
    sa.Column('member_requests_per_minute', sa.Integer(), nullable=True),
    sa.Column('member_tokens_per_day', sa.Integer(), nullable=True),
    sa.Column('member_monthly_budget', sa.Double(), nullable=True),
    sa.Column('pooled_requests_per_minute', sa.Integer(), nullable=True),
    sa.Column('pooled_tokens_per_day', sa.Integer(), nullable=True),
    sa.Column('pooled_monthly_budget', sa.Double(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('group_members',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'user_id')
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_members_user_id'), ['user_id'], unique=False)
    op.create_table('usage_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('generation_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('group_name', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('cost', sa.Double(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('generation_id')
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_records_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_records_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_records_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('monthly_budget', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('primary_group_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_primary_group_id'), ['primary_group_id'], unique=False)
        batch_op.create_foreign_key(
            'fk_users_primary_group_id_groups', 'groups', ['primary_group_id'], ['id'], ondelete='SET NULL'
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('fk_users_primary_group_id_groups', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_users_primary_group_id'))
        batch_op.drop_column('primary_group_id')
        batch_op.drop_column('monthly_budget')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_records_user_id'))
        batch_op.drop_index(batch_op.f('ix_usage_records_group_id'))
        batch_op.drop_index(batch_op.f('ix_usage_records_created_at'))
    op.drop_table('usage_records')
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_members_user_id'))
    op.drop_table('group_members')
    op.drop_table('groups')
