"""Revisions with an autocommit_block (CREATE INDEX CONCURRENTLY) on a busy database, and in reset."""
import subprocess
import sys
import time
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from conftest import cli_env
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


@contextmanager
def report(url):
    """Hold a transaction with a snapshot open on another connection (a long report, say) until the block ends."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        connection.execute(text("SELECT 1 FROM posts LIMIT 1"))  # its snapshot lasts until the rollback
        yield connection
        connection.rollback()
    engine.dispose()


def start(project, url, *args, env=None):
    """Start db_manage.py ARGS in the background; return the process."""
    return subprocess.Popen([sys.executable, "db_manage.py", *args], cwd=project, env=cli_env(url, env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(database, query, process=None, timeout=120, **params):
    """Poll query until it returns a true value; fail after timeout seconds, or when process has ended."""
    deadline = time.monotonic() + timeout
    while not database.scalar(query, **params):
        assert time.monotonic() < deadline, f"never true: {query}"
        assert process is None or process.poll() is None, process.communicate()
        time.sleep(0.05)


# A session of this database waiting for another transaction to end (a concurrent build's wait), or for a lock.
WAITS_FOR_A_TRANSACTION = ("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                           "WHERE NOT l.granted AND l.locktype IN ('virtualxid', 'transactionid') "
                           "AND a.datname = current_database()")
WAITS_FOR_TABLE = ("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                   "WHERE NOT l.granted AND l.locktype = 'relation' AND l.relation = to_regclass(:table) "
                   "AND a.datname = current_database()")


def index_valid(database, name):
    """Return pg_index.indisvalid of the index `name`, or None when there is none."""
    return database.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)", name=name)


def test_a_concurrent_build_waits_for_older_transactions_within_the_whole_budget(project, database,
                                                                                 head_revision):
    write_revisions(project, head_revision)
    with report(database.url):
        upgrade = start(project, database.url, "upgrade")
        wait_for(database, WAITS_FOR_A_TRANSACTION, upgrade)  # CREATE INDEX CONCURRENTLY waits for the report
        time.sleep(2)  # longer than one 1 s attempt: the build is not cut by an attempt's lock_timeout
        assert upgrade.poll() is None, upgrade.communicate()
    _, stderr = upgrade.communicate(timeout=120)
    assert upgrade.returncode == 0, stderr
    assert database.revision() == "aaaa00000002" and index_valid(database, "ix_users_nickname") is True


def test_a_failure_after_an_autocommit_block_says_what_was_committed(cli, project, database, head_revision):
    write_revisions(project, head_revision)
    with report(database.url):  # open until the command has given up: it waits for it, past its 1.5 s budget
        result = cli("upgrade", env={"MIGRATION_LOCK_TIMEOUT": "1.5"})
    message = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert "Nothing was applied" not in message, result.stderr
    assert "was committed: the database is now at aaaa00000001" in message, result.stderr
    assert "DROP INDEX CONCURRENTLY ix_users_nickname" in message
    assert database.revision() == "aaaa00000001" and index_valid(database, "ix_users_nickname") is False


def test_reset_runs_a_concurrent_index_build_inside_its_one_transaction(cli, project, database, head_revision):
    write_revisions(project, head_revision)
    assert cli("upgrade").returncode == 0
    database.execute("INSERT INTO users (username, email) VALUES ('gone', 'gone@example.com')")
    result = cli("reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert "two steps" not in result.stderr and result.stderr.count("DROP everything below") == 1, result.stderr
    assert result.stderr.count("Running upgrade aaaa00000001 -> aaaa00000002") == 1
    assert database.revision() == "aaaa00000002" and index_valid(database, "ix_users_nickname") is True
    assert database.scalar("SELECT count(*) FROM users") == 0


def test_a_reset_whose_last_revision_fails_after_a_concurrent_build_is_undone_whole(cli, project, database,
                                                                                   head_revision):
    write_revisions(project, head_revision)
    assert cli("upgrade").returncode == 0
    database.execute("INSERT INTO users (username, email) VALUES ('kept', 'kept@example.com')")
    failing = CONCURRENT.replace("aaaa00000002", "aaaa00000003").replace("Revises: aaaa00000001",
                                                                          "Revises: aaaa00000002")
    failing = failing.replace('down_revision = "aaaa00000001"', 'down_revision = "aaaa00000002"')
    failing = failing.replace('op.create_index("ix_users_nickname", "users", ["nickname"]',
                              'op.create_index("ix_users_nothing", "users", ["no_such_column"]')
    (project / "migrations" / "versions" / "aaaa00000003_broken.py").write_text(failing)
    result = cli("reset", "--yes")
    assert result.returncode == 1 and "The reset was undone" in result.stderr, result.stderr
    assert database.revision() == "aaaa00000002" and index_valid(database, "ix_users_nickname") is True
    assert database.scalar("SELECT username FROM users") == "kept", "the drops were undone with the rest"


def test_reset_runs_a_block_that_needs_its_own_commit_in_two_steps_listing_the_drops_once(cli, project, database,
                                                                                         head_revision):
    write_revisions(project, head_revision)
    versions = project / "migrations" / "versions"
    source = (versions / "aaaa00000002_index.py").read_text()
    (versions / "aaaa00000002_index.py").write_text(source.replace(
        'postgresql_concurrently=True)\n\n\ndef downgrade',
        'postgresql_concurrently=True)\n        op.execute("VACUUM users")\n\n\ndef downgrade', 1))
    assert cli("upgrade").returncode == 0
    database.execute("INSERT INTO users (username, email) VALUES ('gone', 'gone@example.com')")
    result = cli("reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert "VACUUM cannot run inside a transaction block" in result.stderr, result.stderr
    assert "runs again in two steps" in result.stderr
    assert result.stderr.count("DROP everything below") == 1 and result.stderr.count("(emptied)") == 1
    assert database.revision() == "aaaa00000002" and index_valid(database, "ix_users_nickname") is True
    assert database.scalar("SELECT count(*) FROM users") == 0


def test_waiting_for_the_migration_lock_does_not_spend_the_lock_timeout(project, database, head_revision):
    (project / "migrations" / "versions" / "aaaa00000001_nickname.py").write_text(NICKNAME.format(down=head_revision))
    engine = create_engine(database.url, poolclass=NullPool)
    with engine.connect() as deploy, engine.connect() as reader:
        deploy.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})  # another deploy
        deploy.commit()
        reader.execute(text("SELECT 1 FROM users LIMIT 1"))  # holds users until the upgrade waits for it
        upgrade = start(project, database.url, "upgrade", env={"MIGRATION_LOCK_TIMEOUT": "3"})
        wait_for(database, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name LIKE '%(waiting for the migration lock)'", upgrade)
        time.sleep(4)  # waited longer than its whole 3 s budget, which is not spent yet: it starts at the lock
        deploy.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        deploy.commit()
        wait_for(database, WAITS_FOR_TABLE, upgrade, table="users")  # the ALTER waits behind the reader: the budget counts
        reader.rollback()
        _, stderr = upgrade.communicate(timeout=120)
    engine.dispose()
    assert upgrade.returncode == 0, stderr
    assert "Waiting for another migration" in stderr
    assert database.revision() == "aaaa00000001"
