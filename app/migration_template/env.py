"""Alembic environment of this project; the comparison settings live in app/migration_hooks.py."""
import logging
from logging.config import fileConfig

import alembic_postgresql_enum  # noqa: F401  (creates, alters and drops PostgreSQL enum types)
from alembic import context
from flask import current_app
from sqlalchemy.engine import Connection

from app.migration_safety import migration_run, record_environment

config = context.config
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

migrate_ext = current_app.extensions["migrate"]


def run_migrations_offline():
    """Write the migrations' SQL (upgrade --sql) for PostgreSQL, without connecting."""
    context.configure(dialect_name="postgresql", target_metadata=migrate_ext.db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run the migrations on the application's database, in one transaction.

    A caller may pass its own connection in config.attributes["connection"] (Alembic's
    cookbook recipe): the migrations then run inside that caller's transaction, as
    `reset` does so that a failed migration also undoes its drops. An engine passed
    there (as pytest-alembic does) is used instead of the application's.
    """
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        return run_migrations_on(connectable)
    with (connectable or migrate_ext.db.engine).connect() as connection:
        run_migrations_on(connection)


def run_migrations_on(connection):
    """Run the migrations on connection: one at a time (advisory lock), with a lock_timeout, in one transaction."""
    context.configure(connection=connection, target_metadata=migrate_ext.db.metadata, **migrate_ext.configure_args)
    with migration_run(connection, context):
        with context.begin_transaction():
            context.run_migrations()
            record_environment(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
