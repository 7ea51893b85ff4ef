"""account currency: e-mail unique per currency (still without the convention)

Revision ID: 0002
Revises: 0001
Create Date: 2023-05-02 08:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('accounts', sa.Column('currency', sa.String(length=3), nullable=False, server_default='EUR'))
    op.alter_column('accounts', 'currency', server_default=None)
    op.drop_constraint('accounts_email_key', 'accounts', type_='unique')
    op.create_unique_constraint(None, 'accounts', ['email', 'currency'])


def downgrade():
    op.drop_constraint('accounts_email_currency_key', 'accounts', type_='unique')
    op.create_unique_constraint(None, 'accounts', ['email'])
    op.drop_column('accounts', 'currency')
