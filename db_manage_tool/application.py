"""The application the tool serves, loaded the way the `flask` command loads it, and its settings.

The tool never imports the application by name: FLASK_APP says where it is (default: the
project's run.py), Flask-Migrate's extension says where its models and migrations are, and
app.config holds the tool's settings, each with a documented default.
"""
import contextlib
import os
import re
import sys
from importlib import metadata as package_metadata
from pathlib import Path

import click
from flask import current_app

from .database_url import ConfigError, mask, normalise
from .errors import Failure, first_line

# The tool's settings, read from app.config; a missing key is its default.
DEFAULTS = {
    "CONFIG_NAME": None,  # the configuration's name: default $FLASK_CONFIG, else development
    "PROTECTED_CONFIGS": ("production",),  # configurations whose databases destructive commands refuse
    "MIGRATION_LOCK_TIMEOUT": 10.0,  # seconds a migration may wait for table locks, in 1 s attempts; 0: no limit
    "DATABASE_DESCRIPTION": None,  # how messages name the database: default its URL, password masked
    "SEED_MODULE": None,  # the module holding the application's seed(); default: seeds beside the app
    "MIGRATION_DATABASE_URL": None,  # a direct connection for the tool when the application's goes through a pooler
    "POOLER_KEEPS_SESSIONS": False,  # True: the pooler in front of the tool's connection runs in session mode
}
# The oldest releases the tool runs on (pyproject.toml declares the same; .ci/run tests them).
MINIMUM_VERSIONS = {"SQLAlchemy": (2, 0, 20), "Flask-SQLAlchemy": (3, 0, 5), "Flask-Migrate": (4, 0), "alembic": (1, 12)}
DIRECTORY_VARIABLE = "DB_MANAGE_DIRECTORY"  # the migrations folder given with -d/--directory
MAX_LOCK_TIMEOUT = 2147483.647  # PostgreSQL's largest lock_timeout (an int of milliseconds), about 24 days
ANNOUNCE_VARIABLE = "DB_MANAGE_ANNOUNCE"
CREATED = set()  # the databases created while the application loaded (its factory connects)
_announced = False


class AppNotLoaded(Failure):
    """The application could not be loaded or does not use Flask-Migrate."""


def load_app(announce=True, create_missing=False):
    """Load the application as `flask` does (.env, .flaskenv, FLASK_APP) and check that it uses Flask-Migrate.

    What the application prints while it loads goes to stderr: stdout carries only results. With
    create_missing, a database that the application's factory connects to is created if missing.
    """
    from flask.cli import NoAppException, ScriptInfo, load_dotenv
    from sqlalchemy.exc import OperationalError

    from .revisions import refuse_duplicate_revisions, use_first_line_messages

    from .dotenv_files import check_folder

    ensure_supported_versions()
    use_first_line_messages()
    refuse_duplicate_revisions()
    check_folder(os.getcwd())  # the files load_dotenv reads first: commands run in the project folder
    load_dotenv()
    where = os.environ.get("FLASK_APP") or "wsgi.py or app.py"
    try:
        with contextlib.redirect_stdout(sys.stderr), creating_missing_databases(create_missing):
            app = ScriptInfo(app_import_path=os.environ.get("FLASK_APP"), set_debug_flag=False).load_app()
    except NoAppException as exc:
        raise AppNotLoaded(not_found_message(where, exc.format_message())) from exc
    except (ConfigError, OperationalError):  # a setting, or the database it names: the message says what to do
        raise
    except Exception as exc:  # the application's own start-up failed: say so, with its first line
        failure = AppNotLoaded(f"The application (FLASK_APP={where}) failed to start: "
                               f"{type(exc).__name__}: {first_line(str(exc))}")
        failure.traceback_helps = True
        raise failure from exc
    if "migrate" not in app.extensions:
        raise AppNotLoaded(f"The application (FLASK_APP={where}) does not use Flask-Migrate: add "
                           "`migrate = Migrate(app, db)` (or migrate.init_app(app, db) in its factory).")
    if os.environ.get(DIRECTORY_VARIABLE):  # -d/--directory, as `flask db -d` takes it
        state = app.extensions["migrate"]  # Flask-Migrate's commands read the Migrate object's, the tool its state's
        state.directory = state.migrate.directory = os.environ[DIRECTORY_VARIABLE]
    with contextlib.redirect_stdout(sys.stderr), app.app_context():
        ensure_postgresql(where)
        if announce:
            announce_database()
    return app


def version_of(distribution):
    """Return the installed version of distribution as a tuple of numbers, or None if it is not installed."""
    try:
        return tuple(int(part) for part in re.findall(r"\d+", package_metadata.version(distribution))[:3])
    except package_metadata.PackageNotFoundError:
        return None


def ensure_supported_versions():
    """Refuse, before anything is loaded or changed, a SQLAlchemy, Flask-SQLAlchemy, Flask-Migrate or Alembic
    older than the tool supports (SQLAlchemy 1.4 with Flask-SQLAlchemy 2.x, say)."""
    old = [f"{name} {'.'.join(map(str, found))}" for name, oldest in MINIMUM_VERSIONS.items()
           if (found := version_of(name)) is not None and found < oldest]
    if old:
        wanted = ", ".join(f"{name} {'.'.join(map(str, oldest))}" for name, oldest in MINIMUM_VERSIONS.items())
        raise Failure(f"This environment has {', '.join(old)}, older than db-manage supports ({wanted} or newer): "
                      "upgrade the application's pins to use the tool; nothing was changed.")


@contextlib.contextmanager
def creating_missing_databases(active):
    """While active, create the database of a connection that fails because its database does not exist."""
    if not active:
        yield
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    creating = []  # set while the database is created: the connections that takes are left alone

    def connect(dialect, connection_record, cargs, cparams):
        from . import dbadmin

        if creating:
            return None
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as exc:
            if dialect.driver != "psycopg2" or not dbadmin.database_missing(exc):
                raise
        url = url_of(dialect, cparams)
        creating.append(url)
        try:
            if dbadmin.create_database(url.render_as_string(hide_password=False)):
                CREATED.add(url.database)
                click.echo(f"Database {url.database!r}: created (the application connects to it as it starts).",
                           err=True)
        finally:
            creating.clear()
        return dialect.connect(*cargs, **cparams)

    event.listen(Engine, "do_connect", connect)
    try:
        yield
    finally:
        event.remove(Engine, "do_connect", connect)


def url_of(dialect, cparams):
    """Return the URL of psycopg2's connection parameters cparams (dbname, user, host, ... and the rest)."""
    from sqlalchemy.engine import URL

    params = dict(cparams)
    host = params.get("host")
    names = {"username": params.pop("user", None), "password": params.pop("password", None),
             "host": params.pop("host") if host and not str(host).startswith("/") else None,  # a socket: in query
             "port": params.pop("port", None),
             "database": params.pop("dbname", None) or params.pop("database", None)}
    return URL.create(f"postgresql+{dialect.driver}", **names, query={k: str(v) for k, v in params.items()
                                                                       if isinstance(v, (str, int))})


def not_found_message(where, message):
    """Return the sentence for Flask's NoAppException: the import error inside the application if that was it."""
    if "an ImportError was raised" in message:  # the application's module failed to import: say why
        cause = last_line(message)
        hint = (" SQLAlchemy 2.1 reads postgresql:// as psycopg 3: write postgresql+psycopg2:// in the URL, "
                "or install psycopg." if "No module named 'psycopg'" in cause else
                " Install the PostgreSQL driver: `pip install psycopg2-binary` (or the application's own pin of "
                "psycopg2)." if "No module named 'psycopg2'" in cause else "")
        return f"The application (FLASK_APP={where}) failed to import: {cause}.{hint}"
    return (f"No Flask application found at FLASK_APP={where} ({first_line(message)}): point --app or FLASK_APP "
            "at the module or factory, e.g. --app 'myapp:create_app()'.")


def ensure_postgresql(where):
    """Raise Failure unless the application's database is PostgreSQL, the only one the tool manages."""
    dialect = application_engine().dialect.name
    if dialect != "postgresql":
        raise AppNotLoaded(f"The application (FLASK_APP={where}) uses a {dialect} database ({describe_database()}): "
                           "db_manage.py manages PostgreSQL only; point its SQLALCHEMY_DATABASE_URI at a "
                           "postgresql+psycopg2:// URL.")


def last_line(text):
    """Return the last non-empty line of text."""
    return next((line.strip() for line in reversed(str(text).splitlines()) if line.strip()), str(text).strip())


def announce_database():
    """Say once per process, on stderr, which database and configuration the command uses (when asked to)."""
    global _announced
    if _announced or os.environ.get(ANNOUNCE_VARIABLE) != "1":
        return
    _announced = True
    click.echo(f"Database: {describe_database()} ({config_name()} configuration)", err=True)


def setting(name):
    """Return the tool's setting `name` from app.config, or its default."""
    value = current_app.config.get(name)
    return DEFAULTS[name] if value is None else value


def config_name():
    """Return the name of the configuration in use: CONFIG_NAME, else $FLASK_CONFIG, else development."""
    return setting("CONFIG_NAME") or os.environ.get("FLASK_CONFIG") or "development"


def is_protected(name):
    """Return True when destructive commands must refuse a database of configuration `name`."""
    return name in tuple(setting("PROTECTED_CONFIGS"))


def lock_timeout():
    """Return MIGRATION_LOCK_TIMEOUT in seconds, checked."""
    value = setting("MIGRATION_LOCK_TIMEOUT")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1
    if not 0 <= seconds <= MAX_LOCK_TIMEOUT:
        raise Failure(f"MIGRATION_LOCK_TIMEOUT must be a number of seconds from 0 (no limit) to "
                      f"{int(MAX_LOCK_TIMEOUT)} (about 24 days), not {value!r}.")
    return seconds


def migrate_extension():
    """Return Flask-Migrate's state of the current app (its db, directory and configure_args)."""
    return current_app.extensions["migrate"]


def database():
    """Return the Flask-SQLAlchemy object (db) that Flask-Migrate was given."""
    return migrate_extension().db


def engine():
    """Return the engine the tool connects with: MIGRATION_DATABASE_URL's when set, else the application's."""
    direct = setting("MIGRATION_DATABASE_URL")
    if direct:
        return direct_engine(str(direct))
    application = application_engine()
    if application.dialect.driver == "psycopg2" or application.dialect.name != "postgresql":
        return application  # another database is refused by ensure_postgresql
    return psycopg2_engine(application)


def psycopg2_engine(application):
    """Return an engine on the application's database through psycopg2, the driver the tool works with (COPY,
    identifiers quoted by psycopg2.sql), for an application that uses another one (psycopg 3, asyncpg)."""
    from sqlalchemy import create_engine

    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise Failure(f"The application connects with {application.dialect.driver}, and db-manage needs psycopg2 "
                      "beside it: `pip install psycopg2-binary` (or 'flask-db-manage[psycopg2]').") from None
    state = current_app.extensions.setdefault("db_manage", {})
    if state.get("psycopg2_engine") is None:
        url = application.url.set(drivername="postgresql+psycopg2")
        state["psycopg2_engine"] = create_engine(url, pool_pre_ping=True)
    return state["psycopg2_engine"]


def application_engine():
    """Return the engine of the application's default database."""
    db = database()
    return db.engine if hasattr(db, "engine") else db.get_engine()


def direct_engine(raw):
    """Return the engine of MIGRATION_DATABASE_URL (a direct connection, as Prisma's directUrl), made once per app."""
    from sqlalchemy import create_engine

    state = current_app.extensions.setdefault("db_manage", {})
    if state.get("direct_url") != raw:
        direct = create_engine(normalise(raw, "MIGRATION_DATABASE_URL"), pool_pre_ping=True)
        ensure_same_database(direct, application_engine())
        state["direct_url"], state["direct_engine"] = raw, direct
    return state["direct_engine"]


def ensure_same_database(direct, pooled):
    """Raise ConfigError when MIGRATION_DATABASE_URL and the application's URL reach different databases.

    A database is known by its server's start time and its oid there (a pooler may give it another
    name); when either cannot be reached yet (setup creates it), there is nothing to compare.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    identity = text("SELECT pg_postmaster_start_time(), oid, datname FROM pg_database "
                    "WHERE datname = current_database()")
    try:
        found = []
        for engine_ in (direct, pooled):
            with engine_.connect() as connection:
                found.append(tuple(connection.execute(identity).one()))
    except OperationalError:
        return
    if found[0][:2] != found[1][:2]:
        raise ConfigError(f"MIGRATION_DATABASE_URL reaches the database {found[0][2]!r} and the application's URL "
                          f"{found[1][2]!r} on {'the same' if found[0][0] == found[1][0] else 'another'} server: "
                          "point MIGRATION_DATABASE_URL at the application's own database, without the pooler.")


def uses_direct_url():
    """Return True when the tool connects through MIGRATION_DATABASE_URL rather than the application's URL."""
    return bool(setting("MIGRATION_DATABASE_URL"))


def metadata():
    """Return the models' MetaData (the default bind's, as Flask-Migrate's env.py does)."""
    db = database()
    return db.metadatas[None] if hasattr(db, "metadatas") else db.metadata


def migrations_directory():
    """Return the migrations folder Flask-Migrate was given (or -d), as an absolute path; refuse a file in its
    place, and a missing one while the project keeps a history elsewhere."""
    directory = Path(migrate_extension().directory).resolve()
    if directory.exists() and not directory.is_dir() and os.environ.get(DIRECTORY_VARIABLE):
        raise Failure(f"{directory} is a file, not a migrations folder: give --directory a folder (or leave it out "
                      "for the application's own).")
    if directory.exists() and not directory.is_dir():
        raise Failure(f"{directory} is a file, where the migrations folder should be: move it away (or give "
                      "Migrate(app, db, directory=...) another folder), then run `python db_manage.py setup`.")
    if not directory.exists() and not os.environ.get(DIRECTORY_VARIABLE):
        elsewhere = histories_elsewhere(project_root(), directory)
        if elsewhere:
            relative = os.path.relpath(elsewhere[0], project_root())
            raise Failure(f"The application's migrations folder {directory} does not exist, but {relative} holds a "
                          f"migration history: give it with `python db_manage.py -d {relative} COMMAND` (as "
                          f"`flask db -d` takes it), or pass Migrate(app, db, directory=...).")
    return directory


SKIPPED_FOLDERS = {"node_modules", "site-packages", "__pycache__", "venv", "env", "build", "dist"}


def histories_elsewhere(root, missing, depth=3):
    """Return the folders under root (a few levels down) that hold an Alembic history: env.py and versions/."""
    found, level = [], [Path(root)]
    for _ in range(depth + 1):
        following = []
        for folder in level:
            if folder != missing and (folder / "env.py").is_file() and (folder / "versions").is_dir():
                found.append(folder)
                continue
            try:
                following += [child for child in folder.iterdir() if child.is_dir() and not child.is_symlink()
                              and not child.name.startswith(".") and child.name not in SKIPPED_FOLDERS]
            except OSError:
                continue
        level = following
    return sorted(found)


def describe_database():
    """Return the database in words, password masked."""
    if uses_direct_url():
        return f"{mask(engine().url)} (MIGRATION_DATABASE_URL)"
    return setting("DATABASE_DESCRIPTION") or mask(engine().url)


def database_url():
    """Return the application's database URL as text, password included (for libpq, never shown)."""
    return engine().url.render_as_string(hide_password=False)


def project_root():
    """Return the project folder: where db_manage.py runs (its working directory)."""
    return Path.cwd()
