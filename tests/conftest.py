"""Fixtures: a real PostgreSQL (TEST_DATABASE_URL, else the embedded server) and a fresh database per test.

Each test that changes a database gets its own, cloned from a template migrated to head by the
tool's pytest plugin (db_manage_tool/pytest_plugin.py), as a team's tests would. CLI tests run db_manage.py in a temporary copy of the project, so
the migrations they write never touch the repository's own.
"""
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app import create_app, db
from db_manage_tool import dbadmin
from zygote import Zygote, differs_at_startup

pytest_plugins = ["db_manage_tool.pytest_plugin"]  # a database per test, cloned from a template at head
os.environ["FLASK_CONFIG"] = "testing"  # the configuration the plugin loads the application in (run.py)

# A suite started in the background (`pytest &` in a script) inherits SIGINT ignored, and so would every command it
# starts: give them the default a terminal gives, which the Ctrl-C tests send.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("db_manage.py", "run.py", "app", "db_manage_tool", "migrations")
# The tables the tool keeps for itself: migration history, and the configuration that migrated the database.
TOOL_TABLES = {"public.alembic_version", "public.db_manage_metadata"}
# Settings of the developer's shell that must not leak into the subprocesses under test.
CLEARED_VARIABLES = ("DATABASE_URL", "TEST_DATABASE_URL", "FLASK_CONFIG", "FLASK_ENV", "FLASK_APP",
                     "DB_MANAGE_ANNOUNCE", "DB_MANAGE_VERBOSE", "SECRET_KEY", "PGAPPNAME")


@pytest.fixture(scope="session")
def db_manage_server_url():
    """The plugin's server: the testing configuration's URL (TEST_DATABASE_URL, else the embedded app_test)."""
    return create_app("testing").config["SQLALCHEMY_DATABASE_URI"]


@pytest.fixture(scope="session")
def server_url(db_manage_server_url):
    """The test server's base URL, parsed."""
    return make_url(db_manage_server_url)


def sibling_url(server_url, suffix):
    """Return, as text with its password, the URL of a database named after the base one plus suffix."""
    return server_url.set(database=f"{server_url.database}_{suffix}").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_url(server_url, db_manage_template):
    """The plugin's template: a database migrated to head, kept across runs while the history is unchanged."""
    return server_url.set(database=db_manage_template).render_as_string(hide_password=False)


@pytest.fixture
def database_url(db_manage_url):
    """A fresh database at head, cloned from the template and dropped after the test (db_manage_tool.pytest_plugin)."""
    return db_manage_url


@pytest.fixture
def missing_database_url(server_url):
    """The URL of a database that does not exist yet (dropped after the test if created)."""
    url = sibling_url(server_url, uuid.uuid4().hex[:12])
    yield url
    dbadmin.drop_database(url)


@pytest.fixture
def app(database_url):
    """The application, bound to this test's database."""
    return create_app("testing", {"SQLALCHEMY_DATABASE_URI": database_url})


@pytest.fixture
def project(tmp_path):
    """A temporary copy of the project, in which tests may write migrations and models."""
    dest = tmp_path / "project"
    dest.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def cli_env(url, extra=None):
    """The environment of a db_manage.py subprocess: the developer's, minus its settings, plus url."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_VARIABLES}
    env.update({"FLASK_CONFIG": "development", **({"DATABASE_URL": url} if url else {}), **(extra or {})})
    return env


@pytest.fixture(scope="session")
def zygote():
    """The process that the cli fixture's commands are forked from (tests/zygote.py), stopped at the end."""
    server = Zygote()
    yield server
    server.stop()


@pytest.fixture
def cli(project, database_url, zygote):
    """Run `python db_manage.py ARGS` in the project copy against this test's database.

    The command is forked from a process that has imported Flask, SQLAlchemy and Alembic (tests/zygote.py),
    unless the interpreter would start differently (python_options, a PYTHON* variable).
    """

    def run(*args, url=database_url, env=None, timeout=120, python_options=()):
        environment = cli_env(url, env)
        if python_options or differs_at_startup(environment):
            return subprocess.run([sys.executable, *python_options, "db_manage.py", *args], cwd=project,
                                  env=environment, capture_output=True, text=True, timeout=timeout)
        return zygote.run(["db_manage.py", *args], project, environment, timeout)

    return run


@pytest.fixture
def tty_cli(project, database_url):
    """Run db_manage.py on a pseudo-terminal, type answer at its yes/no prompt; return (code, output)."""

    def run(*args, answer, url=database_url, timeout=60):
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "db_manage.py", *args], cwd=project, env=cli_env(url),
                                stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        output, answered, deadline = b"", False, time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    data = os.read(master, 4096)
                except OSError:  # the terminal closed with the process
                    break
                output += data
                if not answered and b"Type 'yes'" in output:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        proc.kill() if proc.poll() is None else None
        os.close(master)
        return proc.wait(), output.decode(errors="replace")

    return run


class Database:
    """Read-only views of a database's real state, for assertions."""

    def __init__(self, url):
        self.url = url

    def _engine(self):
        """One engine per Database, holding no connection between calls (NullPool)."""
        if getattr(self, "_made", None) is None:
            self._made = create_engine(self.url, poolclass=NullPool)
        return self._made

    def tables(self):
        """Return {'schema.table'} for every table outside the system schemas."""
        engine = self._engine()
        with engine.connect() as conn:
            inspector = inspect(conn)
            names = {
                f"{schema}.{table}"
                for schema in inspector.get_schema_names()
                if schema not in ("information_schema",) and not schema.startswith("pg_")
                for table in inspector.get_table_names(schema=schema)
            }
        engine.dispose()
        return names

    def schemas(self):
        """Return the names of the non-system schemas."""
        engine = self._engine()
        with engine.connect() as conn:
            names = {s for s in inspect(conn).get_schema_names() if s != "information_schema" and not s.startswith("pg_")}
        engine.dispose()
        return names

    def columns(self, table, schema=None):
        """Return {column name: reflected column} of table."""
        engine = self._engine()
        with engine.connect() as conn:
            cols = {c["name"]: c for c in inspect(conn).get_columns(table, schema=schema)}
        engine.dispose()
        return cols

    def counts(self):
        """Return the row counts of users, posts and analytics.page_views."""
        return tuple(self.scalar(f"SELECT count(*) FROM {t}") for t in ("users", "posts", "analytics.page_views"))

    def rows(self, sql, **params):
        """Return every row of sql run with params, as tuples."""
        engine = self._engine()
        with engine.connect() as conn:
            result = [tuple(r) for r in conn.execute(text(sql), params)]
        engine.dispose()
        return result

    def execute(self, sql, **params):
        """Run sql with params and commit."""
        engine = self._engine()
        with engine.begin() as conn:
            conn.execute(text(sql), params)
        engine.dispose()

    def scalar(self, sql, **params):
        """Return the first value of sql run with params."""
        engine = self._engine()
        with engine.connect() as conn:
            value = conn.execute(text(sql), params).scalar()
        engine.dispose()
        return value

    def revision(self):
        """Return the revision recorded in alembic_version, or None."""
        engine = self._engine()
        with engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar() is None:
                return None
            return conn.execute(text("SELECT version_num FROM public.alembic_version")).scalar()


@pytest.fixture
def database(database_url):
    """The state of this test's database."""
    return Database(database_url)


@pytest.fixture(scope="session")
def head_revision():
    """The head revision of the repository's migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_script_config(ROOT / "migrations")).get_current_head()


@pytest.fixture(scope="session")
def all_revisions():
    """The repository's revisions, oldest first, as {"revision", "message"} dicts."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_script_config(ROOT / "migrations"))
    return [{"revision": r.revision, "message": r.doc} for r in reversed(list(script.walk_revisions()))]


def _script_config(directory):
    """An Alembic config that only knows where the scripts are."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(directory))
    return config


def versions(project):
    """Return the names of the migration files of the project copy."""
    return sorted(p.name for p in (project / "migrations" / "versions").glob("*.py"))


def add_model(project, module, source):
    """Write app/models/MODULE.py with source and import it in app/models/__init__.py."""
    (project / "app" / "models" / f"{module}.py").write_text(source)
    init = project / "app" / "models" / "__init__.py"
    init.write_text(init.read_text() + f"from app.models.{module} import *  # noqa: F401,F403\n")



def fake_pg_programs(folder, version, body):
    """Write fake pg_dump and pg_restore into folder: they report version and run the shell body; return folder."""
    folder.mkdir()
    for name in ("pg_dump", "pg_restore"):
        script = "#!/bin/sh\n" + f'if [ "$1" = "--version" ]; then echo "{name} (PostgreSQL) {version}"; exit 0; fi\n'
        program = folder / name
        program.write_text(script + body(name) + "\n")
        program.chmod(0o755)
    return folder
