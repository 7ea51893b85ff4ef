"""orders

Revision ID: 2b3c4d5e6f70
Revises: 1a2b3c4d5e6f
Create Date: 2024-03-09 18:40:55.081924

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2b3c4d5e6f70'
down_revision = '1a2b3c4d5e6f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('placed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    # used by the reports: how many orders a customer placed
    op.execute("""
        CREATE FUNCTION customer_order_count(cid integer) RETURNS bigint
        LANGUAGE sql STABLE
        AS $$ SELECT count(*) FROM orders WHERE customer_id = cid $$
    """)
    # one account per e-mail address, whatever its case
    op.execute("CREATE UNIQUE INDEX uq_customers_email_lower ON customers (lower(email))")


def downgrade():
    op.execute("DROP INDEX uq_customers_email_lower")
    op.execute("DROP FUNCTION customer_order_count(integer)")
    op.drop_table('orders')
