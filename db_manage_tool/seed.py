"""`seed`: the application's own seed file, fixture files, and generated rows for any model, in one transaction.

The seed data belongs to the application, like Rails' db/seeds.rb: a module `seeds` beside it
(app/seeds.py in the skeleton; SEED_MODULE in app.config names another) with a function
seed(connection) that adds rows (db_manage_tool.seeding.add_all) and returns {what: count}, and
optionally OVERRIDES: fixed values or functions of the row number for generated columns.
Two seeds at once on one database: the second waits for the first (an advisory lock).
"""
import contextlib
import importlib
import importlib.util
import signal
import threading
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

import click
import psycopg2
import psycopg2.errors
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import DBAPIError, OperationalError

from . import bulk, generate, seed_plan
from .dbadmin import end_with_client
from .application import database, engine, metadata, setting
from .errors import Failure, first_line
from .production_guard import refuse_on_production
from .seeding import Progress, add_default_rows, copy_chunks
from .values import Pools

SEED_LOCK = zlib.crc32(b"db_manage seed")  # the advisory lock two seeds of one database share
EXAMPLE = """    from db_manage_tool.seeding import add_all
    def seed(connection):
        return add_all(connection, {User: [{"username": "ada", "email": "ada@example.com"}]})"""


class Interrupted(Failure):
    """Ctrl-C: the transaction was rolled back."""

    exit_code = 130


def seed_database(rows=(), fixtures=(), every=None):
    """Seed in one transaction: fixture files, then generated rows; with neither, the seed file. Return what was added."""
    refuse_on_production("seed the database")
    seed = seed_function() if not rows and not fixtures and not every else None
    started = time.monotonic()
    with CtrlC() as ctrl_c:
        try:
            with engine().connect() as connection, connection.begin():
                end_with_client(connection)
                wait_for_other_seeds(connection)
                added = {}
                if fixtures:
                    from .fixtures import load_fixtures

                    try:
                        added.update(load_fixtures(connection, fixtures, fixture_table))
                    except (psycopg2.Error, DBAPIError, ValueError) as exc:
                        failure = fixture_refused(exc, fixtures)
                        if failure is None:
                            raise
                        raise failure from exc
                if rows or every:  # a table both fixtures and generated rows fill counts both
                    for what, count in generate_rows(connection, rows, every).items():
                        both = isinstance(count, int) and isinstance(added.get(what), int)
                        added[what] = added[what] + count if both else count
                if seed is not None:
                    added = run_seed_file(connection, seed)
        except BaseException as exc:
            if ctrl_c.pressed or isinstance(exc, KeyboardInterrupt):  # however psycopg2 reported it
                raise Interrupted("Interrupted: the seed was rolled back, nothing was written.") from None
            raise
        finally:
            engine().dispose()
    click.echo(summary(added, time.monotonic() - started), err=True)
    return added


def fixture_refused(exc, fixtures):
    """Return the Failure for fixture rows the database or the driver refused; None to let exc through."""
    if isinstance(exc, ValueError):
        return Failure("A fixture value holds a NUL character (\\u0000), which PostgreSQL text cannot store: "
                       "remove it. Nothing was changed.") if "NUL" in str(exc) else None
    detail = database_detail(exc)
    return None if detail is None else Failure(
        f"The fixture rows were refused by the database ({detail}): fix the fixture ({', '.join(fixtures)}). "
        "Nothing was changed.")


class CtrlC:
    """While active, remember whether Ctrl-C was pressed (psycopg2 may report it as another error)."""

    def __init__(self):
        self.pressed, self.previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame):
        """Note the Ctrl-C and interrupt, as Python does by default."""
        self.pressed = True
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def summary(added, seconds):
    """Return the closing line: what was added, and how fast when it was many rows."""
    if not isinstance(added, Mapping) or not added:
        return "Seeded."
    total = sum(count for count in added.values() if isinstance(count, int))
    line = "Seeded: " + ", ".join(f"{count:,} {what}" if isinstance(count, int) else f"{count} {what}"
                                  for what, count in added.items()) + " added"
    if total >= 10_000:
        line += f" in {seconds:.1f} s ({total / seconds:,.0f} rows/s)"
    return line + "."


def wait_for_other_seeds(connection):
    """Take the seed lock of this database for the transaction, saying so when another seed holds it."""
    attempt = sa.select(sa.func.pg_try_advisory_xact_lock(SEED_LOCK))
    if connection.execute(attempt).scalar():
        return
    click.echo("Another seed is running on this database: waiting for it to finish.", err=True)
    while not connection.execute(attempt).scalar():  # asked again and again, so that Ctrl-C stops the wait
        time.sleep(0.2)


def run_seed_file(connection, seed):
    """Run the application's seed(connection) on connection's transaction; return what it added."""
    try:
        added = seed(connection)
        if isinstance(added, Mapping) and not all(isinstance(n, int) and not isinstance(n, bool)
                                                  for n in added.values()):
            raise Failure(f"The seed function {seed.__module__}.seed returned {added!r}: return {{what: count}} "
                          "with whole numbers, or nothing. Nothing was changed.")
        return added
    except (Failure, OperationalError, KeyboardInterrupt):
        raise
    except DBAPIError as exc:
        if "canceling statement due to user request" in str(exc.orig):
            raise
        raise Failure(f"The seed function {seed.__module__}.seed failed: {type(exc).__name__}: "
                      f"{first_line(str(getattr(exc, 'orig', None) or exc)).rstrip('.')}. Nothing was changed.") from exc
    except Exception as exc:  # the application's seed code failed: its transaction is rolled back
        raise Failure(f"The seed function {seed.__module__}.seed failed: {type(exc).__name__}: "
                      f"{first_line(str(exc)).rstrip('.')}. Nothing was changed.") from exc


def model_classes():
    """Return the application's model classes (those of its Flask-SQLAlchemy registry)."""
    model = getattr(database(), "Model", None)
    registry = getattr(model, "registry", None)
    return [mapper.class_ for mapper in getattr(registry, "mappers", ())]


def find_table(name):
    """Return the table a model or table name means."""
    target, _ = seed_plan.targets([(name, 1)], list(metadata().tables.values()), model_mappers())[0]
    return seed_plan.table_of(target)


def fixture_table(name, path):
    """Return the table a fixture file (or a key in it) names."""
    try:
        return find_table(name)
    except generate.UnknownTable as exc:
        raise Failure(f"The fixture {path} names {name!r}: {exc}") from None


def generate_rows(connection, requests=(), every=None):
    """COPY generated rows for each (name, count) request, or about `every` rows of every table; return {table: rows}.

    Asked by name, a table that cannot be filled stops the seed; with --all it is skipped, with the reason.
    """
    tables, mappers = list(metadata().tables.values()), model_mappers()
    try:
        chosen = seed_plan.every_table(tables, mappers, every) if every else []
        asked = seed_plan.targets(requests, tables, mappers)
    except generate.UnknownTable as exc:
        raise click.BadParameter(str(exc), param_hint="--rows") from None
    chosen = [(t, n) for t, n in chosen if all(t is not a for a, _ in asked)] + asked
    overrides, where = seed_overrides()
    found, notes = seed_plan.with_parents(connection, chosen, mappers, not every, overrides)
    for note in notes:
        click.echo(note, err=True)
    counts = {table: job.count for table, job in found.items()}
    for table, job in found.items():
        if job.discriminator and job.discriminator not in overrides.get(table, {}):
            overrides.setdefault(table, {})[job.discriminator] = job.identity_fill()
    order = generate.ordered(counts)
    skipped = {}
    if not every:
        try:
            for table in order:  # before anything is written: every table can be generated
                generate.Analysis(generate.Table(table, counts[table], overrides.get(table, {}), where, found[table]))
        except generate.Unsupported as exc:
            raise Failure(f"{exc} Nothing was changed.") from None
        generate.check_parents(connection, counts)
    total = sum(counts.values())
    size = sum(generate.estimate_bytes(table, counts[table]) for table in order)
    click.echo(f"Generating {'about ' if every else ''}{total:,} row{'s' if total != 1 else ''} "
               f"({', '.join(f'{t.fullname} {counts[t]:,}' for t in order)}): about {megabytes(size)} on disk.",
               err=True)
    connection.exec_driver_sql("SET LOCAL synchronous_commit = off")  # development data: no wait at commit
    pools, added = Pools(), {}
    with Progress(total) as bar:
        for table in order:
            if every:
                reason = skip_reason(connection, table, counts, overrides, where, found, skipped)
                if reason is not None:
                    skipped[table] = reason
                    continue
            try:
                with connection.begin_nested() if every else contextlib.nullcontext():
                    added[table.fullname] = fill_table(connection, table, counts[table], overrides.get(table, {}),
                                                       where, found[table], pools, bar, every)
            except generate.Unsupported as exc:
                if not every:
                    raise Failure(f"{exc} Nothing was changed.") from None
                skipped[table] = str(exc)
            except (psycopg2.Error, DBAPIError) as exc:
                failure = refused(exc, f"The rows generated for {table.fullname}", where)
                if failure is None:
                    raise
                if not every:
                    raise failure from exc
                skipped[table] = str(failure).replace(" Nothing was changed.", "")
            except Failure as exc:
                if not every:
                    raise
                skipped[table] = str(exc).replace(" Nothing was changed.", "")
    for table, reason in skipped.items():
        click.echo(f"Skipped {table.fullname}: {reason}", err=True)
    return added


def fill_table(connection, table, count, overrides, where, job, pools, bar, flexible):
    """COPY count generated rows into table (fewer when flexible and its unique combinations run out); return how many."""
    written = 0
    with bulk.loading(connection, table, count):
        for rows in generate.rounds(table, count):
            spec = generate.Table(table, rows, overrides, where, job, flexible)
            groups, start = generate.plan(connection, spec, pools)
            if not spec.count:
                break
            if groups:
                copy_chunks(connection, table, generate.column_names(groups),
                            generate.chunks(groups, start, spec.count), bar)
            else:  # the server fills every column
                add_default_rows(connection, table, spec.count, bar)
            written += spec.count
    if not written:
        raise generate.Unsupported(f"{table.fullname} has no combination of unique values left to add.")
    return written


def skip_reason(connection, table, counts, overrides, where, found, skipped):
    """Return why --all cannot fill table (its analysis, or a required parent skipped and empty), or None."""
    for fk in generate.foreign_keys(table):
        parent = fk.referred_table
        if parent is table or any(c.nullable for c in fk.columns) or any(c.name in overrides.get(table, {})
                                                                            for c in fk.columns):
            continue
        if (parent in skipped or parent not in counts) and \
                not connection.execute(sa.select(sa.exists().select_from(parent))).scalar():
            why = "was skipped" if parent in skipped else "has no rows"
            return f"it refers to {parent.fullname}, which {why}."
    try:
        generate.Analysis(generate.Table(table, counts[table], overrides.get(table, {}), where, found[table]))
    except generate.Unsupported as exc:
        return str(exc)
    return None


def model_mappers():
    """Return the mappers of the application's models whose tables are in its metadata."""
    tables = set(metadata().tables.values())
    return [mapper for mapper in (sa.inspect(cls) for cls in model_classes()) if mapper.local_table in tables]


def refused(exc, what, where):
    """Return the Failure for a database error on generated rows; None to let exc through (Ctrl-C, lost server)."""
    detail = database_detail(exc)
    return None if detail is None else Failure(
        f"{what} were refused by the database ({detail}): give the columns it names a value in OVERRIDES of "
        f"{where}, or fix the ones there. Nothing was changed.")


def database_detail(exc):
    """Return the first line of a database error, or None for a cancelled statement or a lost connection."""
    error = getattr(exc, "orig", None) or exc
    if isinstance(error, psycopg2.errors.QueryCanceled | psycopg2.OperationalError):
        return None
    return first_line(str(error)).rstrip(".")


def megabytes(size):
    """Return a byte count in words."""
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{max(size / 1e6, 0.1):.1f} MB"


def seed_overrides():
    """Return ({Table: {column: value or function}}, where the seed file is) from the seed file's OVERRIDES."""
    name = seed_module_name()
    where = describe_seed_file(name)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return {}, where
        return without_overrides(where, exc)
    except Exception as exc:  # noqa: BLE001 - the application's file: any error means its OVERRIDES cannot be read
        return without_overrides(where, exc)
    given = getattr(module, "OVERRIDES", None) or {}
    if not isinstance(given, Mapping):
        raise Failure(f"OVERRIDES in {where} must be a dict: {{model or table: {{column: value or function}}}}.")
    overrides = {}
    for key, columns in given.items():
        table = key if isinstance(key, sa.Table) else getattr(key, "__table__", None)
        if table is None:
            try:
                table = find_table(str(key))
            except generate.UnknownTable as exc:
                raise Failure(f"OVERRIDES in {where} names {key!r}: {exc}") from None
        if not isinstance(columns, Mapping):
            raise Failure(f"OVERRIDES[{key!r}] in {where} must be a dict of column: value or function.")
        overrides[table] = {override_column(table, key, column, where): value for column, value in columns.items()}
    return overrides, where


def without_overrides(where, exc):
    """Say that the seed file does not import, so its OVERRIDES are not used; return no overrides."""
    click.echo(f"Note: the seed file {where} does not import ({type(exc).__name__}: {first_line(str(exc)).rstrip('.')}), "
               "so generated rows go on without its OVERRIDES: bring it up to date with the models.", err=True)
    return {}, where


def override_column(table, model, name, where):
    """Return the column name an OVERRIDES entry means (a column name, or the model's attribute)."""
    from .seeding import column_named

    try:
        return column_named(table, model if not isinstance(model, str) else None, name).name
    except Failure as exc:
        raise Failure(f"OVERRIDES in {where}: {exc}") from None


def describe_seed_file(name):
    """Return where the seed file is or would be, for messages."""
    if setting("SEED_MODULE"):
        return name
    return relative(Path(current_app.root_path) / "seeds.py")


def seed_module_name():
    """Return the name of the application's seed module: SEED_MODULE, else `seeds` beside the application."""
    if setting("SEED_MODULE"):
        return setting("SEED_MODULE")
    package = current_app.import_name.rpartition(".")[0] if not is_package(current_app.import_name) \
        else current_app.import_name
    return f"{package}.seeds" if package else "seeds"


def is_package(name):
    """Return True when the module `name` is a package."""
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def seed_function():
    """Return the application's seed function, or raise Failure saying where to write one."""
    name = seed_module_name()
    if not isinstance(name, str) or not name.strip():
        raise Failure(f"SEED_MODULE must be a module name such as 'app.seeds', not {name!r}: correct "
                      "app.config['SEED_MODULE']. Nothing was changed.")
    try:
        module = importlib.import_module(name)
    except SyntaxError as exc:
        raise Failure(f"The seed file {name} has a syntax error ({exc}): fix it. Nothing was changed.") from exc
    except ImportError as exc:
        if not isinstance(exc, ModuleNotFoundError) or exc.name is None or not name.startswith(exc.name):
            raise Failure(f"The seed file {name} does not import ({exc}): bring it up to date with the models. "
                          "Nothing was changed.") from exc
        if setting("SEED_MODULE"):
            raise Failure(f"SEED_MODULE names {name!r}, which does not exist: correct app.config['SEED_MODULE'] "
                          "or write that module. Nothing was changed.") from None
        where = name if setting("SEED_MODULE") else relative(Path(current_app.root_path) / "seeds.py")
        raise Failure(f"This application has no seed data: write {where} with a function seed(connection) that "
                      f"adds your sample rows and returns what it added (SEED_MODULE in app.config may name "
                      f"another module; `seed --rows MODEL=N` needs no seed file). Nothing was changed. "
                      f"For example:\n{EXAMPLE}") from None
    if not callable(getattr(module, "seed", None)):
        raise Failure(f"{module.__file__} has no function seed(connection): add one. Nothing was changed.")
    return module.seed


def relative(path):
    """Return path relative to the project folder when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
