"""A fresh PostgreSQL database for each test, cloned from a template migrated to head: a pytest plugin.

Opt in from the tests' conftest.py (or run `pytest -p db_manage_tool.pytest_plugin`):

    pytest_plugins = ["db_manage_tool.pytest_plugin"]

    def test_signup(db_manage_app):        # the application, bound to this test's own database
        ...

The server is TEST_DATABASE_URL's, else the embedded PostgreSQL in instance/pgdata beside the
tests' root folder. The template is built once, by `flask db upgrade` to head, under a lock that
pytest-xdist's workers share, and is kept across runs while the migration history is unchanged:
its name holds a hash of the migrations folder. Each test gets `CREATE DATABASE ... TEMPLATE`,
dropped after it in the background; clones and templates left by a killed run are dropped by the
next one. `pytest --db-manage-rebuild` builds the template again.
"""
import hashlib
import os
import queue
import threading
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

# Advisory lock classes (the first of pg_advisory_lock's two keys): a run's clones, a template in use, its build.
RUN_LOCK, TEMPLATE_LOCK, BUILD_LOCK = 1684172101, 1684172102, 1684172103
APPLICATION_NAME = "db_manage_tool.pytest_plugin"  # and the run's id: the sessions that hold a run's locks
PREFIX_BYTES = 30  # of the base database's name, in every name this plugin gives (PostgreSQL keeps 63 bytes)
MARK = "made by db_manage_tool.pytest_plugin"  # the comment on each database it makes: it drops no other


def pytest_addoption(parser):
    """Add --db-manage-rebuild."""
    parser.addoption("--db-manage-rebuild", action="store_true",
                     help="drop the migrated template database and build it again (db_manage_tool.pytest_plugin)")


def history_key(directory):
    """Return a short hash of the migrations folder's files (names and contents) and of the tool's version."""
    from importlib import metadata

    digest = hashlib.sha256()
    try:
        digest.update(metadata.version("flask-db-manage").encode())
    except metadata.PackageNotFoundError:  # run from a checkout of the tool
        pass
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def lock_key(text):
    """Return text as a signed 32-bit advisory lock key."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big", signed=True)


@contextmanager
def imposed_database(url):
    """While active, every Flask-SQLAlchemy init_app binds the application's default database to url."""
    from flask_sqlalchemy import SQLAlchemy

    original = SQLAlchemy.init_app

    def init_app(self, app):
        app.config["SQLALCHEMY_DATABASE_URI"] = url
        return original(self, app)

    SQLAlchemy.init_app = init_app
    try:
        yield
    finally:
        SQLAlchemy.init_app = original


def load_app_on(url):
    """Load the application as `flask` does (FLASK_APP, .flaskenv, .env; else run.py, as db_manage.py does),
    bound to the database url: a factory makes it with url (in DATABASE_URL and SQLALCHEMY_DATABASE_URI), and an
    application made once, when its module was imported, is bound to url again."""
    from flask.cli import ScriptInfo, load_dotenv

    from .errors import first_line

    load_dotenv()
    if not os.environ.get("FLASK_APP") and os.path.isfile("run.py"):
        os.environ["FLASK_APP"] = os.path.abspath("run.py")
    before = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    from flask.cli import NoAppException

    failure = None
    try:
        with imposed_database(url):
            app = ScriptInfo(app_import_path=os.environ.get("FLASK_APP"), set_debug_flag=False).load_app()
    except NoAppException as exc:
        failure = f"{first_line(exc.format_message())} (run pytest in the application's folder, or set FLASK_APP)"
    finally:
        os.environ.pop("DATABASE_URL") if before is None else os.environ.update(DATABASE_URL=before)
    if failure:
        pytest.fail(failure, pytrace=False)
    if "sqlalchemy" not in app.extensions or "migrate" not in app.extensions:
        pytest.fail(f"The application (FLASK_APP={os.environ.get('FLASK_APP') or 'wsgi.py or app.py'}) does not use "
                    "Flask-SQLAlchemy and Flask-Migrate, which db_manage_tool.pytest_plugin serves.", pytrace=False)
    bind(app, url)
    return app


def bind(app, url):
    """Point the application's default database at url: its engine's connections, its settings, the tool's engines.

    An engine keeps the connection parameters it was made with; a do_connect listener replaces them.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import make_url

    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["MIGRATION_DATABASE_URL"] = None  # the clone is reached directly, never through a pooler
    app.extensions.pop("db_manage", None)  # engines the tool made from the previous URL
    with app.app_context():
        engine = app.extensions["sqlalchemy"].engine
    target = make_url(url).set(drivername=engine.url.drivername)
    if engine.url == target:
        return
    engine.dispose()
    engine.url = target
    params = app.extensions.get("db_manage_test_database")
    if params is None:
        params = app.extensions["db_manage_test_database"] = {}

        def connect(dialect, record, cargs, cparams):
            cparams.clear()
            cparams.update(params)

        event.listen(engine, "do_connect", connect)
    params.clear()
    params.update(engine.dialect.create_connect_args(target)[1])


def url_database(url):
    """Return the database name in url."""
    from sqlalchemy.engine import make_url

    return make_url(url).database


def dispose(app):
    """Close the connections of the application's engines."""
    extension = app.extensions.get("sqlalchemy")
    if extension is not None:
        with app.app_context():
            for engine in extension.engines.values():
                engine.dispose()


class Clones:
    """The template of one migration history on one server, and the databases cloned from it for one run.

    A connection held for the session keeps two shared advisory locks: the run's (its clones are alive)
    and the template's (it is in use). A later run drops what no live run holds.
    """

    def __init__(self, server_url, run):
        from sqlalchemy.engine import make_url

        self.server = make_url(server_url)
        self.prefix = (self.server.database or "test").encode()[:PREFIX_BYTES].decode(errors="ignore")
        self.run = run[:8]
        self.count = 0
        self.stack = ExitStack()
        self.holder = self.connect()
        self.lock("pg_advisory_lock_shared", RUN_LOCK, lock_key(self.run))
        self.drops = queue.Queue()
        self.dropper = threading.Thread(target=self.drop_queued, name="db-manage-drops", daemon=True)
        self.dropper.start()

    def connect(self):
        """Return an autocommit connection to the server's maintenance database, closed with the session; its
        application_name names the run."""
        from .dbadmin import server_connection

        url = self.server.update_query_dict({"application_name": f"{APPLICATION_NAME} {self.run}"})
        return self.stack.enter_context(server_connection(url.render_as_string(hide_password=False)))

    def url(self, name):
        """Return, with its password, the URL of database name on the server."""
        return self.server.set(database=name).render_as_string(hide_password=False)

    def execute(self, statement, *params, connection=None):
        """Run statement (text, or psycopg2 sql) with params on the holder connection; return its first row."""
        with (connection or self.holder).cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchone() if cur.description else None

    def lock(self, function, lock_class, key):
        """Call pg_advisory_lock-like function on the holder connection; return its result."""
        from psycopg2 import sql

        return self.execute(sql.SQL("SELECT {}(%s, %s)").format(sql.Identifier(function)), lock_class, key)[0]

    def names(self, kind):
        """Return the names of this prefix's databases of kind ('clone' or 'tpl') that this plugin made."""
        start = f"{self.prefix}_{kind}_"
        with self.holder.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE left(datname, %s) = %s "
                        "AND shobj_description(oid, 'pg_database') = %s", (len(start), start, MARK))
            return [row[0] for row in cur.fetchall()]

    def mark(self, name, connection=None):
        """Comment database name as made by this plugin."""
        from psycopg2 import sql

        self.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(MARK)),
                     connection=connection)

    def drop(self, name, connection=None):
        """Drop database name, ending its sessions."""
        from psycopg2 import sql

        force = " WITH (FORCE)" if self.holder.server_version >= 130000 else ""  # PostgreSQL 13+
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name)),
                     connection=connection)

    def drop_leftovers(self, keep):
        """Drop the clones of runs that ended without dropping them, and templates no live run uses but keep."""
        for name in self.names("clone"):
            run = name[len(self.prefix) + len("_clone_"):].split("_")[0]
            if run != self.run and self.lock("pg_try_advisory_lock", RUN_LOCK, lock_key(run)):
                try:
                    self.drop(name)
                finally:
                    self.lock("pg_advisory_unlock", RUN_LOCK, lock_key(run))
        for name in self.names("tpl"):
            if name != keep and self.lock("pg_try_advisory_lock", TEMPLATE_LOCK, lock_key(name)):
                try:
                    self.drop(name)
                finally:
                    self.lock("pg_advisory_unlock", TEMPLATE_LOCK, lock_key(name))

    def template(self, key, rebuild=False):
        """Return the name of the template of history key, built now if no run built it before."""
        name = f"{self.prefix}_tpl_{key}"
        self.lock("pg_advisory_lock", BUILD_LOCK, lock_key(name))
        try:
            exists = self.execute("SELECT 1 FROM pg_database WHERE datname = %s", name)
            if exists and rebuild and self.lock("pg_try_advisory_lock", TEMPLATE_LOCK, lock_key(name + "/rebuilt")):
                # once per run: the first worker rebuilds it, the others find it rebuilt; never under another run
                if not self.lock("pg_try_advisory_lock", TEMPLATE_LOCK, lock_key(name)):
                    pytest.fail(f"--db-manage-rebuild: another test run is using the template {name}; run again "
                                "when it has finished.", pytrace=False)
                self.drop(name)
                self.lock("pg_advisory_unlock", TEMPLATE_LOCK, lock_key(name))
                exists = None
            self.lock("pg_advisory_lock_shared", TEMPLATE_LOCK, lock_key(name))
            if not exists:
                self.build(name)
            self.drop_leftovers(keep=name)
        finally:
            self.lock("pg_advisory_unlock", BUILD_LOCK, lock_key(name))
        return name

    def build(self, name):
        """Create database name and migrate it to head, under a temporary name until it is whole."""
        from psycopg2 import sql

        from .dbadmin import create_database
        from .setup_database import upgrade_to_head

        building = f"{name}_b"
        self.lock("pg_advisory_lock_shared", TEMPLATE_LOCK, lock_key(building))  # no other run drops it meanwhile
        self.drop(building)
        create_database(self.url(building))
        self.mark(building)
        app = load_app_on(self.url(building))
        try:
            with app.app_context():
                upgrade_to_head()
        finally:
            dispose(app)
        self.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(building), sql.Identifier(name)))

    def clone(self, template):
        """Create a new database from template; return its URL."""
        from psycopg2 import sql

        self.count += 1
        name = f"{self.prefix}_clone_{self.run}_{os.getpid()}_{self.count}"
        self.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        self.mark(name)
        return self.url(name)

    def drop_later(self, url):
        """Drop the database of url in the background: its sessions may still be closing."""
        self.drops.put(url_database(url))

    def drop_queued(self):
        """Drop queued databases until None is queued (the dropping thread's loop)."""
        from psycopg2 import Error

        connection = None
        while (name := self.drops.get()) is not None:
            try:
                connection = connection or self.connect()
                self.drop(name, connection=connection)
            except Error:  # the server went away, say: the next run drops what this one could not
                connection = None

    def close(self):
        """Finish the queued drops, then release the locks and connections."""
        self.drops.put(None)
        self.dropper.join()
        self.stack.close()


def embedded_server_url(root):
    """Return the URL of database `test` on the embedded server of the project in root (started if need be)."""
    from .embedded import embedded_url

    return embedded_url(Path(root) / "instance" / "pgdata", "test")


@pytest.fixture(scope="session")
def db_manage_server_url(request):
    """The server's URL, whose database name prefixes every database made: TEST_DATABASE_URL, else embedded."""
    from .database_url import ConfigError, normalise

    raw = os.environ.get("TEST_DATABASE_URL")
    try:
        if raw:
            return normalise(raw, "TEST_DATABASE_URL").render_as_string(hide_password=False)
        return embedded_server_url(request.config.rootpath)
    except ConfigError as exc:
        failure = str(exc) if raw else (f"No TEST_DATABASE_URL is set, and the embedded PostgreSQL cannot serve: "
                                        f"{exc} Set TEST_DATABASE_URL to a server the tests may create databases on.")
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def db_manage_clones(request, db_manage_server_url):
    """The session's Clones: locks held, a dropping thread, closed at the end."""
    from psycopg2 import OperationalError
    from sqlalchemy import exc as sqlalchemy_errors

    from .database_url import mask
    from .errors import first_line

    from .database_url import ConfigError, normalise

    workerinput = getattr(request.config, "workerinput", {})
    try:
        server = normalise(str(db_manage_server_url), "db_manage_server_url").render_as_string(hide_password=False)
        clones = Clones(server, workerinput.get("testrunuid") or uuid.uuid4().hex)
    except ConfigError as exc:
        failure = str(exc)
    except (OperationalError, sqlalchemy_errors.OperationalError) as exc:
        where = "check TEST_DATABASE_URL" if os.environ.get("TEST_DATABASE_URL") else "set TEST_DATABASE_URL"
        failure = (f"The test server ({mask(db_manage_server_url)}) cannot be reached: "
                   f"{first_line(str(getattr(exc, 'orig', exc)))}; start it, or {where}.")
    else:
        yield clones
        clones.close()
        return
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def db_manage_migrations(db_manage_server_url):
    """The application's migrations folder, found as `flask db` finds it (the server's database created if missing:
    an application may connect as it starts)."""
    from .dbadmin import create_database

    create_database(db_manage_server_url)
    app = load_app_on(db_manage_server_url)
    try:
        with app.app_context():
            return Path(app.extensions["migrate"].directory).resolve()
    finally:
        dispose(app)


@pytest.fixture(scope="session")
def db_manage_template(request, db_manage_clones, db_manage_migrations):
    """The name of the template database, migrated to head (built once per history, kept across runs)."""
    rebuild = request.config.getoption("--db-manage-rebuild", default=False)
    return db_manage_clones.template(history_key(db_manage_migrations), rebuild=rebuild)


@pytest.fixture
def db_manage_url(db_manage_clones, db_manage_template):
    """The URL of a database of this test's own, at head, dropped after the test."""
    url = db_manage_clones.clone(db_manage_template)
    yield url
    db_manage_clones.drop_later(url)


@pytest.fixture
def db_manage_app(db_manage_url):
    """The application, loaded as `flask` loads it, bound to this test's database."""
    app = load_app_on(db_manage_url)
    yield app
    dispose(app)
