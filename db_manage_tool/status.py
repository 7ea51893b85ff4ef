"""`status` and `version`: what the database is, where its migrations stand, and what it holds."""
import json
from contextlib import contextmanager

import click
from psycopg2 import sql
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from . import revisions
from .application import config_name, describe_database, engine
from .dbadmin import application_tables, execute_composed
from .errors import INSUFFICIENT_PRIVILEGE, Failure, privilege_problem
from .migration_hooks import script_directory

# Tables up to this size are counted exactly; larger ones use PostgreSQL's statistics (live rows, reltuples).
EXACT_COUNT_MAX_BYTES = 32 * 1024 * 1024


def server_version():
    """Return the server's version line (SELECT version())."""
    with engine().connect() as connection:
        return connection.execute(text("SELECT version()")).scalar()


def status(exact_limit=EXACT_COUNT_MAX_BYTES):
    """Return the database's state as a dict: server, configuration, revisions, pending migrations, tables."""
    script = script_directory()
    with engine().connect() as connection, reading():
        current = revisions.current_heads(connection)
        revisions.ensure_known(script, current)
        state = {
            "database": describe_database(),
            "server_version": connection.execute(text("SHOW server_version")).scalar(),
            "config": config_name(),
            "current": current,
            "heads": list(script.get_heads()),
            "pending": revisions.pending(script, current),
            "tables": table_rows(connection, exact_limit),
        }
    engine().dispose()
    return state


@contextmanager
def reading():
    """Turn a permission error while reading into the GRANT a read-only role needs."""
    try:
        yield
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != INSUFFICIENT_PRIVILEGE:
            raise
        raise Failure(privilege_problem(exc, reading=True)) from exc


def table_rows(connection, exact_limit):
    """Return every application table with its rows: counted when small, estimated beyond exact_limit bytes."""
    tables = []
    for _, schema, name, size, estimate in application_tables(connection):
        estimated = size > exact_limit and estimate >= 0  # -1: no statistics yet, so count after all
        if not estimated:
            statement = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
            estimate = execute_composed(connection, statement).scalar()
        tables.append({"schema": schema, "name": name, "rows": int(estimate), "estimated": estimated})
    return tables


def show_status(as_json):
    """Print the status as text, or as one JSON object (alone on stdout: the application's SQL echo is off)."""
    if as_json:
        engine().echo = False
    state = status()
    if as_json:
        return click.echo(json.dumps(state, indent=2))
    revision = ", ".join(state["current"]) or "none (no migration applied)"
    at_head = sorted(state["current"]) == sorted(state["heads"])
    click.echo(f"Database:   {state['database']}")
    click.echo(f"Server:     PostgreSQL {state['server_version']}")
    click.echo(f"Config:     {state['config']}")
    click.echo(f"Revision:   {revision}{' (head)' if at_head and state['current'] else ''}")
    click.echo(f"Heads:      {', '.join(state['heads']) or 'none'}")
    steps = revisions.pending_steps(script_directory(), state["pending"])  # one migrate's pair is one step
    click.echo(f"Pending:    {len(steps) or 'none'}")
    for names, message in steps:
        click.echo(f"  {' -> '.join(names)}  {message}")
    click.echo(f"Tables:     {len(state['tables'])}")
    width = max((len(t["schema"]) + len(t["name"]) for t in state["tables"]), default=0) + 1
    for t in state["tables"]:
        rows = f"~{t['rows']:,}" if t["estimated"] else f"{t['rows']:,}"
        click.echo(f"  {t['schema'] + '.' + t['name']:<{width}}  {rows:>12}")
    if any(t["estimated"] for t in state["tables"]):
        click.echo("  (~ estimated from PostgreSQL's statistics, for tables over 32 MB)")
