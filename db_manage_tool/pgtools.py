"""PostgreSQL's client programs (pg_dump, pg_restore, psql): found, checked, and given the password safely."""
import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from .application import database_url, engine, setting, uses_direct_url

from . import children, embedded
from .dbadmin import server_connection
from .errors import Failure

BINDIR_VARIABLE = "PG_BINDIR"  # set it to use only the programs of that folder


def candidate_dirs():
    """Return the folders that may hold PostgreSQL programs: PG_BINDIR alone if set, else PATH and the wheel's."""
    if os.environ.get(BINDIR_VARIABLE):
        return [Path(os.environ[BINDIR_VARIABLE])]
    dirs = [Path(p).parent for p in [shutil.which("pg_dump")] if p]
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    dirs += embedded.bin_dirs()
    return list(dict.fromkeys(dirs))


def major_version(program):
    """Return the major version that program reports with --version, or None if it does not run."""
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(match.group(1)) if match else None


def fitting_programs(name, minimum):
    """Return [(path, major)] of the programs `name` whose major version is >= minimum, lowest first."""
    found = [(major_version(d / name), d / name) for d in candidate_dirs() if (d / name).exists()]
    fitting = sorted((major, path) for major, path in found if major and major >= minimum)
    if not fitting:
        seen = ", ".join(f"{path} ({major or 'does not run'})" for major, path in found) or "none"
        raise Failure(f"No {name} of version {minimum} or newer was found (the server runs PostgreSQL "
                      f"{minimum}; found: {seen}). Install one, or set {BINDIR_VARIABLE} to its folder.")
    return [(path, major) for major, path in fitting]


def find_program(name, minimum):
    """Return (path, major) of the program `name` closest to minimum among those not older; raise if none."""
    return fitting_programs(name, minimum)[0]


@functools.lru_cache(maxsize=8)
def server_major(url):
    """Return the major version of url's server (asked of its `postgres` database)."""
    with server_connection(url, target_first=True) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        return int(cur.fetchone()[0]) // 10000


def refuse_transaction_pooler(url, program):
    """Raise Failure when url reaches the server through a pooler that does not keep sessions.

    pg_dump, pg_restore and psql set session settings (pg_restore empties search_path): behind a
    pooler in transaction mode they would run on several server sessions and leave those settings
    to the application's connections. A pooler gives its clients a cancel key of its own, so
    libpq's backend pid is not the server's.
    """
    if setting("POOLER_KEEPS_SESSIONS"):
        return
    with server_connection(url, target_first=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        if cur.fetchone()[0] == conn.get_backend_pid():
            return
    where = "MIGRATION_DATABASE_URL" if uses_direct_url() else "The database URL"
    raise Failure(f"{where} goes through a connection pooler (PgBouncer or the like), where {program} would spread "
                  "its session settings over the application's pooled connections: set MIGRATION_DATABASE_URL to a "
                  "direct connection to the same database (or POOLER_KEEPS_SESSIONS = True if the pooler runs in "
                  "session mode). Nothing was run.")


def ensure_reachable():
    """Connect once, so that a missing database or role is the tool's sentence, not psql's or pg_dump's."""
    with engine().connect():
        pass
    engine().dispose()


def shell(command=None):
    """Run psql on the configured database (interactive, or one command); return psql's exit code.

    The password reaches psql through its environment, never its command line.
    """
    url = database_url()
    ensure_reachable()
    refuse_transaction_pooler(url, "psql")
    psql, _ = find_program("psql", server_major(url))
    return children.run([str(psql), *(["--command", command] if command is not None else [])],
                        interactive=command is None, env=libpq_env(url, psql)).returncode


def dbname_option(name):
    """Return --dbname for a database name, as a quoted connection string: libpq reads a bare name with '=' as one."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"--dbname=dbname='{quoted}'"


def behind_session_pooler():
    """Return True when the application says its URL goes through a pooler in session mode (POOLER_KEEPS_SESSIONS)."""
    from flask import has_app_context

    return has_app_context() and bool(setting("POOLER_KEEPS_SESSIONS"))


def libpq_env(url, program=None):
    """Return the environment that points libpq programs at url, the password included (never on argv).

    The program's sessions carry this run's name plus its own (application_name), for lock_waits.py.
    On PostgreSQL 14+ (and no pooler in between) the session also gets client_connection_check_interval,
    so that the server ends the statement of a program killed with the wrapper, releasing its locks.
    """
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host or ""
    env = {"PGHOST": host, "PGPORT": str(parsed.port or ""), "PGUSER": parsed.username or "",
           "PGDATABASE": parsed.database, "PGPASSWORD": parsed.password or ""}
    if server_major(url) >= 14 and not behind_session_pooler():  # a pooler refuses startup options
        env["PGOPTIONS"] = f"{os.environ.get('PGOPTIONS', '')} -c client_connection_check_interval=1000".strip()
    url = parsed
    if url.query.get("sslmode"):
        env["PGSSLMODE"] = url.query["sslmode"]
    if program and os.environ.get("PGAPPNAME", "").startswith("db_manage.py "):
        env["PGAPPNAME"] = f"{os.environ['PGAPPNAME']} {Path(program).name}"[:63]
    return {**os.environ, **{k: v for k, v in env.items() if v}}
