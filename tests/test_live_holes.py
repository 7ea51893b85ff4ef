"""Safe on live databases with no holes (issue 13): names and URLs, lock timeout values, the guard by meaning."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import Database, cli_env

from db_manage_tool import dbadmin
from db_manage_tool.production_guard import OVERRIDE_VARIABLE

PRODUCTION = {"FLASK_CONFIG": "production", "SECRET_KEY": "x" * 32}
SAMPLE = (3, 5, 6)


@pytest.mark.parametrize("target", ["head-2", "heads-2", "3e1dd673592b-2", "007244e3075d-1", "base@base"])
def test_every_spelling_of_a_downgrade_to_base_is_refused_on_production(cli, database, head_revision, target):
    assert cli("seed").returncode == 0
    assert cli("upgrade", env=PRODUCTION).returncode == 0
    result = cli("downgrade", target)
    assert result.returncode == 1, result.stderr
    assert f"Refusing to downgrade to {target}, which reverts every migration" in result.stderr
    assert database.revision() == head_revision and database.counts() == SAMPLE


def test_one_step_down_on_production_is_still_allowed(cli, database):
    assert cli("upgrade", env=PRODUCTION).returncode == 0
    result = cli("downgrade", "head-1")
    assert result.returncode == 0, result.stderr
    assert database.revision() == "007244e3075d"


def run_as_admin(url, statement, *names):
    """Run a statement whose {} are filled with quoted identifiers, autocommitted, on url's database; return its rows."""
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(make_url(url).render_as_string(hide_password=False).replace("+psycopg2", ""))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL(statement).format(*map(sql.Identifier, names)))
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def test_a_role_with_a_schema_of_its_own_name_is_guarded(cli, server_url, missing_database_url):
    role = f"owner_{uuid.uuid4().hex[:8]}"
    dbadmin.create_database(missing_database_url)
    run_as_admin(missing_database_url, "CREATE ROLE {} LOGIN", role)
    run_as_admin(missing_database_url, "CREATE SCHEMA {} AUTHORIZATION {}", role, role)
    run_as_admin(missing_database_url, "GRANT CREATE ON DATABASE {} TO {}",  # the models' analytics schema
                 make_url(missing_database_url).database, role)
    as_role = make_url(missing_database_url).set(username=role, password=None).render_as_string(hide_password=False)
    admin = Database(missing_database_url)
    try:
        assert cli("setup", url=as_role).returncode == 0
        assert admin.scalar("SELECT to_regclass(:name) IS NOT NULL", name=f"{role}.alembic_version")
        assert cli("seed", url=as_role).returncode == 0
        assert cli("upgrade", url=as_role, env=PRODUCTION).returncode == 0
        for args in (("seed",), ("reset", "--yes"), ("downgrade", "base")):
            result = cli(*args, url=as_role)
            assert result.returncode == 1 and "last migrated by the production configuration" in result.stderr, args
        users = admin.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = :role AND tablename = 'users'",
                             role=role)
        assert users == 1
        result = cli("reset", "--yes", url=as_role, env={OVERRIDE_VARIABLE: "1"})
        assert result.returncode == 0, result.stderr
        mark = run_as_admin(missing_database_url, "SELECT value FROM {}.db_manage_metadata", role)
        assert mark == [("production",)], "the mark survives an authorised reset"
        assert cli("seed", url=as_role).returncode == 1
    finally:
        dbadmin.drop_database(missing_database_url)
        run_as_admin(server_url.set(database="postgres"), "DROP ROLE IF EXISTS {}", role)


def test_a_database_named_with_equals_quotes_and_spaces_round_trips(cli, server_url, tmp_path):
    name = f"{server_url.database}_a=b it's"
    url = server_url.set(database=name).render_as_string(hide_password=False)
    dbadmin.drop_database(url)
    try:
        assert cli("setup", url=url).returncode == 0
        assert cli("seed", url=url).returncode == 0
        dump = tmp_path / "named.dump"
        result = cli("backup", "--output", str(dump), url=url)
        assert result.returncode == 0, result.stderr
        database = Database(url)
        database.execute("DELETE FROM posts")
        result = cli("restore", str(dump), "--yes", url=url)
        assert result.returncode == 0, result.stderr
        assert database.counts() == (3, 5, 6), "restored into the database that was named, not another"
        shown = cli("shell", "-c", "SELECT current_database()", url=url)
        assert shown.returncode == 0 and name in shown.stdout, shown.stdout + shown.stderr
        dbadmin.drop_database(url)
        result = cli("restore", str(dump), "--yes", url=url)
        assert result.returncode == 0, result.stderr
        assert Database(url).counts() == (3, 5, 6) and make_url(url).database == name
    finally:
        dbadmin.drop_database(url)


BRANCH = """\"\"\"A parallel branch.

Revision ID: b0b0b0b0b0b0
Revises: 007244e3075d
\"\"\"
from alembic import op

revision = "b0b0b0b0b0b0"
down_revision = "007244e3075d"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("COMMENT ON TABLE users IS 'branch b'")


def downgrade():
    op.execute("COMMENT ON TABLE users IS NULL")
"""


def test_status_lists_an_unapplied_branch_as_pending(cli, project, database, head_revision):
    (project / "migrations" / "versions" / "b0b0b0b0b0b0_parallel_branch.py").write_text(BRANCH)
    result = cli("status")
    assert result.returncode == 0, result.stderr
    assert "Pending:    1" in result.stdout and "b0b0b0b0b0b0" in result.stdout, result.stdout
    assert cli("check").returncode == 1, "check agrees: the database is behind"
    assert database.revision() == head_revision


SLOW = """\"\"\"A slow revision.

Revision ID: 51e5105105fe
Revises: 3e1dd673592b
\"\"\"
from alembic import op

revision = "51e5105105fe"
down_revision = "3e1dd673592b"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE slow_marker (id integer)")
    op.execute("SELECT pg_sleep(4)")


def downgrade():
    op.execute("DROP TABLE slow_marker")
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT], ids=["SIGTERM", "SIGKILL", "Ctrl-C"])
def test_a_killed_upgrade_applies_nothing_and_leaves_no_child(project, database, head_revision, signum):
    (project / "migrations" / "versions" / "51e5105105fe_slow.py").write_text(SLOWER)
    wrapper = subprocess.Popen([sys.executable, "db_manage.py", "upgrade"], cwd=project, env=cli_env(database.url),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not database.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(600)%'"):
        time.sleep(0.1)
    children = [int(pid) for pid in Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children").read_text().split()]
    assert children, "the upgrade runs in a child process"
    os.kill(wrapper.pid, signum)
    _, stderr = wrapper.communicate(timeout=30)
    assert wrapper.returncode == {signal.SIGTERM: 143, signal.SIGKILL: -9, signal.SIGINT: 130}[signum], stderr
    if signum == signal.SIGTERM:
        assert "Stopped by SIGTERM" in stderr and "Traceback" not in stderr
    if signum == signal.SIGINT:
        assert "Error: Interrupted (Ctrl-C)" in stderr and "Traceback" not in stderr and "Aborted" not in stderr
    # No child may run on: wait until none does and its session is gone. The 600 s statement is never waited
    # out: Ctrl-C cancels it on the server, and a stopped child's session ends with it.
    assert wait_until(lambda: not [pid for pid in children if alive(pid)]), "the child ended with the wrapper"
    assert wait_until(lambda: database.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(600)%'"
    ) == 0), "its session ended too"
    assert database.revision() == head_revision
    assert "public.slow_marker" not in database.tables()
    assert not [pid for pid in children if alive(pid)], "the child ended with the wrapper"
    assert database.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(600)%'") == 0


def alive(pid):
    """Return True when process pid runs (a zombie waiting to be reaped has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_a_backup_removes_the_partial_file_of_a_killed_one(cli, project, database, tmp_path):
    folder = tmp_path / "dumps"
    folder.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = folder / f".old.dump.{dead.pid}.abcd1234.partial"
    stale.write_bytes(b"PGDMP half a dump")
    live = folder / f".other.dump.{os.getpid()}.abcd1234.partial"  # a backup still running: kept
    live.write_bytes(b"PGDMP")
    result = cli("backup", "--output", str(folder / "new.dump"))
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and live.exists()
    assert f"Removed {stale.name}, left by a backup that was killed." in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, "new.dump"])


def test_three_setups_at_once_on_a_missing_database_all_succeed(project, missing_database_url, head_revision):
    runs = [subprocess.Popen([sys.executable, "db_manage.py", "setup"], cwd=project, env=cli_env(missing_database_url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert sum("created." in output for output in outputs) == 1, outputs  # one created it, the others found it
    assert Database(missing_database_url).revision() == head_revision
    assert not [o for o in outputs if "Unexpected" in o or "Traceback" in o]


def test_a_connect_only_role_is_told_the_grant_it_lacks(cli, server_url, database, head_revision):
    role = f"reader_{uuid.uuid4().hex[:8]}"
    run_as_admin(database.url, "CREATE ROLE {} LOGIN", role)
    as_role = make_url(database.url).set(username=role, password=None).render_as_string(hide_password=False)
    try:
        for args in (("current",), ("status",)):
            result = cli(*args, url=as_role)
            message = result.stderr.strip().splitlines()[-1]
            assert result.returncode == 1, result.stderr
            assert f'GRANT SELECT ON "alembic_version" TO "{role}"' in message, result.stderr
            assert "Nothing was applied" not in result.stderr and "Unexpected" not in result.stderr
        run_as_admin(database.url, "GRANT SELECT ON alembic_version TO {}", role)
        current = cli("current", url=as_role)
        assert current.returncode == 0 and head_revision in current.stdout + current.stderr, current.stderr
        result = cli("seed", url=as_role)
        message = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 1 and f'TO "{role}"' in message and "GRANT" in message, result.stderr
        assert database.scalar("SELECT count(*) FROM users") == 0 and database.revision() == head_revision
    finally:
        run_as_admin(database.url, "REVOKE ALL ON alembic_version FROM {}", role)
        run_as_admin(database.url, "DROP ROLE IF EXISTS {}", role)


def session_of(database, program):
    """Return the pid of the server session of a libpq program (by application_name), or None."""
    return database.scalar("SELECT max(pid) FROM pg_stat_activity WHERE application_name LIKE '% ' || :name "
                           "AND datname = current_database()", name=program)


def wait_until(predicate, timeout=60):
    """Poll predicate every 0.1 s until it is true; return whether it became true within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def kill_wrapper_waiting_in(project, database, args, program, signum):
    """Start db_manage.py ARGS while users is locked, kill it with signum once program waits; return (code, stderr, child pids)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database.url, poolclass=NullPool)
    with engine.connect() as holder:  # the program's first lock on users waits behind this one
        holder.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
        wrapper = subprocess.Popen([sys.executable, "db_manage.py", *args], cwd=project, env=cli_env(database.url),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_until(lambda: database.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '% ' || :name AND wait_event_type = 'Lock' "
            "AND datname = current_database()",
            name=program)), f"{program} waits for its lock"
        children = [int(pid) for pid in Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children").read_text().split()]
        os.kill(wrapper.pid, signum)
        _, stderr = wrapper.communicate(timeout=30)
        # The server ends the dead client's session within about a second (client_connection_check_interval).
        gone = wait_until(lambda: session_of(database, program) is None, timeout=10)
        holder.rollback()
    engine.dispose()
    assert gone, f"{program}'s server session outlived its client"
    assert not [pid for pid in children if alive(pid)], f"{program} ended with the wrapper"
    return wrapper.returncode, stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_backup_leaves_no_file(cli, project, database, tmp_path, signum):
    folder = tmp_path / "dumps"
    folder.mkdir()
    code, stderr = kill_wrapper_waiting_in(project, database, ("backup", "--output", str(folder / "b.dump")),
                                           "pg_dump", signum)
    assert code == (143 if signum == signal.SIGTERM else -9), stderr
    left = [p.name for p in folder.iterdir()]
    assert left == [] if signum == signal.SIGTERM else [p for p in left if p.endswith(".partial")] == left
    assert cli("backup", "--output", str(folder / "next.dump")).returncode == 0
    assert [p.name for p in folder.iterdir()] == ["next.dump"]  # the next backup removed the killed one's file


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_restore_leaves_the_target_as_it_was(cli, project, database, tmp_path, signum):
    assert cli("seed").returncode == 0
    dump = tmp_path / "seeded.dump"
    assert cli("backup", "--output", str(dump)).returncode == 0
    database.execute("DELETE FROM posts")
    database.execute("INSERT INTO users (username, email) VALUES ('only', 'only@example.com')")
    before = database.counts()
    code, stderr = kill_wrapper_waiting_in(project, database, ("restore", str(dump), "--yes"), "pg_restore", signum)
    assert code == (143 if signum == signal.SIGTERM else -9), stderr
    assert wait_until(lambda: session_of(database, "pg_restore") is None), "pg_restore ended with the wrapper"
    assert database.counts() == before
    assert database.scalar("SELECT count(*) FROM users WHERE username = 'only'") == 1


SLOW_RESET = SLOW.replace("pg_sleep(4)", "pg_sleep(30)")
SLOWER = SLOW.replace("pg_sleep(4)", "pg_sleep(600)")  # far longer than any test waits: never reached


def test_a_killed_reset_lets_go_of_its_locks_at_once_and_is_undone(project, database):
    (project / "migrations" / "versions" / "51e5105105fe_slow.py").write_text(SLOW_RESET)
    database.execute("INSERT INTO users (username, email) VALUES ('kept', 'kept@example.com')")
    wrapper = subprocess.Popen([sys.executable, "db_manage.py", "reset", "--yes"], cwd=project,
                               env=cli_env(database.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(30)%'"
    assert wait_until(lambda: database.scalar(sleeping)), "the reset reaches the slow revision"
    os.kill(wrapper.pid, signal.SIGKILL)
    wrapper.communicate(timeout=30)
    # The reset's transaction holds users (dropped) and waits 30 s: the server ends it within about a second.
    assert wait_until(lambda: database.scalar(sleeping) == 0, timeout=10), "the killed reset's session lives on"
    assert database.scalar("SELECT username FROM users") == "kept"


def test_ctrl_c_during_a_long_statement_of_reset_cancels_it_and_undoes_the_reset(project, database):
    """Ctrl-C cancels the statement on the server (as psql does) instead of waiting for it to end."""
    (project / "migrations" / "versions" / "51e5105105fe_slow.py").write_text(SLOWER)
    database.execute("INSERT INTO users (username, email) VALUES ('kept', 'kept@example.com')")
    wrapper = subprocess.Popen([sys.executable, "db_manage.py", "reset", "--yes"], cwd=project,
                               env=cli_env(database.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sleeping = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'SELECT pg_sleep(600)%'")
    assert wait_until(lambda: database.scalar(sleeping)), "the reset reaches the slow revision"
    os.kill(wrapper.pid, signal.SIGINT)
    _, stderr = wrapper.communicate(timeout=120)  # far less than the statement's 600 s
    assert wrapper.returncode == 130, stderr
    assert "Error: Interrupted (Ctrl-C)" in stderr and "Traceback" not in stderr, stderr
    assert database.scalar(sleeping) == 0 and database.scalar("SELECT username FROM users") == "kept"


def test_a_wrapper_that_ignores_sighup_runs_on_like_its_child(project, database, head_revision):
    (project / "migrations" / "versions" / "51e5105105fe_slow.py").write_text(SLOW)
    wrapper = subprocess.Popen([sys.executable, "db_manage.py", "upgrade"], cwd=project, env=cli_env(database.url),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup does
    assert wait_until(lambda: database.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(4)%'"))
    os.kill(wrapper.pid, signal.SIGHUP)
    _, stderr = wrapper.communicate(timeout=60)
    assert wrapper.returncode == 0 and "Stopped" not in stderr, stderr
    assert database.revision() == "51e5105105fe" and "public.slow_marker" in database.tables()


def test_a_password_with_a_space_is_never_shown(cli, database):
    url = make_url(database.url).set(password="ab secretx").render_as_string(hide_password=False)
    for args in (("current",), ("status",), ("upgrade",)):
        result = cli(*args, url=url)
        assert result.returncode == 0, result.stderr
        assert "secretx" not in result.stdout + result.stderr


def test_ctrl_c_while_the_child_still_imports_the_application_is_one_line(project, database, head_revision):
    """Ctrl-C as the forked `flask db` child loads the application: "Interrupted", no traceback, nothing applied."""
    run_py = project / "run.py"
    run_py.write_text("import pathlib, time\npathlib.Path('importing').touch()\ntime.sleep(60)\n" + run_py.read_text())
    (project / "migrations" / "versions" / "51e5105105fe_slow.py").write_text(SLOW)
    wrapper = subprocess.Popen([sys.executable, "db_manage.py", "upgrade"], cwd=project, env=cli_env(database.url),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (project / "importing").exists() and wrapper.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(wrapper.pid, signal.SIGINT)
    _, stderr = wrapper.communicate(timeout=60)
    assert wrapper.returncode == 130, stderr
    assert "Error: Interrupted (Ctrl-C)" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert database.revision() == head_revision and "public.slow_marker" not in database.tables()


def test_ctrl_c_after_revision_wrote_its_file_names_the_file(project, database):
    """The file Alembic wrote before Ctrl-C (here, during a post-write hook) is named: review it, or delete it."""
    ini = project / "migrations" / "alembic.ini"
    hook = "import pathlib, time; pathlib.Path('hooked').touch(); time.sleep(600)"
    ini.write_text(ini.read_text() + f"\n[post_write_hooks]\nhooks = slow\nslow.type = exec\n"
                                     f"slow.executable = {sys.executable}\nslow.options = -c \"{hook}\" REVISION_SCRIPT_FILENAME\n")
    before = set((project / "migrations" / "versions").iterdir())
    wrapper = subprocess.Popen([sys.executable, "db_manage.py", "revision", "Hooked"], cwd=project,
                               env=cli_env(database.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: (project / "hooked").exists() or wrapper.poll() is not None), "the hook runs"
    assert wrapper.poll() is None, wrapper.communicate()
    os.kill(wrapper.pid, signal.SIGINT)
    _, stderr = wrapper.communicate(timeout=120)
    (written,) = set((project / "migrations" / "versions").iterdir()) - before
    assert wrapper.returncode == 130, stderr
    assert f"Note: migrations/versions/{written.name} was written before the interruption" in stderr, stderr
    assert "Error: Interrupted (Ctrl-C)" in stderr and "Traceback" not in stderr


def test_a_seed_whose_session_is_terminated_mid_copy_is_one_sentence_and_writes_nothing(project, database):
    """pg_terminate_backend (or a server stopped) while seed streams COPY: no SystemError, no traceback, no rows."""
    seed = subprocess.Popen([sys.executable, "db_manage.py", "seed", "--rows", "users=10", "--rows", "posts=3000000"],
                            cwd=project, env=cli_env(database.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    copying = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY%posts%' "
               "AND state = 'active'")
    deadline, pids = time.monotonic() + 120, []
    while not pids and seed.poll() is None and time.monotonic() < deadline:
        pids = [row[0] for row in database.rows(copying)]
        time.sleep(0.05)
    assert pids, seed.communicate()
    database.rows(f"SELECT pg_terminate_backend({int(pids[0])})")
    _, stderr = seed.communicate(timeout=120)
    assert seed.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "The server ended the session while the command ran" in errors[0], stderr
    assert "Traceback" not in stderr and "SystemError" not in stderr and "Unexpected" not in stderr
    assert database.counts() == (0, 0, 0)
