"""The body of the tool's migrations/env.py: how Alembic runs against the application's database.

Online runs hold the migration lock and a lock timeout, refuse what the guards refuse, run in
one transaction and record the configuration that migrated the database; offline runs
(`upgrade --sql`) write PostgreSQL's SQL without connecting.
"""
import configparser
import os
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from .errors import Failure, NotOffline, install_excepthook
from .application import announce_database, engine, metadata, migrate_extension
from .as_written import replay_as_written
from .migration_hooks import configure_args
from .migration_safety import RunningStep, migration_run

_logging_configured = set()
# The carried-over settings that offline SQL follows (the others are about comparing or connecting).
OFFLINE_SETTINGS = {"transaction_per_migration", "version_table", "version_table_schema", "version_table_pk",
                    "transactional_ddl"}  # the alembic.ini files whose logging sections this process has applied


def run(**settings):
    """Run the migrations Alembic asked for, offline or online, with settings that the application's own env.py
    had (`adopt` carries them over): context.configure() keywords such as transaction_per_migration=True, and
    isolation_level="AUTOCOMMIT".

    Nothing here takes over the application's own process (`flask run`, gunicorn, a migration at
    start-up): its failures are raised as they are. Under a plain `flask db ...` command, which ends
    with the failure anyway, it is printed as one sentence, as db_manage.py's commands print it.
    """
    if under_flask_db():
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
        run_offline(settings)
    else:
        run_online(config, settings)


def under_flask_db():
    """Return True when this process is the `flask db ...` command line (Flask-Migrate's click group)."""
    import click

    context, names = click.get_current_context(silent=True), []
    while context is not None:
        names.append(context.info_name)
        context = context.parent
    return len(names) >= 2 and names[-2] == migrate_extension().migrate.command


def run_offline(settings=None):
    """Write the migrations' SQL (upgrade --sql) for PostgreSQL, without connecting."""
    carried = {k: v for k, v in (settings or {}).items() if k in OFFLINE_SETTINGS}
    context.configure(dialect_name="postgresql", target_metadata=metadata(), literal_binds=True, **carried)
    replay_as_written(context, metadata())
    running = RunningStep()
    try:
        with context.begin_transaction():
            context.run_migrations()
    except (Failure, CommandError):
        raise
    except Exception as exc:  # a revision's Python that needs the database (op.get_bind().execute(...).fetchall())
        if running.step is None:
            raise
        revision = running.step.split(" -> ")[-1].split(",")[0]
        raise NotOffline(f"Migration {running.step} cannot be written as SQL ({type(exc).__name__}: {exc}): it reads "
                      "the database as it runs, which offline SQL cannot; give a range that starts after it, as in "
                      f"`python db_manage.py upgrade --sql {revision}:head`.") from exc
    finally:
        running.close()


def run_online(config, settings=None):
    """Run the migrations on the application's database, in one transaction.

    A caller may pass its own connection in config.attributes["connection"] (Alembic's
    cookbook recipe): the migrations then run inside that caller's transaction, as `reset`
    does so that a failed migration also undoes its drops. An engine passed there (as
    pytest-alembic does) is used instead of the application's.
    """
    announce_database()
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        return run_on(connectable, settings)
    with (connectable or engine()).connect() as connection:
        run_on(connection, settings)


def run_on(connection, settings=None):
    """Run the migrations on connection: one at a time (advisory lock), with a lock_timeout, in one transaction
    (or one per revision, or none, as the application's env.py had it)."""
    settings = dict(settings or {})
    if settings.pop("isolation_level", None) == "AUTOCOMMIT" and not connection.in_transaction():
        connection.execution_options(isolation_level="AUTOCOMMIT")  # each statement commits, as it did
    context.configure(connection=connection, target_metadata=metadata(),
                      **configure_args({**migrate_extension().configure_args, **settings}))
    replay_as_written(context, metadata())
    migration_run(connection, context)
