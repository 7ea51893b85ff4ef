"""the unique constraint renamed by the naming convention

Revision ID: 0003
Revises: 0002
Create Date: 2024-02-20 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_constraint('accounts_email_currency_key', 'accounts', type_='unique')
    op.create_unique_constraint(op.f('uq_accounts_email'), 'accounts', ['email', 'currency'])


def downgrade():
    op.drop_constraint(op.f('uq_accounts_email'), 'accounts', type_='unique')
    op.create_unique_constraint('accounts_email_currency_key', 'accounts', ['email', 'currency'])
