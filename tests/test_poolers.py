"""Behind a connection pooler: a real PgBouncer in transaction mode, started on a free port per test process."""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import Database, cli_env
from db_manage_tool import dbadmin

PGBOUNCER = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
                                               if os.access(p, os.X_OK)), None)
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="PgBouncer is not installed (apt-get install pgbouncer)")


def free_port():
    """Return a TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unprivileged_user(host):
    """Return the user PgBouncer runs as under root (it refuses root): the owner of a socket folder, else nobody."""
    owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "root"
    return "nobody" if owner == "root" else owner


class PgBouncer:
    """A PgBouncer process in transaction mode, in front of the test server, on a free local port."""

    def __init__(self, server_url, databases=("*",)):
        self.folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.folder.chmod(0o755)
        self.port = free_port()
        host = server_url.query.get("host") or server_url.host or "127.0.0.1"
        user, password = server_url.username or "postgres", server_url.password or ""
        (self.folder / "users.txt").write_text(f'"{user}" "{password}"\n')
        listed = "\n".join(f"{name} = host={host} port={server_url.port or 5432}"
                           + ("" if name == "*" else f" dbname={name}") for name in databases)
        (self.folder / "pgbouncer.ini").write_text(f"""[databases]
{listed}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder / 'users.txt'}
pool_mode = transaction
default_pool_size = 6
max_client_conn = 200
""")
        for name in ("users.txt", "pgbouncer.ini"):
            (self.folder / name).chmod(0o644)
        user = ["-u", unprivileged_user(host)] if os.geteuid() == 0 else []
        self.process = subprocess.Popen([PGBOUNCER, *user, str(self.folder / "pgbouncer.ini")],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    pytest.fail(f"PgBouncer did not start: {self.process.communicate()[0]}")
                time.sleep(0.1)

    def url(self, direct_url):
        """Return direct_url as reached through this PgBouncer."""
        direct = make_url(direct_url)
        return direct.set(host="127.0.0.1", port=self.port, query={}).render_as_string(hide_password=False)

    def stop(self):
        """Stop PgBouncer and remove its folder."""
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer(server_url):
    """A PgBouncer in transaction mode in front of the test server; yields a function url -> pooled url."""
    bouncer = PgBouncer(server_url)
    yield bouncer.url
    bouncer.stop()


def run_cli(project, url, *args, env=None, timeout=120):
    """Run db_manage.py ARGS in project against url."""
    return subprocess.run([sys.executable, "db_manage.py", *args], cwd=project, env=cli_env(url, env),
                          capture_output=True, text=True, timeout=timeout)


def advisory_locks(direct_url):
    """Return the advisory locks held on the database of direct_url, seen from a direct connection."""
    return Database(direct_url).scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


def test_five_concurrent_upgrades_through_transaction_pooling_apply_each_revision_once(
        project, pgbouncer, missing_database_url, head_revision, all_revisions):
    dbadmin.create_database(missing_database_url)
    pooled = pgbouncer(missing_database_url)
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: run_cli(project, pooled, "upgrade"), range(5)))
    assert all(r.returncode == 0 for r in results), [r.stderr[-600:] for r in results]
    log = "".join(r.stderr for r in results)
    for revision in all_revisions:
        assert log.count(f"-> {revision['revision']},") == 1, log  # each revision ran once, in one process
    assert Database(missing_database_url).revision() == head_revision
    assert advisory_locks(missing_database_url) == 0


CONCURRENT_INDEX = """\"\"\"An index built concurrently.

Revision ID: c0cc0cc0cc01
Revises: {down}
\"\"\"
from alembic import op

revision = "c0cc0cc0cc01"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE pooled_marker (id integer)")
    with op.get_context().autocommit_block():
        op.create_index("ix_users_created_at_cc", "users", ["created_at"], postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index("ix_users_created_at_cc", table_name="users", postgresql_concurrently=True)
    op.execute("DROP TABLE pooled_marker")
"""


def test_an_autocommit_block_through_the_pooler_is_refused_and_runs_on_the_direct_url(
        project, pgbouncer, database, head_revision):
    (project / "migrations" / "versions" / "c0cc0cc0cc01_cc.py").write_text(CONCURRENT_INDEX.format(down=head_revision))
    pooled = pgbouncer(database.url)
    refused = run_cli(project, pooled, "upgrade")
    assert refused.returncode == 1
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: Migration upgrade") and "autocommit_block" in message, refused.stderr
    assert "MIGRATION_DATABASE_URL" in message and "Traceback" not in refused.stderr
    assert database.revision() == head_revision and "public.pooled_marker" not in database.tables()
    applied = run_cli(project, pooled, "upgrade", env={"MIGRATION_DATABASE_URL": database.url})
    assert applied.returncode == 0, applied.stderr
    assert "(MIGRATION_DATABASE_URL)" in applied.stderr  # the database it announces is the direct one
    assert database.revision() == "c0cc0cc0cc01" and "public.pooled_marker" in database.tables()
    assert database.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_users_created_at_cc'::regclass")
    assert advisory_locks(database.url) == 0


def test_commands_through_the_pooler_work_and_leave_no_session_state(project, pgbouncer, database, head_revision,
                                                                      tmp_path):
    pooled = pgbouncer(database.url)
    status = run_cli(project, pooled, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert f'"{head_revision}"' in status.stdout
    seeded = run_cli(project, pooled, "seed")
    assert seeded.returncode == 0, seeded.stderr
    assert database.scalar("SELECT count(*) FROM users") > 0
    down = run_cli(project, pooled, "downgrade")
    assert down.returncode == 0, down.stderr
    assert database.revision() not in (None, head_revision)
    assert run_cli(project, pooled, "upgrade").returncode == 0
    assert database.revision() == head_revision
    # pg_dump, pg_restore and psql set session settings: through a transaction pooler they are refused...
    dump = tmp_path / "pooled.dump"
    for args in (("backup", "--output", str(dump)), ("shell", "-c", "SET search_path = ''")):
        refused = run_cli(project, pooled, *args)
        assert refused.returncode == 1 and "connection pooler" in refused.stderr, refused.stderr
        assert "MIGRATION_DATABASE_URL" in refused.stderr.strip().splitlines()[-1]
    assert not dump.exists()
    # ...and run on MIGRATION_DATABASE_URL, the direct connection, leaving the pooled sessions as they were.
    direct = {"MIGRATION_DATABASE_URL": database.url}
    assert run_cli(project, pooled, "backup", "--output", str(dump), env=direct).returncode == 0
    database.execute("DELETE FROM posts")
    restored = run_cli(project, pooled, "restore", str(dump), "--yes", env=direct)
    assert restored.returncode == 0, restored.stderr
    assert database.scalar("SELECT count(*) FROM posts") > 0
    search_paths = {Database(pooled).scalar("SHOW search_path") for _ in range(12)}
    assert search_paths == {'"$user", public'}
    assert advisory_locks(database.url) == 0


def test_a_pooler_that_lists_only_the_application_database(project, server_url, database, head_revision, tmp_path):
    bouncer = PgBouncer(server_url, databases=(make_url(database.url).database,))  # no postgres database behind it
    try:
        pooled = bouncer.url(database.url)
        setup = run_cli(project, pooled, "setup")
        assert setup.returncode == 0 and "exists" in setup.stderr, setup.stderr
        backup = run_cli(project, pooled, "backup", "--output", str(tmp_path / "b.dump"))
        assert backup.returncode == 1 and "connection pooler" in backup.stderr, backup.stderr  # not "no such database"
        status = run_cli(project, pooled, "status")
        assert status.returncode == 0 and head_revision in status.stdout, status.stderr
    finally:
        bouncer.stop()
    assert database.revision() == head_revision and not (tmp_path / "b.dump").exists()
