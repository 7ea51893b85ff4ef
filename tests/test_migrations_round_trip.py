"""The migration history, round trip: pytest-alembic's built-in tests on a fresh, empty database.

Upgrades to head one revision at a time, downgrades to base one at a time and up again,
checks a single head, and that the migrated schema equals the models.
"""
import pytest
from pytest_alembic import Config
from pytest_alembic.tests import (  # noqa: F401  (collected as tests of this module)
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from app import create_app
from db_manage_tool import dbadmin
from db_manage_tool.migration_hooks import alembic_config as project_alembic_config


@pytest.fixture
def alembic_config(missing_database_url):
    """Flask-Migrate's Alembic configuration, inside the context of an app bound to a new empty database."""
    dbadmin.create_database(missing_database_url)
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": missing_database_url})
    with app.app_context():
        yield Config(alembic_config=project_alembic_config())


@pytest.fixture
def alembic_engine(missing_database_url, alembic_config):
    """An engine on the same new database, for pytest-alembic's connection."""
    engine = create_engine(missing_database_url, poolclass=NullPool)
    yield engine
    engine.dispose()
