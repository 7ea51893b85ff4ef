"""The body of the tool's migrations/env.py: how Alembic runs against the application's database.

Online runs hold the migration lock and a lock timeout, refuse what the guards refuse, run in
one transaction and record the configuration that migrated the database; offline runs
(`upgrade --sql`) write PostgreSQL's SQL without connecting.
"""
import configparser
import os
from logging.config import fileConfig

import alembic_postgresql_enum  # noqa: F401  (creates, alters and drops PostgreSQL enum types)
from alembic import context
from sqlalchemy.engine import Connection

from .errors import Failure, install_excepthook
from .application import announce_database, engine, metadata, migrate_extension
from .migration_hooks import configure_args
from .migration_safety import migration_run

_logging_configured = set()  # the alembic.ini files whose logging sections this process has applied


def run():
    """Run the migrations Alembic asked for, offline or online.

    A failure that reaches the top of a plain `flask db ...` process is printed as one sentence
    (callers in this process, such as `reset`, catch it before that).
    """
    install_excepthook()
    config = context.config
    ini = config.config_file_name
    if ini and ini not in _logging_configured and os.path.exists(ini):  # once per process: lint runs env.py per revision
        try:
            fileConfig(ini, disable_existing_loggers=False)
        except RuntimeError as exc:  # Python 3.11+: "... is an empty file"
            raise Failure(f"{ini} is empty: run `python db_manage.py adopt` to write the tool's again, or restore "
                          "it from version control.") from exc
        except (KeyError, configparser.Error) as exc:  # logging.config reports a missing section as KeyError
            raise Failure(f"The logging sections of {ini} are broken ({exc}): fix them, or copy "
                          "them from Flask-Migrate's alembic.ini.") from exc
        _logging_configured.add(ini)
    if context.is_offline_mode():
        run_offline()
    else:
        run_online(config)


def run_offline():
    """Write the migrations' SQL (upgrade --sql) for PostgreSQL, without connecting."""
    context.configure(dialect_name="postgresql", target_metadata=metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online(config):
    """Run the migrations on the application's database, in one transaction.

    A caller may pass its own connection in config.attributes["connection"] (Alembic's
    cookbook recipe): the migrations then run inside that caller's transaction, as `reset`
    does so that a failed migration also undoes its drops. An engine passed there (as
    pytest-alembic does) is used instead of the application's.
    """
    announce_database()
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        return run_on(connectable)
    with (connectable or engine()).connect() as connection:
        run_on(connection)


def run_on(connection):
    """Run the migrations on connection: one at a time (advisory lock), with a lock_timeout, in one transaction."""
    context.configure(connection=connection, target_metadata=metadata(),
                      **configure_args(migrate_extension().configure_args))
    migration_run(connection, context)
