"""Revisions with an autocommit_block (CREATE INDEX CONCURRENTLY) on a busy database, and in reset."""
import threading
import time

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from db_manage_tool.migration_safety import MIGRATION_LOCK_KEY

NICKNAME = """\"\"\"Add a nickname.

Revision ID: aaaa00000001
Revises: {down}
\"\"\"
import sqlalchemy as sa
from alembic import op

revision = "aaaa00000001"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("nickname", sa.Text()))


def downgrade():
    op.drop_column("users", "nickname")
"""

CONCURRENT = """\"\"\"Index the nickname concurrently.

Revision ID: aaaa00000002
Revises: aaaa00000001
\"\"\"
from alembic import op

revision = "aaaa00000002"
down_revision = "aaaa00000001"
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index("ix_users_nickname", "users", ["nickname"], postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index("ix_users_nickname", table_name="users", postgresql_concurrently=True)
"""


def write_revisions(project, head_revision):
    """Write the two revisions: a column, then its index built concurrently."""
    versions = project / "migrations" / "versions"
    (versions / "aaaa00000001_nickname.py").write_text(NICKNAME.format(down=head_revision))
    (versions / "aaaa00000002_index.py").write_text(CONCURRENT)


def busy(url, seconds):
    """Run a query of `seconds` on another connection (a report, say), in a thread; return the thread."""
    started = threading.Event()

    def run():
        engine = create_engine(url, poolclass=NullPool)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1 FROM posts LIMIT 1"))  # an open transaction with a snapshot
            started.set()
            connection.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
        engine.dispose()

    thread = threading.Thread(target=run)
    thread.start()
    started.wait(10)
    return thread


def index_valid(database, name):
    """Return pg_index.indisvalid of the index `name`, or None when there is none."""
    return database.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)", name=name)


def test_a_concurrent_build_waits_for_older_transactions_within_the_whole_budget(cli, project, database,
                                                                                 head_revision):
    write_revisions(project, head_revision)
    report = busy(database.url, 3)  # CREATE INDEX CONCURRENTLY waits for it: longer than one 1 s attempt
    result = cli("upgrade")
    report.join()
    assert result.returncode == 0, result.stderr
    assert database.revision() == "aaaa00000002" and index_valid(database, "ix_users_nickname") is True


def test_a_failure_after_an_autocommit_block_says_what_was_committed(cli, project, database, head_revision):
    write_revisions(project, head_revision)
    report = busy(database.url, 12)  # longer than the command's start-up on a loaded machine plus its 1.5 s budget
    result = cli("upgrade", env={"MIGRATION_LOCK_TIMEOUT": "1.5"})
    report.join()
    message = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert "Nothing was applied" not in message, result.stderr
    assert "was committed: the database is now at aaaa00000001" in message, result.stderr
    assert "DROP INDEX CONCURRENTLY ix_users_nickname" in message
    assert database.revision() == "aaaa00000001" and index_valid(database, "ix_users_nickname") is False


def test_reset_runs_revisions_with_an_autocommit_block_in_two_steps(cli, project, database, head_revision):
    write_revisions(project, head_revision)
    assert cli("upgrade").returncode == 0
    database.execute("INSERT INTO users (username, email) VALUES ('gone', 'gone@example.com')")
    result = cli("reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert "runs again in two steps" in result.stderr
    assert database.revision() == "aaaa00000002" and index_valid(database, "ix_users_nickname") is True
    assert database.scalar("SELECT count(*) FROM users") == 0


def test_waiting_for_the_migration_lock_does_not_spend_the_lock_timeout(cli, project, database, head_revision):
    (project / "migrations" / "versions" / "aaaa00000001_nickname.py").write_text(NICKNAME.format(down=head_revision))
    engine = create_engine(database.url, poolclass=NullPool)
    with engine.connect() as deploy, engine.connect() as reader:
        deploy.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})  # another deploy, 4 s
        deploy.commit()
        reader.execute(text("SELECT 1 FROM users LIMIT 1"))  # holds users until 5 s
        threading.Timer(4, lambda: (deploy.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY}),
                                    deploy.commit())).start()
        threading.Timer(5, reader.rollback).start()
        started = time.monotonic()
        result = cli("upgrade", env={"MIGRATION_LOCK_TIMEOUT": "3"})  # 3 s from the lock on: enough
        time.sleep(max(0.0, 5.5 - (time.monotonic() - started)))
    engine.dispose()
    assert result.returncode == 0, result.stderr
    assert "Waiting for another migration" in result.stderr
    assert database.revision() == "aaaa00000001"
