"""item name index, again if a hotfix made it already

Revision ID: d4e5f6a7b8c9
Revises: c3d4e5f6a7b8
Create Date: 2024-05-14 11:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'd4e5f6a7b8c9'
down_revision = 'c3d4e5f6a7b8'
branch_labels = None
depends_on = None


def upgrade():
    # Written for the env.py's AUTOCOMMIT: the second CREATE fails (as it did where a hotfix had made the
    # index by hand) and what follows still runs; in one transaction, the failure would abort the rest.
    op.execute("CREATE INDEX ix_items_name_hotfix ON items (name)")
    try:
        op.execute("CREATE INDEX ix_items_name_hotfix ON items (name)")
    except sa.exc.ProgrammingError:
        pass
    op.execute("DROP INDEX ix_items_name_hotfix")


def downgrade():
    pass
