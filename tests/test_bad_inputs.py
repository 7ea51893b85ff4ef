"""Bad input, as a user types it: one sentence saying what to do, the right exit code, nothing changed, no password.

Each row of CASES is one input: a test id, the arguments, the environment it adds, an optional
preparation of the project copy, the exit code, and a word of the fix that the error must hold.
Every row runs db_manage.py against its own database (with a password in its URL, which the
server's trust authentication ignores), and checks that the database is exactly as before.
"""
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from conftest import Database, cli_env
from db_manage_tool import dbadmin
from db_manage_tool.database_url import ConfigError, mask, normalise, scrub

SECRET = "s3cr3t-pw"


@dataclass
class Case:
    """One bad input and what the user must be told."""

    id: str
    args: tuple
    code: int
    says: str  # a few words of the sentence: what went wrong or what to do
    env: dict = field(default_factory=dict)
    prepare: Callable = None  # prepare(project, url, tmp_path) -> None, before the command runs
    listed: bool = False  # the advice is in the lines the error sums up (check lists each difference)


def write(relative, content):
    """Return a preparation that writes content (text or bytes) at relative in the project copy."""
    def prepare(project, url, tmp_path):
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return prepare


EMPTY_REVISION = '''"""{message}

Revision ID: {revision}
Revises: {revises}
"""
revision = "{revision}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
'''
BRANCH = EMPTY_REVISION.format(message="A second branch.", revision="b2a2c2d2e2f2", revises="007244e3075d",
                               down="007244e3075d")
MERGE = EMPTY_REVISION.format(message="Merge the branches.", revision="c3c3c3c3c3c3",
                              revises="3e1dd673592b, b2a2c2d2e2f2", down=("3e1dd673592b", "b2a2c2d2e2f2"))


def at_a_merge_point(project, url, tmp_path):
    """Write a branch and its merge, and upgrade the database to the merge."""
    write("migrations/versions/b2_branch.py", BRANCH)(project, url, tmp_path)
    write("migrations/versions/c3_merge.py", MERGE)(project, url, tmp_path)
    done = subprocess.run([sys.executable, "db_manage.py", "upgrade"], cwd=project, env=cli_env(url),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


BROKEN = BRANCH.replace("def upgrade():\n    pass", "def upgrade(:\n    pass")
SELF_LOOP = EMPTY_REVISION.format(message="Its own parent.", revision="d4d4d4d4d4d4", revises="d4d4d4d4d4d4",
                                  down="d4d4d4d4d4d4")
CYCLE_A = EMPTY_REVISION.format(message="One of two.", revision="e5e5e5e5e5e5", revises="f6f6f6f6f6f6",
                                down="f6f6f6f6f6f6")
CYCLE_B = EMPTY_REVISION.format(message="Two of two.", revision="f6f6f6f6f6f6", revises="e5e5e5e5e5e5",
                                down="e5e5e5e5e5e5")


def a_cycle(project, url, tmp_path):
    """Write two revisions that are each other's down_revision."""
    write("migrations/versions/e5_one.py", CYCLE_A)(project, url, tmp_path)
    write("migrations/versions/f6_two.py", CYCLE_B)(project, url, tmp_path)


def with_url(variable, change):
    """Return an env maker that sets variable to the test database's URL changed by change(url)."""
    return {variable: change}


def dump_of_another_project(project, url, tmp_path):
    """Write other.dump: the backup of a database whose alembic_version holds a revision no file here has."""
    other = make_url(url).set(database=make_url(url).database + "_other").render_as_string(hide_password=False)
    dbadmin.create_database(other)
    try:
        Database(other).execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); "
                                "INSERT INTO alembic_version VALUES ('0ther0ther00')")
        made = subprocess.run([sys.executable, "db_manage.py", "backup", "--output", str(tmp_path / "other.dump")],
                              cwd=project, env=cli_env(other), capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
    finally:
        dbadmin.drop_database(other)


ON_HEAD = EMPTY_REVISION.format(message="On top of head.", revision="b2a2c2d2e2f2", revises="3e1dd673592b",
                                down="3e1dd673592b")
RAISES = ON_HEAD.replace("def upgrade():\n    pass",
                         'def upgrade():\n    raise ValueError("the data is not what I expected")')
BAD_SQL = ON_HEAD.replace("def upgrade():\n    pass",
                          "def upgrade():\n    from alembic import op\n"
                          '    op.execute("CREATE TABLE half_done (id int)")\n'
                          '    op.execute("UPDATE users SET WHERE")')
NO_UPGRADE = ON_HEAD.replace("def upgrade():\n    pass\n", "")
NO_REVISION_LINE = ON_HEAD.replace('revision = "b2a2c2d2e2f2"\n', "")
SAME_START = ON_HEAD.replace("b2a2c2d2e2f2", "3e1aaaaaaaaa")  # its id starts as head's does
FACTORY = '''def create_app():
    raise RuntimeError("config missing: SOMETHING_URL")


def make_none():
    return None
'''
ENV_PY_SYNTAX_ERROR = "from alembic import context\ndef run(:\n"


def on_database(sql):
    """Return a preparation that runs sql on the test's database (the table then takes that state as 'before')."""
    def prepare(project, url, tmp_path):
        Database(url).execute(sql)
    return prepare


def behind_with_an_empty_env_py(project, url, tmp_path):
    """Take the database one revision down, then empty env.py: an upgrade would run nothing."""
    done = subprocess.run([sys.executable, "db_manage.py", "downgrade"], cwd=project, env=cli_env(url),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (project / "migrations" / "env.py").write_text("")


def a_view_and_a_sequence(project, url, tmp_path):
    """Create a view and a sequence in public: objects `reset --table` must not take for tables."""
    Database(url).execute("CREATE VIEW user_names AS SELECT username FROM users; CREATE SEQUENCE my_seq")


def a_truncated_dump(project, url, tmp_path):
    """Write {tmp}/cut.dump: this database's backup, its last 300 bytes cut (its table of contents still reads)."""
    made = subprocess.run([sys.executable, "db_manage.py", "backup", "--output", str(tmp_path / "whole.dump")],
                          cwd=project, env=cli_env(url), capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    whole = (tmp_path / "whole.dump").read_bytes()
    (tmp_path / "cut.dump").write_bytes(whole[:-300])


def a_fifo(relative):
    """Return a preparation that makes a named pipe at relative (reading it would wait forever)."""
    def prepare(project, url, tmp_path):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(project / relative)
    return prepare


def a_dangling_link(relative):
    """Return a preparation that makes relative a link to a file that does not exist."""
    def prepare(project, url, tmp_path):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).unlink(missing_ok=True)
        os.symlink("/nonexistent/settings", project / relative)
    return prepare


PLAIN_DUMP = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n"


UNKNOWN_REVISION_RECORDED = on_database("UPDATE alembic_version SET version_num = 'feedfacecafe'")
TABLES_WITHOUT_A_RECORD = on_database("DROP TABLE alembic_version")


CASES = [
    # Usage errors (exit 2): the command line itself is wrong.
    Case("unknown-command", ("frobnicate",), 2, "No such command"),
    Case("unknown-option", ("upgrade", "--frobnicate"), 2, "No such option"),
    Case("missing-message", ("migrate",), 2, "Missing argument"),
    Case("empty-message", ("migrate", ""), 2, "MESSAGE is empty"),
    Case("blank-revision-message", ("revision", "   "), 2, "MESSAGE is empty"),
    Case("empty-config", ("--config", "", "status"), 2, "needs a value"),
    Case("empty-app", ("--app", "", "status"), 2, "needs a value"),
    Case("downgrade-yes", ("downgrade", "--yes"), 2, "No such option"),
    Case("lint-unknown-rule", ("lint", "--exclude", "no-such-rule"), 2, "no rule 'no-such-rule'"),
    Case("rows-fraction", ("seed", "--rows", "users=1.5"), 2, "MODEL=COUNT"),
    Case("rows-unknown-model", ("seed", "--rows", "nosuch=3"), 2, "No model or table named"),
    Case("rows-no-model", ("seed", "--rows", "=5"), 2, "MODEL=COUNT"),
    Case("rows-negative", ("seed", "--rows", "users=-1"), 2, "MODEL=COUNT"),
    Case("rows-twice", ("seed", "--rows", "users=2", "--rows", "User=3"), 2, "asked for twice"),
    Case("help-unknown", ("help", "nope"), 2, "No such command"),
    Case("status-extra-argument", ("status", "extra"), 2, "unexpected extra argument"),
    Case("backup-output-missing", ("backup", "--output"), 2, "requires an argument"),
    Case("restore-no-path", ("restore",), 2, "Missing argument"),
    Case("backup-output-folder", ("backup", "--output", "/tmp"), 2, "is a directory"),
    # Revisions that do not exist or cannot be reached.
    Case("unknown-revision", ("upgrade", "deadbeef1234"), 1, "history"),
    Case("too-many-steps-down", ("downgrade", "-5"), 1, "fewer than 5 migrations"),
    Case("too-many-steps-up", ("upgrade", "+3"), 1, "fewer than 3 migrations"),
    Case("stamp-unknown", ("stamp", "nosuch"), 1, "No migration file has the revision"),
    Case("nothing-to-merge", ("merge", "-m", "Merge"), 1, "Nothing to merge"),
    Case("two-heads-upgrade", ("upgrade",), 1, "merge", prepare=write("migrations/versions/b2_branch.py", BRANCH)),
    Case("two-heads-check", ("check",), 1, "join them with `python db_manage.py merge", listed=True,
         prepare=write("migrations/versions/b2_branch.py", BRANCH)),
    Case("two-heads-migrate", ("migrate", "Add things"), 1, "merge",
         prepare=write("migrations/versions/b2_branch.py", BRANCH)),
    Case("ambiguous-walk", ("downgrade",), 1, "name the revision to go down to", prepare=at_a_merge_point),
    Case("revision-raises-at-import", ("status",), 1, "failed to load (RuntimeError: boom",
         prepare=write("migrations/versions/b2_branch.py", BRANCH.replace("import", "import", 1).replace(
             'revision = "b2a2c2d2e2f2"', 'raise RuntimeError("boom")\nrevision = "b2a2c2d2e2f2"'))),
    Case("down-revision-missing", ("upgrade",), 1, "no file in migrations/versions has that revision",
         prepare=write("migrations/versions/b2_branch.py", BRANCH.replace("'007244e3075d'", "'abcabcabcabc'"))),
    Case("duplicate-revision-id", ("upgrade",), 1, "Several migration files have the revision id 3e1dd673592b",
         prepare=lambda project, url, tmp_path: shutil.copy(
             project / "migrations/versions/3e1dd673592b_add_post_status.py", project / "migrations/versions/copy.py")),
    Case("duplicate-revision-id-reset", ("reset", "--yes"), 1, "delete the copy",
         prepare=lambda project, url, tmp_path: shutil.copy(
             project / "migrations/versions/3e1dd673592b_add_post_status.py", project / "migrations/versions/copy.py")),
    Case("empty-alembic-ini", ("upgrade",), 1, "run `python db_manage.py adopt`", prepare=write("migrations/alembic.ini", "")),
    Case("migrations-is-a-file", ("status",), 1, "is a file, where the migrations folder should be",
         prepare=lambda project, url, tmp_path: (shutil.rmtree(project / "migrations"),
                                                 (project / "migrations").write_text("notes\n"))),
    Case("adopt-migrations-is-a-file", ("adopt",), 1, "move it away",
         prepare=lambda project, url, tmp_path: (shutil.rmtree(project / "migrations"),
                                                 (project / "migrations").write_text("notes\n"))),
    Case("empty-revision-upgrade", ("upgrade", ""), 2, "is empty"),
    Case("empty-revision-downgrade", ("downgrade", ""), 2, "is empty"),
    Case("empty-revision-stamp", ("stamp", ""), 2, "is empty"),
    Case("range-without-sql", ("upgrade", "007244e3075d:3e1dd673592b"), 2, "only for --sql"),
    Case("downgrade-sql-without-range", ("downgrade", "base", "--sql"), 1, "needs FROM:TO"),
    Case("upgrade-sql-reversed-range", ("upgrade", "3e1dd673592b:007244e3075d", "--sql"), 1,
         "Swap them (upgrade 007244e3075d:3e1dd673592b --sql)"),
    Case("downgrade-sql-reversed-range", ("downgrade", "007244e3075d:3e1dd673592b", "--sql"), 1, "Swap them"),
    Case("upgrade-sql-empty-range", ("upgrade", "007244e3075d:007244e3075d", "--sql"), 1, "the same revision"),
    Case("empty-merge-message", ("merge", "-m", ""), 2, "MESSAGE is empty"),
    Case("lint-base", ("lint", "base"), 2, "no revision to lint"),
    Case("lint-empty-exclude", ("lint", "--exclude", ""), 2, "needs a rule name"),
    Case("reset-without-env-py", ("reset", "--yes"), 1, "has no env.py",
         prepare=lambda project, url, tmp_path: (project / "migrations" / "env.py").unlink()),
    Case("lint-without-env-py", ("lint",), 1, "has no env.py",
         prepare=lambda project, url, tmp_path: (project / "migrations" / "env.py").unlink()),
    Case("erd-over-another-file", ("erd", "--output", "run.py"), 1, "not a diagram this command wrote"),
    Case("backup-over-a-device", ("backup", "--output", "/dev/null", "--force"), 1, "not a regular file"),
    Case("dotenv-empty-url", ("status",), 1, "set but empty", env={"DATABASE_URL": ""}),
    Case("url-long-database-name", ("status",), 1, "63 at most",
         env=with_url("DATABASE_URL", lambda u: u.set(database="x" * 70))),
    Case("fixture-empty-path", ("seed", "--fixture", ""), 2, "is empty"),
    Case("global-option-after-command", ("status", "--verbose"), 2, "put it before the command"),
    Case("postmaster-pid-garbage", ("server", "status"), 1, "postmaster.pid cannot be read",
         prepare=write("instance/pgdata/postmaster.pid", "garbage\n")),
    Case("pgdata-without-pg-version", ("server", "start"), 1, "no PG_VERSION",
         prepare=write("instance/pgdata/base/1/1259", "half a data directory")),
    Case("revision-syntax-error", ("upgrade",), 1, "does not compile",
         prepare=write("migrations/versions/b2_branch.py", BROKEN)),
    Case("lint-syntax-error", ("lint",), 1, "does not compile",
         prepare=write("migrations/versions/b2_branch.py", BROKEN)),
    # Files: backups, dumps, fixtures.
    Case("restore-missing-file", ("restore", "/nonexistent/x.dump", "--yes"), 1, "No backup file"),
    Case("restore-not-a-dump", ("restore", "run.py", "--yes"), 1, "not a backup that pg_restore can read"),
    Case("restore-unknown-revision", ("restore", "{tmp}/other.dump", "--yes"), 1, "--any-revision",
         prepare=dump_of_another_project),
    Case("restore-without-yes", ("restore", "{tmp}/other.dump", "--any-revision"), 1, "Pass --yes",
         prepare=dump_of_another_project),
    Case("backup-no-folder", ("backup", "--output", "/nonexistent/x.dump"), 1, "There is no folder"),
    Case("backup-existing-file", ("backup", "--output", "run.py"), 1, "--force"),
    Case("backup-unwritable-folder", ("backup", "--output", "/proc/x.dump"), 1, "choose another place"),
    Case("fixture-missing", ("seed", "--fixture", "/nonexistent/users.json"), 1, "/nonexistent/users.json"),
    Case("fixture-malformed", ("seed", "--fixture", "bad/users.json"), 1, "users.json",
         prepare=write("bad/users.json", '[{"username": "ada", }]')),
    Case("fixture-nan", ("seed", "--fixture", "bad/users.json"), 1, "users.json",
         prepare=write("bad/users.json", '[{"username": "ada", "email": NaN}]')),
    Case("erd-output-under-a-file", ("erd", "--output", "run.py/erd.md"), 1, "run.py"),
    # Destructive commands without a terminal, or on production.
    Case("reset-without-yes", ("reset",), 1, "Pass --yes"),
    Case("production-seed", ("seed",), 1, "Refusing to seed",
         env={"FLASK_CONFIG": "production", "SECRET_KEY": "k" * 32}),
    Case("production-reset", ("reset", "--yes"), 1, "Refusing",
         env={"FLASK_CONFIG": "production", "SECRET_KEY": "k" * 32}),
    Case("production-downgrade-base", ("downgrade", "base"), 1, "Refusing",
         env={"FLASK_CONFIG": "production", "SECRET_KEY": "k" * 32}),
    Case("production-no-secret", ("status",), 1, "SECRET_KEY must be set", env={"FLASK_CONFIG": "production"}),
    Case("unknown-config", ("--config", "staging", "status"), 1, "Unknown configuration"),
    # Database URLs: never their password.
    Case("url-malformed", ("status",), 1, "not a valid database URL",
         env={"DATABASE_URL": f"postgresql//root:{SECRET}@@127.0.0.1:5432"}),
    Case("url-bad-port", ("status",), 1, "not a valid database URL",
         env={"DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:notaport/app"}),
    Case("url-mysql", ("status",), 1, "PostgreSQL only", env={"DATABASE_URL": f"mysql://app:{SECRET}@127.0.0.1/app"}),
    Case("url-raw-at-in-password", ("status",), 1, "write each @ of the password as %40",
         env={"DATABASE_URL": f"postgresql://app:Sup3r@{SECRET}@127.0.0.1/app"}),
    Case("url-asyncpg", ("status",), 1, "postgresql://",
         env={"DATABASE_URL": f"postgresql+asyncpg://app:{SECRET}@127.0.0.1/app"}),
    Case("url-no-database", ("status",), 1, "names no database",
         env={"DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:5432"}),
    Case("url-closed-port", ("status",), 1, "is the server running",
         env={"DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:1/app"}),
    Case("url-unknown-host", ("upgrade",), 1, "unknown host",
         env={"DATABASE_URL": f"postgresql://app:{SECRET}@no-such-host.invalid:5432/app"}),
    Case("url-bad-sslmode", ("status",), 1, "use disable, allow, prefer, require",
         env=with_url("DATABASE_URL", lambda u: u.update_query_dict({"sslmode": "bogus"}))),
    Case("url-port-out-of-range", ("upgrade",), 1, "give one from 1 to 65535",
         env=with_url("DATABASE_URL", lambda u: u.set(port=99999))),
    Case("url-unknown-option", ("status",), 1, "remove it from the URL's query string",
         env=with_url("DATABASE_URL", lambda u: u.update_query_dict({"colour": "blue"}))),
    Case("url-option-not-a-number", ("backup",), 1, "not a whole number",
         env=with_url("DATABASE_URL", lambda u: u.update_query_dict({"connect_timeout": "soon"}))),
    Case("url-server-setting-unknown", ("upgrade",), 1, "The server has no setting",
         env=with_url("DATABASE_URL", lambda u: u.update_query_dict({"options": "-c no_such_setting=1"}))),
    Case("url-unknown-role", ("status",), 1, "no role", env=with_url("DATABASE_URL", lambda u: u.set(username="nosuchrole"))),
    Case("migration-url-malformed", ("upgrade",), 1, "MIGRATION_DATABASE_URL is not a valid database URL",
         env={"MIGRATION_DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:x/app"}),
    Case("migration-url-another-database", ("status",), 1, "MIGRATION_DATABASE_URL reaches the database 'postgres'",
         env=with_url("MIGRATION_DATABASE_URL", lambda u: u.set(database="postgres"))),
    Case("missing-database-status", ("status",), 1, "`python db_manage.py setup`",
         env=with_url("DATABASE_URL", lambda u: u.set(database=u.database + "_missing"))),
    Case("missing-database-config", ("--config", "development", "status"), 1,
         "`python db_manage.py --config development setup`",
         env=with_url("DATABASE_URL", lambda u: u.set(database=u.database + "_missing"))),
    Case("missing-database-upgrade", ("upgrade",), 1, "setup",
         env=with_url("DATABASE_URL", lambda u: u.set(database=u.database + "_missing"))),
    Case("missing-database-shell", ("shell", "-c", "SELECT 1"), 1, "setup",
         env=with_url("DATABASE_URL", lambda u: u.set(database=u.database + "_missing"))),
    Case("missing-database-backup", ("backup",), 1, "setup",
         env=with_url("DATABASE_URL", lambda u: u.set(database=u.database + "_missing"))),
    # Settings.
    Case("lock-timeout-nan", ("upgrade",), 1, "MIGRATION_LOCK_TIMEOUT must be", env={"MIGRATION_LOCK_TIMEOUT": "nan"}),
    Case("lock-timeout-inf", ("upgrade",), 1, "MIGRATION_LOCK_TIMEOUT must be", env={"MIGRATION_LOCK_TIMEOUT": "inf"}),
    Case("lock-timeout-huge", ("upgrade",), 1, "MIGRATION_LOCK_TIMEOUT must be", env={"MIGRATION_LOCK_TIMEOUT": "1e9"}),
    Case("lock-timeout-word", ("upgrade",), 1, "MIGRATION_LOCK_TIMEOUT must be", env={"MIGRATION_LOCK_TIMEOUT": "ten"}),
    Case("dotenv-unclosed-quote", ("status",), 1, ".env line 2 cannot be parsed",
         prepare=write(".env", 'FLASK_CONFIG=development\nDATABASE_URL="postgresql://x\n')),
    Case("dotenv-not-utf8", ("status",), 1, "not UTF-8", prepare=write(".env", b"SECRET_KEY=\xff\xfe\n")),
    Case("flaskenv-unclosed-quote", ("status",), 1, ".flaskenv line 1", prepare=write(".flaskenv", "FLASK_APP='run.py\n")),
    # FLASK_APP given: the wrapper reads neither file, the application loader checks them (in process and in flask db).
    Case("dotenv-unclosed-quote-app-given", ("status",), 1, ".env line 2 cannot be parsed", env={"FLASK_APP": "run.py"},
         prepare=write(".env", 'FLASK_CONFIG=development\nDATABASE_URL="postgresql://x\n')),
    Case("dotenv-unclosed-quote-flask-db", ("upgrade",), 1, ".env line 2 cannot be parsed", env={"FLASK_APP": "run.py"},
         prepare=write(".env", 'FLASK_CONFIG=development\nDATABASE_URL="postgresql://x\n')),
    Case("app-missing-file", ("--app", "nosuch.py", "status"), 1, "FLASK_APP"),
    *[Case(f"revision-its-own-parent-{command}", (command,), 1, "migrations/versions/d4_self.py: fix the down_revision",
           prepare=write("migrations/versions/d4_self.py", SELF_LOOP))
      for command in ("status", "check", "heads", "history", "upgrade", "lint")],
    *[Case(f"revisions-in-a-cycle-{args[0]}", args, 1,
           "e5e5e5e5e5e5, f6f6f6f6f6f6 lead back to themselves", prepare=a_cycle)
      for args in (("status",), ("migrate", "Add a column"), ("setup",))],
    Case("app-missing-factory", ("--app", "run:nope()", "status"), 1, "FLASK_APP"),
    Case("app-import-error", ("status",), 1, "failed to import",
         prepare=write("run.py", "import no_such_module_here\n")),
    # A hostile review (issue 25): revision arguments that cannot mean anything.
    Case("upgrade-below-base", ("upgrade", "base-1"), 2, "lies below base"),
    Case("downgrade-below-base", ("downgrade", "base-1"), 2, "lies below base"),
    Case("downgrade-above-head", ("downgrade", "head+1"), 2, "lies above head"),
    Case("upgrade-step-zero", ("upgrade", "+0"), 2, "a step of zero"),
    Case("downgrade-step-zero", ("downgrade", "-0"), 2, "a step of zero"),
    Case("upgrade-step-down", ("upgrade", "--", "-1"), 2, "upgrade goes up"),
    Case("lint-step", ("lint", "--", "-1"), 2, "lint takes revisions"),
    Case("lint-range", ("lint", "base:head"), 2, "lint takes revisions, not a range"),
    Case("upgrade-ambiguous-prefix", ("upgrade", "3e1"), 1, "'3e1' is the start of several revisions",
         prepare=write("migrations/versions/3e1a_same_start.py", SAME_START)),
    Case("downgrade-past-head-from-a-revision", ("downgrade", "3e1dd673592b+1"), 1, "beyond the ends of the history"),
    Case("upgrade-unknown-branch-label", ("upgrade", "mybranch@head"), 1, "No migration file has the revision 'mybranch'"),
    Case("upgrade-unicode-revision", ("upgrade", "héad"), 1, "No migration file has the revision 'héad'"),
    Case("stamp-two-revisions", ("stamp", "3e1dd673592b", "007244e3075d"), 2, "unexpected extra argument"),
    Case("lint-unknown-revision", ("lint", "nosuch"), 1, "No migration file has the revision 'nosuch'"),
    # Revision files that are not whole, or fail when run: rolled back, named.
    Case("revision-file-without-revision-line", ("status",), 1, "has no `revision = \"...\"` line",
         prepare=write("migrations/versions/b2_on_head.py", NO_REVISION_LINE)),
    Case("revision-file-empty", ("upgrade",), 1, "or is empty", prepare=write("migrations/versions/b2_on_head.py", "")),
    *[Case(f"revision-id-a-number-{command}", (command,), 1, "is not a revision id in quotes",
           prepare=write("migrations/versions/b2_on_head.py", ON_HEAD.replace('revision = "b2a2c2d2e2f2"',
                                                                             "revision = 123")))
      for command in ("status", "upgrade")],
    Case("revision-without-upgrade", ("upgrade",), 1, "has no upgrade() function",
         prepare=write("migrations/versions/b2_on_head.py", NO_UPGRADE)),
    Case("upgrade-raises-value-error", ("upgrade",), 1,
         "ValueError: the data is not what I expected. Nothing was applied",
         prepare=write("migrations/versions/b2_on_head.py", RAISES)),
    Case("upgrade-invalid-sql", ("upgrade",), 1, "Nothing was applied: the database is still at 3e1dd673592b",
         prepare=write("migrations/versions/b2_on_head.py", BAD_SQL)),
    Case("migrate-with-pending-revision", ("migrate", "Add things"), 1,
         "Apply them first with `python db_manage.py upgrade`",
         prepare=write("migrations/versions/b2_on_head.py", ON_HEAD)),
    Case("upgrade-with-an-empty-env-py", ("upgrade",), 1, "ran no migration", prepare=behind_with_an_empty_env_py),
    # The database records a revision no file has, or none while its tables exist.
    *[Case(f"recorded-revision-unknown-{'-'.join(args)}", args, 1, "stamp --purge REVISION",
           prepare=UNKNOWN_REVISION_RECORDED)
      for args in (("upgrade",), ("check",), ("current",), ("setup",), ("migrate", "Add a column"),
                   ("status", "--json"), ("stamp", "head"))],
    *[Case(f"two-rows-on-one-line-{args[0]}", args, 1, "stamp --purge REVISION",
           prepare=on_database("INSERT INTO alembic_version VALUES ('007244e3075d')"))
      for args in (("upgrade",), ("status",), ("downgrade", "-1"))],
    Case("tables-without-a-recorded-revision", ("upgrade",), 1, "stamp REVISION", prepare=TABLES_WITHOUT_A_RECORD),
    Case("status-json-missing-database", ("status", "--json"), 1, "`python db_manage.py setup`",
         env=with_url("DATABASE_URL", lambda u: u.set(database=u.database + "_missing"))),
    # The application.
    Case("app-factory-raises", ("--app", "bad_factory:create_app()", "status"), 1,
         "failed to start: RuntimeError: config missing", prepare=write("bad_factory.py", FACTORY)),
    Case("app-factory-returns-none", ("--app", "bad_factory:make_none()", "upgrade"), 1, "No Flask application found",
         prepare=write("bad_factory.py", FACTORY)),
    Case("app-package-without-app", ("--app", "app/models", "status"), 1, "No Flask application found"),
    Case("url-sqlite", ("status",), 1, "PostgreSQL only", env={"DATABASE_URL": "sqlite:///app.db"}),
    # The migrations folder.
    Case("upgrade-without-env-py", ("upgrade",), 1, "has no env.py",
         prepare=lambda project, url, tmp_path: (project / "migrations" / "env.py").unlink()),
    Case("revision-without-env-py", ("revision", "Add a thing"), 1, "has no env.py",
         prepare=lambda project, url, tmp_path: (project / "migrations" / "env.py").unlink()),
    Case("upgrade-env-py-does-not-compile", ("upgrade",), 1, "does not compile",
         prepare=write("migrations/env.py", ENV_PY_SYNTAX_ERROR)),
    Case("adopt-env-py-does-not-compile", ("adopt",), 1, "adopt --force",
         prepare=write("migrations/env.py", ENV_PY_SYNTAX_ERROR)),
    Case("adopt-without-migrations", ("adopt",), 1, "There is no migrations folder",
         prepare=lambda project, url, tmp_path: shutil.rmtree(project / "migrations")),
    Case("init-under-a-file", ("--directory", "run.py/sub", "init"), 1, "Not a directory"),
    Case("directory-is-a-file", ("--directory", "run.py", "init"), 1, "give --directory a folder"),
    Case("status-without-migrations-folder", ("status",), 1, "There is no migrations folder at",
         prepare=lambda project, url, tmp_path: shutil.rmtree(project / "migrations")),
    Case("setup-without-migrations-on-a-database-with-history", ("setup",), 1,
         "records revision 3e1dd673592b, but there is no migrations folder",
         prepare=lambda project, url, tmp_path: shutil.rmtree(project / "migrations")),
    # A hostile review of the data and server commands (issue 25).
    Case("rows-beyond-the-limit", ("seed", "--rows", "users=99999999999"), 2, "COUNT must be from 1 to 100,000,000"),
    Case("all-zero", ("seed", "--all", "0"), 2, "0 is not in the range"),
    Case("rows-alembic-version", ("seed", "--rows", "alembic_version=1"), 2, "No model or table named 'alembic_version'"),
    Case("rows-sql-injection", ("seed", "--rows", "users; drop table posts=1"), 2, "No model or table named"),
    Case("fixture-empty-file", ("seed", "--fixture", "bad/users.json"), 1, "is not valid JSON",
         prepare=write("bad/users.json", "")),
    Case("fixture-a-string", ("seed", "--fixture", "bad/users.json"), 1, "must hold a list of rows",
         prepare=write("bad/users.json", '"text"\n')),
    Case("fixture-list-of-lists", ("seed", "--fixture", "bad/users.json"), 1, "must be a list of objects",
         prepare=write("bad/users.json", "[[1, 2], [3, 4]]\n")),
    Case("fixture-single-object", ("seed", "--fixture", "bad/users.json"), 1, "holds a single object, not rows",
         prepare=write("bad/users.json", '{"username": "zed", "email": "zed@example.com"}')),
    Case("fixture-binary", ("seed", "--fixture", "bad/users.json"), 1, "save it as UTF-8",
         prepare=write("bad/users.json", b"\x00\xe6\xff\xfe" * 512)),
    Case("fixture-empty-folder", ("seed", "--fixture", "bad"), 1, "holds no .json or .csv file",
         prepare=lambda project, url, tmp_path: (project / "bad").mkdir()),
    Case("fixture-a-pipe", ("seed", "--fixture", "bad/users.json"), 1, "is not a regular file",
         prepare=a_fifo("bad/users.json")),
    Case("fixture-dangling-link", ("seed", "--fixture", "bad/users.json"), 1, "which does not exist",
         prepare=a_dangling_link("bad/users.json")),
    Case("fixture-folder-with-a-dangling-link", ("seed", "--fixture", "bad"), 1, "which does not exist",
         prepare=a_dangling_link("bad/users.json")),
    Case("fixture-unknown-table", ("seed", "--fixture", "bad/nosuchtable.json"), 1,
         "No model or table named 'nosuchtable'",
         prepare=write("bad/nosuchtable.json", '[{"username": "u1", "email": "u1@example.com"}]')),
    Case("fixture-unknown-column", ("seed", "--fixture", "bad/users.json"), 1, "users has no column 'nickname'",
         prepare=write("bad/users.json", '[{"username": "u1", "email": "u1@example.com", "nickname": "x"}]')),
    Case("fixture-text-for-integer", ("seed", "--fixture", "bad/users.json"), 1,
         'invalid input syntax for type integer: "abc"',
         prepare=write("bad/users.json", '[{"id": "abc", "username": "u1", "email": "u1@example.com"}]')),
    Case("fixture-value-too-long", ("seed", "--fixture", "bad/users.json"), 1,
         "value too long for type character varying(120)",
         prepare=write("bad/users.json", '[{"username": "u1", "email": "' + "x" * 1_000_000 + '@example.com"}]')),
    Case("fixture-february-30", ("seed", "--fixture", "bad/users.json"), 1, "date/time field value out of range",
         prepare=write("bad/users.json",
                       '[{"username": "u1", "email": "u1@example.com", "created_at": "2026-02-30T00:00:00Z"}]')),
    Case("fixture-null-where-not-null", ("seed", "--fixture", "bad/users.json"), 1,
         "users.email may not be NULL", prepare=write("bad/users.json", '[{"username": "n1", "email": null}]')),
    Case("fixture-missing-parent", ("seed", "--fixture", "bad/posts.json"), 1,
         "refers to a row that does not exist (Key (author_id)=(99999)",
         prepare=write("bad/posts.json", '[{"title": "t", "content": "c", "slug": "s", "author_id": 99999}]')),
    Case("reset-table-a-view", ("reset", "--table", "user_names", "--yes"), 1, "Unknown table 'user_names'",
         prepare=a_view_and_a_sequence),
    Case("reset-table-sql-injection", ("reset", "--table", "users; drop table posts", "--yes"), 1, "Unknown table"),
    Case("reset-table-alembic-version", ("reset", "--table", "alembic_version", "--yes"), 1,
         "the migration history table is never emptied"),
    Case("reset-schema-pg-catalog", ("reset", "--schema", "pg_catalog", "--yes"), 1, "has no table to empty"),
    Case("reset-table-and-schema", ("reset", "--table", "users", "--schema", "analytics", "--yes"), 2, "not both"),
    Case("restore-empty-file", ("restore", "{tmp}/empty.dump", "--yes"), 1, "not a backup that pg_restore can read",
         prepare=lambda project, url, tmp_path: (tmp_path / "empty.dump").write_bytes(b"")),
    Case("restore-plain-sql-dump", ("restore", "{tmp}/dump.sql", "--yes"), 1, "appears to be a text format dump",
         prepare=lambda project, url, tmp_path: (tmp_path / "dump.sql").write_text(PLAIN_DUMP)),
    Case("restore-truncated-dump", ("restore", "{tmp}/cut.dump", "--yes"), 1,
         "could not read from input file: end of file", prepare=a_truncated_dump),
    Case("restore-empty-path", ("restore", "", "--yes"), 2, "is empty: give a file name"),
    Case("backup-output-empty", ("backup", "--output", ""), 2, "is empty: give a file name"),
    Case("erd-output-empty", ("erd", "--output="), 2, "is empty: give a file name"),
    Case("erd-output-a-device", ("erd", "--output", "/dev/null"), 1, "/dev/null is not a regular file"),
    Case("erd-output-in-missing-folders", ("erd", "--output", "/nonexistent/dir/erd.md"), 1,
         "There is no folder /nonexistent"),
    Case("erd-over-an-empty-file", ("erd", "--output", "docs/empty.md"), 1, "not a diagram this command wrote",
         prepare=write("docs/empty.md", "")),
    Case("shell-empty-statement", ("shell", "-c", ""), 2, "is empty: give a statement"),
    Case("help-unknown-subcommand", ("help", "server", "nope"), 2, "No such command 'server nope'"),
    Case("dotenv-key-with-a-space", ("status",), 1, ".env line 1 cannot be parsed",
         prepare=write(".env", "DATABASE URL=postgresql://postgres@127.0.0.1:5432/x\n")),
    Case("dotenv-a-folder", ("status",), 1, ".env is not a file",
         prepare=lambda project, url, tmp_path: (project / ".env").mkdir()),
    Case("dotenv-dangling-link", ("status",), 1, ".env is a link to /nonexistent/settings",
         prepare=a_dangling_link(".env")),
    Case("url-too-long", ("status",), 1, "characters long (not shown)",
         env=with_url("DATABASE_URL", lambda u: u.update_query_dict({"application_name": "x" * 20_000}))),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_sentence_that_says_what_to_do(cli, project, database, head_revision, tmp_path, case):
    url = make_url(database.url).set(password=SECRET)
    env = {name: (value(url).render_as_string(hide_password=False) if callable(value) else value)
           for name, value in case.env.items()}
    if case.prepare:
        case.prepare(project, database.url, tmp_path)
    tables, revision = database.tables(), database.revision()
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in case.args]
    result = cli(*args, url=url.render_as_string(hide_password=False), env=env)
    output = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == case.code, output
    assert len(errors) == 1, output
    assert case.says in (output if case.listed else errors[0]), output
    assert "Traceback" not in output and "Unexpected" not in output, output
    assert SECRET not in output
    assert database.revision() == revision and database.tables() == tables  # nothing changed


def test_ssl_asked_of_a_server_without_it_is_one_sentence(cli, server_url, database):
    if not server_url.host:
        pytest.skip("the test server is reached on a Unix socket, where libpq ignores sslmode")
    url = make_url(database.url).update_query_dict({"sslmode": "require"}).render_as_string(hide_password=False)
    result = cli("status", url=url)
    if result.returncode == 0:
        pytest.skip("the test server accepts SSL")
    assert result.returncode == 1 and "remove sslmode from the URL, or enable SSL" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "Unexpected" not in result.stderr


def test_setup_writes_no_new_history_for_a_database_that_has_one(cli, project, database, head_revision):
    shutil.rmtree(project / "migrations")
    result = cli("setup")
    assert result.returncode == 1 and "Please use" not in result.stderr, result.stderr
    assert not (project / "migrations").exists(), "no folder, no revision written"
    assert database.revision() == head_revision


def test_init_says_what_comes_next_and_refuses_a_second_time(cli, project):
    shutil.rmtree(project / "migrations")
    first = cli("init")
    assert first.returncode == 0, first.stderr
    assert (project / "migrations" / "env.py").exists()
    assert "Please edit" not in first.stdout + first.stderr and "next, `python db_manage.py setup`" in first.stderr
    second = cli("init")
    assert second.returncode == 1 and "nothing to init" in second.stderr


def test_help_texts_say_what_the_options_do(cli):
    assert "needs FROM:TO" not in cli("downgrade", "--help").stdout
    assert "--force" in cli("backup", "--help").stdout and "--any-revision" in cli("restore", "--help").stdout


URL_SHAPES = (  # what users type, typos included
    "postgresql://app:{pw}@127.0.0.1:5432/app", "postgresql//app:{pw}@127.0.0.1:5432/app",
    "postgresql:/app:{pw}@127.0.0.1/app", "postgres:{pw}@127.0.0.1/app", "postgresql://app:{pw}@@127.0.0.1:5432",
    "postgresql+asyncpg://app:{pw}@db/app", "mysql://app:{pw}@db/app", "postgresql://app:{pw}@db:port/app",
    "postgresql://app@db/app?password={pw}", "  postgresql://app:{pw}@db/app  ", "postgresql://:{pw}@db/app",
)


@given(shape=st.sampled_from(URL_SHAPES),
       password=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#"),
                        max_size=12).map(lambda pw: f"Pw{pw}ZQ"))
@example(shape="postgres:{pw}@127.0.0.1/app", password="Pw;:ZQ")  # found by this test: a colon in it
@example(shape="postgresql://app:{pw}@127.0.0.1:5432/app", password='Pw%00"ZQ')  # and a quote, as typed
@example(shape="postgres:{pw}@127.0.0.1/app", password='Pw":ZQ')
@settings(max_examples=1000, deadline=None)
def test_no_url_shape_shows_its_password(shape, password):
    """Whatever the URL looks like, what the tool shows of it (announced, or refused) never holds its password."""
    raw = shape.format(pw=password)
    try:
        shown = mask(normalise(raw))
    except ConfigError as exc:
        shown = str(exc)
    os.environ["DATABASE_URL"] = raw
    try:
        scrubbed = scrub(f"connection to {raw} failed; the URL was {raw}")
    finally:
        del os.environ["DATABASE_URL"]
    for text in (shown, scrubbed):
        assert password not in text, text


@pytest.mark.parametrize("url", ["postgresql+psycopg2://postgres@127.0.0.1:5432/app", "postgresql://app@/db?host=/tmp/x",
                                 "postgres://u@h/d", "postgresql+psycopg2://postgres:***@127.0.0.1:5432/app"])
def test_a_url_without_a_password_is_shown_whole(url):
    assert mask(url) == url


@pytest.mark.parametrize("url", ["postgresql+psycopg2://reader_2a120940@127.0.0.1:5432/app", "postgres://someone@h/d",
                                 "postgresql://someone@/db?host=/tmp/x"])
def test_the_user_of_a_url_setting_without_a_password_is_not_masked(url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", url)
    assert scrub(f'permission denied for role "{url.split("//")[1].split("@")[0]}"') == \
        f'permission denied for role "{url.split("//")[1].split("@")[0]}"'


@pytest.mark.parametrize("command", ["history", "current", "status"])
def test_output_to_a_full_device_is_a_failure(project, database, command):
    """An output that cannot be written (a full disk) fails with one sentence: Alembic's own output swallowed it."""
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "db_manage.py", command], cwd=project, env=cli_env(database.url),
                                stdout=full, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: No space left on the device"), result.stderr


@pytest.mark.parametrize("closed", [1, 2])
def test_a_closed_output_drops_what_would_be_printed_not_the_command(project, database, all_revisions, closed):
    """`>&-` or `2>&-`: Python's sys.stdout (or stderr) is None; the migration still runs, without an error."""
    assert len(all_revisions) >= 2, "downgrade -1 below needs a revision to go back to"
    for command in ("heads", "status"):
        result = subprocess.run([sys.executable, "db_manage.py", command], cwd=project, env=cli_env(database.url),
                                capture_output=True, text=True, preexec_fn=lambda: os.close(closed), timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Error" not in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr
    result = subprocess.run([sys.executable, "db_manage.py", "downgrade", "-1"], cwd=project, env=cli_env(database.url),
                            capture_output=True, text=True, preexec_fn=lambda: os.close(closed), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert database.revision() == all_revisions[-2]["revision"]


def test_an_error_raised_by_a_sigterm_stop_is_said_as_the_stop(capsys):
    """psycopg2 reports SIGTERM's exception inside a COPY's read() as a failed COPY: it is still the stop, exit 143."""
    from db_manage_tool import interrupts
    from db_manage_tool.errors import report

    failed_copy = RuntimeError("COPY from stdin failed: error in .read() call: Stopped")
    assert report(failed_copy) == 1 and "Unexpected RuntimeError" in capsys.readouterr().err
    interrupts.STOPPED.set()
    try:
        assert report(failed_copy) == 143
    finally:
        interrupts.STOPPED.clear()
    said = capsys.readouterr().err
    assert said.strip() == "Error: Stopped by SIGTERM: the command stopped; a transaction it had open was rolled back."
