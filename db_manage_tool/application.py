"""The application the tool serves, loaded the way the `flask` command loads it, and its settings.

The tool never imports the application by name: FLASK_APP says where it is (default: the
project's run.py), Flask-Migrate's extension says where its models and migrations are, and
app.config holds the tool's settings, each with a documented default.
"""
import os
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
MAX_LOCK_TIMEOUT = 2147483.647  # PostgreSQL's largest lock_timeout (an int of milliseconds), about 24 days
ANNOUNCE_VARIABLE = "DB_MANAGE_ANNOUNCE"
_announced = False


class AppNotLoaded(Failure):
    """The application could not be loaded or does not use Flask-Migrate."""


def load_app(announce=True):
    """Load the application as `flask` does (.env, .flaskenv, FLASK_APP) and check that it uses Flask-Migrate."""
    from flask.cli import NoAppException, ScriptInfo, load_dotenv

    from .revisions import refuse_duplicate_revisions, use_first_line_messages

    from .dotenv_files import check_folder

    use_first_line_messages()
    refuse_duplicate_revisions()
    check_folder(os.getcwd())  # the files load_dotenv reads first: commands run in the project folder
    load_dotenv()
    where = os.environ.get("FLASK_APP") or "wsgi.py or app.py"
    try:
        app = ScriptInfo(app_import_path=os.environ.get("FLASK_APP"), set_debug_flag=False).load_app()
    except NoAppException as exc:
        raise AppNotLoaded(not_found_message(where, exc.format_message())) from exc
    except ConfigError:  # a setting is missing or wrong: its message says which and what to do
        raise
    except Exception as exc:  # the application's own start-up failed: say so, with its first line
        failure = AppNotLoaded(f"The application (FLASK_APP={where}) failed to start: "
                               f"{type(exc).__name__}: {first_line(str(exc))}")
        failure.traceback_helps = True
        raise failure from exc
    if "migrate" not in app.extensions:
        raise AppNotLoaded(f"The application (FLASK_APP={where}) does not use Flask-Migrate: add "
                           "`migrate = Migrate(app, db)` (or migrate.init_app(app, db) in its factory).")
    with app.app_context():
        ensure_postgresql(where)
        if announce:
            announce_database()
    return app


def not_found_message(where, message):
    """Return the sentence for Flask's NoAppException: the import error inside the application if that was it."""
    if "an ImportError was raised" in message:  # the application's module failed to import: say why
        cause = last_line(message)
        hint = (" SQLAlchemy 2.1 reads postgresql:// as psycopg 3: write postgresql+psycopg2:// in the URL, "
                "or install psycopg." if "No module named 'psycopg'" in cause else "")
        return f"The application (FLASK_APP={where}) failed to import: {cause}.{hint}"
    return (f"No Flask application found at FLASK_APP={where} ({first_line(message)}): point --app or FLASK_APP "
            "at the module or factory, e.g. --app 'myapp:create_app()'.")


def ensure_postgresql(where):
    """Raise Failure unless the application's database is PostgreSQL, the only one the tool manages."""
    dialect = engine().dialect.name
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
    return direct_engine(str(direct)) if direct else application_engine()


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
    """Return the migrations folder Flask-Migrate was given, as an absolute path; refuse a file in its place."""
    directory = Path(migrate_extension().directory).resolve()
    if directory.exists() and not directory.is_dir():
        raise Failure(f"{directory} is a file, where the migrations folder should be: move it away (or give "
                      "Migrate(app, db, directory=...) another folder), then run `python db_manage.py setup`.")
    return directory


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
