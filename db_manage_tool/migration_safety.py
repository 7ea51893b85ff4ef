"""Safe migration runs, called by migrations/env.py (so `flask db upgrade` gets them too).

- One migration at a time: a PostgreSQL advisory lock with a fixed key, taken as the first
  statement of the run's transaction (so it holds behind a pooler in transaction mode, where
  each transaction may get another server session) and, on a direct connection, also for the
  session, so that it spans a revision's autocommit_block. Waited for without a timeout.
- A lock_timeout on the migration's statements: each attempt waits at most ATTEMPT_LOCK_TIMEOUT
  for a table lock (readers queue behind a waiting ALTER that long at most), and a run that lost
  its lock race is retried, from the start, until MIGRATION_LOCK_TIMEOUT (default 10 s) is spent.
- A failure named in one sentence: the revision, the database's message, and that nothing
  was applied (the run is one transaction).
- The configuration that migrated the database recorded in db_manage_metadata.
"""
import logging
import math
import os
import re
import time
from contextlib import contextmanager

import click
from alembic.util import CommandError
from psycopg2 import errors as pg_errors
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from .application import config_name, lock_timeout, setting, uses_direct_url
from .dbadmin import end_with_client
from .errors import INSUFFICIENT_PRIVILEGE, Failure, first_line, privilege_problem
from .interrupts import cancelled_by_ctrl_c
from .lock_budget import Steps, is_out_of_locks, lock_table_size, out_of_locks_advice, step_budget
from .production_guard import OVERRIDE_VARIABLE, refuse_on_production
from .revisions import ensure_at_head, ensure_known, ensure_single_head, reaches_base

# A fixed key for this application's migrations ("dbmanage" in ASCII); advisory locks are per database.
MIGRATION_LOCK_KEY = 0x64626D616E616765
DUPLICATE_TABLE, DUPLICATE_OBJECT = "42P07", "42710"  # SQLSTATEs of a CREATE of what exists already
METADATA_TABLE = "db_manage_metadata"  # the tool's own table, like Rails' ar_internal_metadata
LOCK_SQL = {  # (try, wait) for a session lock, and for one released with the caller's transaction
    False: (text("SELECT pg_try_advisory_lock(:key)"), text("SELECT pg_advisory_lock(:key)")),
    True: (text("SELECT pg_try_advisory_xact_lock(:key)"), text("SELECT pg_advisory_xact_lock(:key)")),
}
ATTEMPT_LOCK_TIMEOUT = 1.0  # seconds one attempt waits for a table lock before the run is retried
LOCK_POLL = 0.25  # seconds between two tries for the migration lock held by another run
WAITING_MARK = "(waiting for the migration lock)"  # appended to the application_name of a run that waits
RETRY_PAUSES = (0.5, 1.0, 2.0)  # seconds between attempts, the last one repeated
READ_ONLY_STEPS = ("display_version", "retrieve_migrations")  # current, check and autogenerate: nothing written


class MigrationFailed(Failure):
    """A migration run failed and was rolled back."""


class AutocommitInTransaction(MigrationFailed):
    """A revision's autocommit_block met a caller's transaction (reset's): the caller may run it in steps."""


class OutOfLocks(MigrationFailed):
    """A run needed more locks than one transaction may hold on the server, and was rolled back."""


class LockRace:
    """The lock_timeout budget of one run: how long each attempt waits, and whether another may follow."""

    def __init__(self, budget, retries):
        self.budget, self.retries = budget, retries
        self.attempt_timeout = min(budget, ATTEMPT_LOCK_TIMEOUT) if retries and budget else budget
        self.deadline, self.attempts, self.lock_settings = None, 0, None

    def start(self):
        """Start spending the budget: once the migration lock is held (waiting for it is not counted)."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.budget

    def milliseconds(self, seconds=None):
        """Return the attempt's lock_timeout (or seconds) for set_config (0.0001 s is 1 ms, not 0: no limit)."""
        return f"{math.ceil((self.attempt_timeout if seconds is None else seconds) * 1000)}ms"

    def pause(self):
        """Return the seconds to wait before the next attempt, or None when the budget is spent."""
        pause = RETRY_PAUSES[min(self.attempts - 1, len(RETRY_PAUSES) - 1)]
        if not (self.retries and self.budget) or time.monotonic() + pause + self.attempt_timeout > self.deadline:
            return None
        return pause


def migration_run(connection, environment):
    """Run Alembic's migrations on connection: one run at a time, lock timeouts with retries, in one
    transaction (or the caller's), each failure turned into one sentence."""
    external = connection.in_transaction()  # a caller's transaction (reset, tests): stay inside it
    autocommit = connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    stepwise = not external and (autocommit or bool(environment.get_context().opts.get("transaction_per_migration")))
    step_name = getattr(environment.get_context().opts.get("fn"), "__name__", "")
    writes = step_name not in READ_ONLY_STEPS
    running, race = RunningStep(), LockRace(lock_timeout(), retries=not external)
    pooled = behind_pooler(connection)
    blocks = guard_autocommit_blocks(environment.get_context(), pooled, external, running, race)
    start, steps = None, None  # where the database was, unless a caller's transaction says; the run's steps
    try:
        if not external:
            if not pooled:  # a session lock spans autocommit blocks; behind a pooler it would be lost
                take_migration_lock(connection, transactional=False)
                session_settings(connection, race.milliseconds(), local=False)
            connection.commit()  # Alembic begins its own transaction next
        while True:
            race.attempts += 1
            try:
                with environment.begin_transaction():
                    start = begin_run(connection, environment, race, external)
                    if writes and start == "base" and not pooled and not external and not stepwise:
                        steps = steps_on_empty(connection, race)
                    environment.run_migrations()
                    if writes:
                        record_environment(connection)
                if stepwise and connection.in_transaction():  # each revision committed its own; this, the rest
                    connection.commit()
                return
            except DBAPIError as exc:
                # A retry goes on from where the database is: not after an autocommit statement, which stays done.
                pause = None if blocks.committed or (steps and steps.committed) or autocommit else \
                    lock_lost(exc) and race.pause()
                if not pause:
                    raise
                if connection.in_transaction():
                    connection.rollback()
                which = f"Migration {running.step}" if running.step else "The migration"
                click.echo(f"{which} found a table busy (lock_timeout "
                           f"{race.attempt_timeout:g} s): rolled back, retrying in {pause:g} s.", err=True)
                time.sleep(pause)
    except DBAPIError as exc:
        if cancelled_by_ctrl_c(exc):  # rolled back: the command stops as interrupted
            raise KeyboardInterrupt from None
        if blocks.inside and getattr(exc.orig, "pgcode", None) in NEEDS_A_COMMIT:  # the caller runs it in steps
            which = f"Migration {running.step}" if running.step else "A migration"
            raise AutocommitInTransaction(f"{which} has an autocommit_block whose statements need a commit of "
                                          f"their own ({first_line(str(exc.orig))}).") from exc
        start = emptied_again(connection, steps) if steps and steps.committed else start
        start = partly_committed(connection, environment, stepwise) if blocks.committed or stepwise else start
        failed = OutOfLocks if is_out_of_locks(exc) else MigrationFailed
        raise failed(failure_message(exc, running.step, start if writes else None, race, writes)) from exc
    except (Failure, CommandError):
        start = emptied_again(connection, steps) if steps and steps.committed else start
        raise
    except Exception as exc:  # a revision's own Python failed, or alembic-postgresql-enum met rows it cannot map
        start = emptied_again(connection, steps) if steps and steps.committed else start
        start = partly_committed(connection, environment, stepwise) if blocks.committed or stepwise else start
        if isinstance(exc, ValueError) and isinstance(exc.__cause__, DBAPIError):
            raise MigrationFailed(enum_value_message(exc.__cause__, running.step, start)) from exc
        if running.step is None:
            raise
        raise MigrationFailed(f"Migration {running.step} failed: {type(exc).__name__}: {exc}. "
                              f"{nothing_applied(start)}") from exc
    finally:
        running.close()
        if steps:
            steps.close()
        if not external:
            if connection.in_transaction():  # failed before or inside Alembic's own transaction
                connection.rollback()
            if not pooled:
                connection.execute(text("RESET lock_timeout"))
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()


def begin_run(connection, environment, race, external):
    """Start the run's transaction: the migration lock, the timeouts and the checks, before Alembic's first
    statement; return where the database is (None inside a caller's transaction)."""
    take_migration_lock(connection, transactional=True)
    race.start()
    race.lock_settings = lock_table_size(connection)  # for the advice, should the run outgrow the lock table
    session_settings(connection, race.milliseconds(), local=True)
    current = environment.get_context().get_current_heads()
    check_before_run(environment, current, connection)
    return None if external else ", ".join(current) or "base"


def steps_on_empty(connection, race):
    """Return Steps that commit the run in parts when it outgrows the lock budget, if the database is empty
    (a failed run can then be undone by emptying it again); else None, the run staying one transaction."""
    from .reset import is_empty

    if not is_empty(connection):
        return None

    def renew(dbapi):  # no retry after a step: the whole lock_timeout budget for each statement from here
        with dbapi.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", (race.milliseconds(race.budget),))

    return Steps(connection, step_budget(connection), renew, note=(
        "Note: this run holds {held:,} locks, over half of the server's lock table, so it commits in steps from "
        "here (the database started empty: should a later step fail, it is emptied again)."))


def emptied_again(connection, steps):
    """Empty the database a run in steps left half-migrated, in steps too; return what to say of it."""
    from .reset import drop_everything

    try:
        if connection.in_transaction():
            connection.rollback()
        drop_everything(connection)  # the run's Steps still commit as the drops' locks pile up
        connection.commit()
    except DBAPIError:
        return Committed("Part of the run was committed in steps, and emptying the database again failed: run "
                         "`python db_manage.py reset` to empty it before migrating again.")
    return Committed(f"Part of the run had been committed in {steps.committed + 1} steps: the database was emptied "
                     "again, as the run found it.")


def behind_pooler(connection):
    """Return True when connection reaches PostgreSQL through a pooler such as PgBouncer.

    A pooler hands its clients a cancel key of its own, so the backend pid libpq was given is
    not the server's pg_backend_pid(). POOLER_KEEPS_SESSIONS says the pooler runs in session mode.
    """
    if setting("POOLER_KEEPS_SESSIONS"):
        return False
    dbapi = connection.connection.dbapi_connection
    given = dbapi.get_backend_pid() if hasattr(dbapi, "get_backend_pid") else getattr(
        getattr(dbapi, "info", None), "backend_pid", None)  # psycopg2, else psycopg 3
    return given is not None and given != connection.execute(text("SELECT pg_backend_pid()")).scalar()


class AutocommitBlocks:
    """Whether a revision's autocommit_block committed part of the run (which then cannot be retried), or ran
    inside the caller's transaction (whose statements may then need a commit the block would have given)."""

    committed = False
    inside = False


# The statements of an autocommit_block that have a plain form to run inside a transaction.
CONCURRENT_INDEX = re.compile(r"^(\s*(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX))\s+CONCURRENTLY\b", re.IGNORECASE)


# What PostgreSQL says of a statement that needs a transaction of its own, or of an enum value used in the
# transaction that added it: inside reset's transaction, an autocommit_block's statement (or its sequel) did.
NEEDS_A_COMMIT = ("25001", "55P04")  # active_sql_transaction, unsafe_new_enum_value_usage


@contextmanager
def plain_index_builds(connection):
    """Run the block's concurrent index builds and drops in their plain form, inside the caller's transaction
    (the other statements as they are: VALIDATE CONSTRAINT, SET NOT NULL... run in a transaction too)."""
    def plain(conn, cursor, statement, parameters, context, executemany):
        return CONCURRENT_INDEX.sub(r"\1", statement, count=1), parameters

    event.listen(connection, "before_cursor_execute", plain, retval=True)
    try:
        yield
    finally:
        event.remove(connection, "before_cursor_execute", plain)


def guard_autocommit_blocks(migration_context, pooled, external, running, race):
    """Make the revisions' autocommit_block refuse, in one sentence, where it cannot keep its promises."""
    blocks, original = AutocommitBlocks(), migration_context.autocommit_block

    @contextmanager
    def autocommit_block():
        which = f"Migration {running.step}" if running.step else "A migration"
        if pooled:
            raise MigrationFailed(
                f"{which} has an autocommit_block (e.g. CREATE INDEX CONCURRENTLY), which needs one database "
                f"session, but {'MIGRATION_DATABASE_URL' if uses_direct_url() else 'the database URL'} goes "
                "through a connection pooler in transaction mode (PgBouncer or the like): set "
                "MIGRATION_DATABASE_URL to a direct connection to the same database, or POOLER_KEEPS_SESSIONS "
                "= True if the pooler runs in session mode, and run it again. Nothing was applied.")
        if external:  # reset's transaction: the tables are its own, so a plain index build blocks nobody
            blocks.inside = True
            with plain_index_builds(migration_context.connection):
                yield
            return
        blocks.committed = True
        with original():
            # Not retried from here on (part of the run is committed): the whole budget, for a concurrent
            # build waits for every older transaction, and the statements after the block.
            session_settings(migration_context.connection, race.milliseconds(race.budget), local=False)
            yield
        session_settings(migration_context.connection, race.milliseconds(race.budget), local=True)

    migration_context.autocommit_block = autocommit_block
    return blocks


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
        ensure_single_head(environment.script)  # else "upgrade first" would send the user to a refusal
        ensure_at_head(environment.script, current)
    if step == "downgrade" and reaches_base(environment.script, current, opts["fn"](tuple(current),
                                                                                  environment.get_context())):
        refuse_on_production(f"downgrade to {opts.get('destination_rev')}, which reverts every migration", connection)


def take_migration_lock(connection, transactional):
    """Take the migration lock, waiting as long as another migration holds it (never cut by lock_timeout)."""
    try_lock, wait_lock = LOCK_SQL[transactional]
    connection.execute(text("SELECT set_config('lock_timeout', '0', :local)"), {"local": transactional})
    if connection.execute(try_lock, {"key": MIGRATION_LOCK_KEY}).scalar():
        return
    click.echo("Waiting for another migration of this database to finish...", err=True)
    if transactional:
        connection.execute(wait_lock, {"key": MIGRATION_LOCK_KEY})
        return
    # Not waited for inside a transaction: the other run's CREATE INDEX CONCURRENTLY waits for every open
    # transaction to end, this one included, while this one would wait for it (a deadlock). Poll between them.
    name = connection.execute(text("SELECT current_setting('application_name')")).scalar()
    connection.execute(text("SELECT set_config('application_name', :name, false)"),  # seen in pg_stat_activity
                       {"name": f"{name} {WAITING_MARK}"[-63:]})
    while True:
        connection.commit()
        time.sleep(LOCK_POLL)
        if connection.execute(try_lock, {"key": MIGRATION_LOCK_KEY}).scalar():
            connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": name})
            return


def session_settings(connection, lock_timeout_value, local):
    """Set lock_timeout, and on PostgreSQL 14+ client_connection_check_interval, for the session or transaction.

    The check makes the server end a statement whose client is gone (a killed deploy) within a
    second, releasing its locks, instead of when the statement finishes.
    """
    connection.execute(text("SELECT set_config('lock_timeout', :value, :local)"),
                       {"value": lock_timeout_value, "local": local})
    end_with_client(connection, local)


def lock_lost(exc):
    """Return True when exc is a statement that gave up waiting for a table lock (lock_timeout)."""
    return isinstance(getattr(exc, "orig", None), pg_errors.LockNotAvailable)


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


class Committed(str):
    """What a revision's autocommit_block committed before the run failed: said instead of "Nothing was applied"."""


def nothing_applied(start):
    """Return the sentence that says a failed run changed nothing (empty inside a caller's transaction)."""
    if isinstance(start, Committed):
        return str(start)
    return f"Nothing was applied: the database is still at {start}." if start else ""


def partly_committed(connection, environment, stepwise=False):
    """Return, after a failure past an autocommit_block or in a run whose revisions commit on their own, where the
    database now is and any invalid index left."""
    what = ("The revisions before it were committed (each commits on its own, as the application's env.py had it)"
            if stepwise else "What ran before its autocommit_block was committed")
    try:
        if connection.in_transaction():
            connection.rollback()
        current = ", ".join(environment.get_context().get_current_heads()) or "base"
        invalid = connection.execute(text(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1")).scalars().all()
        connection.commit()
    except DBAPIError:  # the connection itself is gone: say what is known
        return Committed(f"{what}: `python db_manage.py current` says where the database is.")
    note = f"{what}: the database is now at {current}."
    if invalid:
        note += (f" A concurrent build left the invalid index {', '.join(invalid)}: drop it (DROP INDEX CONCURRENTLY "
                 f"{invalid[0]};) before running the migration again.")
    return Committed(note)


def failure_message(exc, step, start, race, writes=True):
    """Return one sentence for a failed migration run."""
    which = f"Migration {step}" if step else "The migration"
    statement = " ".join((exc.statement or "").split())[:160]
    if lock_lost(exc):
        tries = f", in {race.attempts} attempts of {race.attempt_timeout:g} s" if race.attempts > 1 else ""
        return (f"{which} could not get its lock within {race.budget:g} s (lock_timeout{tries}) for: {statement}. "
                f"Another transaction holds a conflicting lock on that table. {nothing_applied(start)} "
                "Retry when that transaction ends, or raise "
                "MIGRATION_LOCK_TIMEOUT (seconds; 0 waits without limit).")
    if is_out_of_locks(exc):
        return f"{which} failed: {out_of_locks_advice(race.lock_settings)}. {nothing_applied(start)}".strip()
    if getattr(exc.orig, "pgcode", None) == INSUFFICIENT_PRIVILEGE:
        advice = privilege_problem(exc, reading=not writes)
        return f"{which} failed. {advice} {nothing_applied(start)}".strip() if writes else advice
    message = " ".join(str(exc.orig).split()).rstrip(".")  # its own period would double the sentence's
    if getattr(exc.orig, "pgcode", None) in (DUPLICATE_TABLE, DUPLICATE_OBJECT) and start == "base":
        return (f"{which} failed: {message}. {nothing_applied(start)} The database has the tables already but "
                "records no revision (its alembic_version table is gone or empty): if they are the schema of a "
                "revision, record it with `python db_manage.py stamp REVISION` (head, usually) instead of running "
                "the migrations again.")
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
