"""Safe migration runs, called by migrations/env.py (so `flask db upgrade` gets them too).

- One migration at a time: a PostgreSQL advisory lock with a fixed key, waited for without
  a timeout (saying once that it waits).
- A lock_timeout on the migration's own statements (MIGRATION_LOCK_TIMEOUT, default 10 s),
  so a migration queued behind a long transaction fails fast instead of blocking the table.
- A failure named in one sentence: the revision, the database's message, and that nothing
  was applied (the run is one transaction).
- The configuration that migrated the database recorded in db_manage_metadata.
"""
import logging
import math
import os
from contextlib import contextmanager

import click
from alembic.util import CommandError
from psycopg2 import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from .application import config_name, lock_timeout, setting
from .errors import Failure
from .production_guard import OVERRIDE_VARIABLE, refuse_on_production
from .revisions import ensure_at_head, ensure_known, ensure_single_head, reaches_base

# A fixed key for this application's migrations ("dbmanage" in ASCII); advisory locks are per database.
MIGRATION_LOCK_KEY = 0x64626D616E616765
METADATA_TABLE = "db_manage_metadata"  # the tool's own table, like Rails' ar_internal_metadata
LOCK_SQL = {  # (try, wait) for a session lock, and for one released with the caller's transaction
    False: (text("SELECT pg_try_advisory_lock(:key)"), text("SELECT pg_advisory_lock(:key)")),
    True: (text("SELECT pg_try_advisory_xact_lock(:key)"), text("SELECT pg_advisory_xact_lock(:key)")),
}


class MigrationFailed(Failure):
    """A migration run failed and was rolled back."""


@contextmanager
def migration_run(connection, environment):
    """Hold the migration lock and the lock timeout around a run; turn its database errors into one sentence."""
    external = connection.in_transaction()  # a caller's transaction (reset, tests): stay inside it
    take_migration_lock(connection, transactional=external)
    timeout = lock_timeout()
    running, start = RunningStep(), None  # start: where the database was, unless a caller's transaction says
    try:
        set_lock_timeout(connection, f"{math.ceil(timeout * 1000)}ms", local=external)  # 0.0001 s is 1 ms, not 0
        current = environment.get_context().get_current_heads()
        start = None if external else ", ".join(current) or "base"
        check_before_run(environment, current, connection)
        if not external:
            connection.commit()  # Alembic begins its own transaction next
        yield
    except DBAPIError as exc:
        raise MigrationFailed(failure_message(exc, running.step, start, timeout)) from exc
    except (Failure, CommandError):
        raise
    except Exception as exc:  # a revision's own Python failed, or alembic-postgresql-enum met rows it cannot map
        if isinstance(exc, ValueError) and isinstance(exc.__cause__, DBAPIError):
            raise MigrationFailed(enum_value_message(exc.__cause__, running.step, start)) from exc
        if running.step is None:
            raise
        raise MigrationFailed(f"Migration {running.step} failed: {type(exc).__name__}: {exc}. "
                              f"{nothing_applied(start)}") from exc
    finally:
        running.close()
        if not external:
            if connection.in_transaction():  # failed before Alembic's own transaction began
                connection.rollback()
            set_lock_timeout(connection, "0", local=False)
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()


def check_before_run(environment, current, connection):
    """Refuse a run on a revision no file has, an upgrade to `head` on branched migrations, or a
    downgrade to base of production.

    stamp is let through: it is the way out of a lost revision.
    """
    opts = environment.get_context().opts
    step = getattr(opts.get("fn"), "__name__", "")
    if step == "do_stamp":
        return
    ensure_known(environment.script, current)
    if step == "upgrade" and opts.get("destination_rev") == "head":
        ensure_single_head(environment.script)
    if step == "retrieve_migrations" and getattr(environment.config.cmd_opts, "autogenerate", False):
        ensure_at_head(environment.script, current)
    if step == "downgrade" and reaches_base(environment.script, current, opts["fn"](tuple(current),
                                                                                  environment.get_context())):
        refuse_on_production(f"downgrade to {opts.get('destination_rev')}, which reverts every migration", connection)


def take_migration_lock(connection, transactional):
    """Take the migration lock, waiting as long as another migration holds it (never cut by lock_timeout)."""
    try_lock, wait_lock = LOCK_SQL[transactional]
    set_lock_timeout(connection, "0", local=transactional)
    if connection.execute(try_lock, {"key": MIGRATION_LOCK_KEY}).scalar():
        return
    click.echo("Waiting for another migration of this database to finish...", err=True)
    connection.execute(wait_lock, {"key": MIGRATION_LOCK_KEY})


def set_lock_timeout(connection, value, local):
    """Set lock_timeout for the session (or the transaction when local)."""
    connection.execute(text("SELECT set_config('lock_timeout', :value, :local)"), {"value": value, "local": local})


def record_environment(connection):
    """Record, in the migration's transaction, which configuration migrated this database.

    A database once recorded under a protected configuration (production) stays so (a developer's
    laptop migrating it does not lift its protection), unless the override is set.
    """
    connection.execute(text("""CREATE TABLE IF NOT EXISTS db_manage_metadata (
        key text PRIMARY KEY, value text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"""))
    connection.execute(text("""INSERT INTO db_manage_metadata (key, value) VALUES ('environment', :name)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()
        WHERE NOT db_manage_metadata.value = ANY(:protected) OR :override"""),
                       {"name": config_name(), "protected": list(setting("PROTECTED_CONFIGS")),
                        "override": os.environ.get(OVERRIDE_VARIABLE) == "1"})


def nothing_applied(start):
    """Return the sentence that says a failed run changed nothing (empty inside a caller's transaction)."""
    return f"Nothing was applied: the database is still at {start}." if start else ""


def failure_message(exc, step, start, timeout):
    """Return one sentence for a failed migration run."""
    which = f"Migration {step}" if step else "The migration"
    statement = " ".join((exc.statement or "").split())[:160]
    if isinstance(exc.orig, pg_errors.LockNotAvailable):
        return (f"{which} could not get its lock within {timeout:g} s (lock_timeout) for: {statement}. "
                f"Another transaction holds a conflicting lock on that table. {nothing_applied(start)} "
                "Retry when that transaction ends, or raise "
                "MIGRATION_LOCK_TIMEOUT (seconds; 0 waits without limit).")
    message = " ".join(str(exc.orig).split())
    return f"{which} failed: {message}. {nothing_applied(start)}"


def enum_value_message(exc, step, start):
    """Return one sentence for an enum value removed while rows still hold it."""
    message = " ".join(str(exc.orig).split())
    value = message.rsplit(":", 1)[-1].strip()
    return (f"Migration {step or ''} failed: rows still hold the enum value {value} that the revision removes "
            f"({message}). Map it to a value that stays: in the revision, pass "
            f"enum_values_to_rename=[({value.strip(chr(34))!r}, 'NEW VALUE')] to op.sync_enum_values(...), or "
            f"update those rows first. {nothing_applied(start)}")


class RunningStep(logging.Handler):
    """Remembers the step Alembic announces ("Running upgrade A -> B, message") while it runs."""

    LOGGER = "alembic.runtime.migration"

    def __init__(self):
        super().__init__()
        self.step = None
        logging.getLogger(self.LOGGER).addHandler(self)

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Running "):
            self.step = " ".join(message.removeprefix("Running ").split())

    def close(self):
        logging.getLogger(self.LOGGER).removeHandler(self)
        super().close()
