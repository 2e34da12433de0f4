"""usage_records: part (a reply continued by a fallback has a ledger row per part, each naming its model),
unique per (generation_id, part) instead of per generation_id

Revision ID: usage_record_parts
Revises: message_has_files
Create Date: 2026-12-03 17:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'usage_record_parts'
down_revision = 'message_has_files'
branch_labels = None
depends_on = None

# The unique constraint on generation_id was made unnamed: SQLite's batch copy names it by this convention,
# PostgreSQL named it itself.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _generation_id_unique() -> str:
    if op.get_bind().dialect.name == 'postgresql':
        return 'usage_records_generation_id_key'
    return 'uq_usage_records_generation_id'


def upgrade():
    with op.batch_alter_table('usage_records', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column('part', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint(_generation_id_unique(), type_='unique')
        batch_op.create_unique_constraint('uq_usage_records_generation_id_part', ['generation_id', 'part'])


def downgrade():
    # One row per generation again: each reply's continuations fold into its first row.
    op.execute(
        "UPDATE usage_records SET"
        " input_tokens = (SELECT SUM(u.input_tokens) FROM usage_records u"
        " WHERE u.generation_id = usage_records.generation_id),"
        " output_tokens = (SELECT SUM(u.output_tokens) FROM usage_records u"
        " WHERE u.generation_id = usage_records.generation_id),"
        " cost = (SELECT SUM(u.cost) FROM usage_records u WHERE u.generation_id = usage_records.generation_id)"
        " WHERE part = 0"
    )
    op.execute("DELETE FROM usage_records WHERE part > 0")
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_constraint('uq_usage_records_generation_id_part', type_='unique')
        batch_op.create_unique_constraint(_generation_id_unique(), ['generation_id'])
        batch_op.drop_column('part')
