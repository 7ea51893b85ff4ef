"""A command that waits for a lock another session holds says so, naming the table and the session."""
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from conftest import cli_env
from db_manage_tool.lock_waits import LOOK_EVERY


def wait_until_blocked(database, command, timeout=60):
    """Return once a session of `db_manage.py command` waits on a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = database.rows("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                f"AND datname = current_database() AND application_name LIKE 'db_manage.py {command} %'")
        if waiting[0][0]:
            return
        time.sleep(0.2)
    raise AssertionError(f"db_manage.py {command} never waited for the lock")


@pytest.mark.parametrize("args, table", [(("status",), "users"), (("seed",), "users"),
                                         (("reset", "--table", "posts", "--yes"), "posts")])
def test_a_command_blocked_by_a_lock_says_who_holds_it(project, database, args, table):
    holder = create_engine(database.url, poolclass=NullPool).connect()
    transaction = holder.begin()
    quoted = holder.dialect.identifier_preparer.quote(table)
    holder.execute(text(f"LOCK TABLE {quoted} IN ACCESS EXCLUSIVE MODE"))
    holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar()
    run = subprocess.Popen([sys.executable, "db_manage.py", *args], cwd=project, env=cli_env(database.url),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        wait_until_blocked(database, args[0])
        for line in run.stderr:  # the holder lets go once the watcher has spoken, however slow the machine
            seen.append(line)
            if line.startswith("Waiting for a lock"):
                time.sleep(3 * LOOK_EVERY)  # a few more polls, which must not repeat the note
                break
    finally:
        transaction.rollback()
        holder.close()
    stdout, rest = run.communicate(timeout=60)
    stderr = "".join(seen) + rest
    assert run.returncode == 0, stderr
    notes = [line for line in stderr.splitlines() if line.startswith("Waiting for a lock")]
    assert len(notes) == 1 and f"Waiting for a lock on {table}, held by session {holder_pid}" in notes[0], stderr
    assert f"pg_terminate_backend({holder_pid})" in notes[0]
    if args[0] == "seed":
        assert database.rows("SELECT count(*) FROM users")[0][0] > 0  # it went on once the lock was released

