"""MIGRATION_LOCK_TIMEOUT: checked, at least 1 ms, and spent in short attempts so readers never queue long."""
import subprocess
import sys
import threading
import time

import pytest
from conftest import cli_env
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

REVISION = """\"\"\"Add a nickname, recording the lock_timeout it ran with.

Revision ID: 10c4710c4701
Revises: {down}
\"\"\"
import sqlalchemy as sa
from alembic import op

revision = "10c4710c4701"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE lock_setting AS SELECT current_setting('lock_timeout') AS value")
    op.add_column("users", sa.Column("nickname", sa.Text()))


def downgrade():
    op.drop_column("users", "nickname")
    op.execute("DROP TABLE lock_setting")
"""


@pytest.fixture
def nickname_revision(project, head_revision):
    """A pending revision that alters users (it needs an ACCESS EXCLUSIVE lock on it)."""
    (project / "migrations" / "versions" / "10c4710c4701_nickname.py").write_text(REVISION.format(down=head_revision))
    return "10c4710c4701"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e9", "ten"])
def test_a_lock_timeout_that_is_not_finite_seconds_is_refused(cli, database, head_revision, nickname_revision, value):
    result = cli("upgrade", env={"MIGRATION_LOCK_TIMEOUT": value})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: MIGRATION_LOCK_TIMEOUT must be")
    assert "Unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert database.revision() == head_revision and "nickname" not in database.columns("users")


@pytest.mark.parametrize("value, applied", [("0.0004", "1ms"), ("0", "0"), ("10", "1s"), ("0.3", "300ms")])
def test_a_lock_timeout_is_at_least_a_millisecond_and_each_attempt_at_most_a_second(
        cli, database, nickname_revision, value, applied):
    result = cli("upgrade", env={"MIGRATION_LOCK_TIMEOUT": value})
    assert result.returncode == 0, result.stderr
    assert database.scalar("SELECT value FROM lock_setting") == applied
    assert "nickname" in database.columns("users")


def test_a_migration_that_loses_its_lock_race_retries_and_readers_wait_only_one_attempt(
        project, database, nickname_revision):
    engine = create_engine(database.url, poolclass=NullPool)
    waits, done = [], threading.Event()

    def reader():
        """Read users every 50 ms, as live traffic does, timing each read."""
        with engine.connect() as connection:
            while not done.is_set():
                started = time.monotonic()
                connection.execute(text("SELECT count(*) FROM users")).scalar()
                connection.commit()
                waits.append(time.monotonic() - started)
                time.sleep(0.05)

    with engine.connect() as holder:  # a long read keeps ACCESS SHARE on users: the ALTER must wait
        holder.execute(text("SELECT 1 FROM users LIMIT 1"))
        readers = [threading.Thread(target=reader) for _ in range(2)]
        for thread in readers:
            thread.start()
        upgrade = subprocess.Popen([sys.executable, "db_manage.py", "upgrade"], cwd=project,  # budget: 10 s of 1 s
                                   env=cli_env(database.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stderr = []
        for line in upgrade.stderr:  # the holder lets go once the upgrade has lost one attempt, however slow it runs
            stderr.append(line)
            if "retrying" in line:
                break
        holder.rollback()
        out, rest = upgrade.communicate(timeout=120)
    stderr = "".join(stderr) + rest
    done.set()
    for thread in readers:
        thread.join()
    engine.dispose()
    assert upgrade.returncode == 0, stderr
    assert "found a table busy (lock_timeout 1 s): rolled back, retrying" in stderr
    assert database.revision() == nickname_revision and "nickname" in database.columns("users")
    # Queued behind the waiting ALTER, a read waited one attempt at most (1 s), never as long as the holder.
    assert max(waits) < 3, sorted(waits)[-5:]


def test_a_migration_that_never_gets_its_lock_fails_after_its_budget_and_names_the_attempts(
        cli, database, head_revision, nickname_revision):
    engine = create_engine(database.url, poolclass=NullPool)
    with engine.connect() as holder:
        holder.execute(text("SELECT 1 FROM users LIMIT 1"))
        result = cli("upgrade", env={"MIGRATION_LOCK_TIMEOUT": "3"})
        holder.rollback()
    engine.dispose()
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "could not get its lock within 3 s (lock_timeout, in 2 attempts of 1 s)" in message, result.stderr
    assert f"Nothing was applied: the database is still at {head_revision}" in message
    assert database.revision() == head_revision and "public.lock_setting" not in database.tables()
