"""The application package: extensions created here, bound to an app by create_app()."""
import hashlib
import importlib
import importlib.util
import math
import os
import re
from pathlib import Path

import alembic_postgresql_enum  # noqa: F401  (opted in: migrate creates, alters and drops enum types)
from dotenv import load_dotenv
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

from app.config import config_name as choose_config, configs
from db_manage_tool.database_url import ConfigError, mask, normalise

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def check_name(constraint, table):
    """Name an unnamed CHECK constraint after the columns it mentions and a short hash of its SQL."""
    text = str(constraint.sqltext)
    columns = [c.name for c in table.columns if re.search(rf"\b{re.escape(c.name)}\b", text)]
    return "_".join([*columns, hashlib.md5(text.encode()).hexdigest()[:6]])


# Named constraints let every generated migration drop by name what it created. A CHECK
# constraint given a name keeps it; an unnamed one gets ck_<table>_<columns>_<hash>.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(check_name)s",
    "check_name": check_name,
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
# Where this differs from Flask-Migrate's defaults, on purpose: server defaults and schemas compared,
# and PostgreSQL's in-place ALTER TABLE rather than batch blocks (which are for SQLite).
migrate = Migrate(compare_type=True, compare_server_default=True, include_schemas=True, render_as_batch=False)


def create_app(config_name=None, overrides=None):
    """Create the application for config_name (default: FLASK_CONFIG, FLASK_ENV, development)."""
    load_dotenv(PROJECT_ROOT / ".env")
    app = Flask(__name__)
    load_config(app, config_name, overrides or {})
    bind_database(app)
    register_extensions(app)
    register_blueprints(app)
    return app


def load_config(app, config_name, overrides):
    """Load the named configuration, the secret key and overrides into app.config; check required settings."""
    name = choose_config(config_name)
    app.config.from_object(configs[name])
    app.config["CONFIG_NAME"] = name  # the tool records it in the database it migrates
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or ("dev-only-secret" if name != "production" else None)
    app.config["MIGRATION_LOCK_TIMEOUT"] = seconds_setting("MIGRATION_LOCK_TIMEOUT", app.config["MIGRATION_LOCK_TIMEOUT"])
    app.config.update(overrides)
    variable = app.config["DATABASE_URL_VARIABLE"]
    missing = [setting for setting, absent in (
        (variable, not (app.config["EMBEDDED_DATABASE"] or app.config.get("SQLALCHEMY_DATABASE_URI")
                        or os.environ.get(variable))),
        ("SECRET_KEY", app.config["SECRET_KEY_REQUIRED"] and not app.config["SECRET_KEY"])) if absent]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} must be set for the {name} configuration (environment or .env).")


def seconds_setting(variable, default):
    """Return the environment variable as seconds (a number >= 0), else default; raise ConfigError if invalid."""
    raw = os.environ.get(variable)
    try:
        value = default if raw is None or not raw.strip() else float(raw)  # empty: the default
    except ValueError:
        value = -1
    if not (0 <= value < math.inf):  # also refuses nan
        raise ConfigError(f"{variable} must be a number of seconds (0 for no limit), not {raw!r}.")
    return value


def bind_database(app):
    """Set SQLALCHEMY_DATABASE_URI from overrides, the URL variable, or the embedded server."""
    variable = app.config["DATABASE_URL_VARIABLE"]
    raw = app.config.get("SQLALCHEMY_DATABASE_URI") or os.environ.get(variable)
    if raw is not None and not str(raw).strip():  # `DATABASE_URL=` in .env: not a wish for the embedded server
        raise ConfigError(f"{variable} is set but empty: give it a URL, or remove the line to use the embedded "
                          "PostgreSQL.")
    if raw:
        parsed = normalise(str(raw), variable)
        url, where = parsed.render_as_string(hide_password=False), mask(parsed)  # masked from the parsed URL
    else:  # load_config made sure that an embedded database is allowed
        from db_manage_tool.embedded import embedded_url

        pgdata = Path(app.instance_path) / "pgdata"
        url = embedded_url(pgdata, app.config["EMBEDDED_DATABASE"])
        where = f"embedded PostgreSQL in {pgdata}, database {app.config['EMBEDDED_DATABASE']}"
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["DATABASE_DESCRIPTION"] = where  # how db_manage.py names the database, password masked
    bind_direct_database(app, bool(raw))


def bind_direct_database(app, has_url):
    """Set MIGRATION_DATABASE_URL (db_manage.py's direct connection) from overrides or its variable, if given."""
    variable = app.config["MIGRATION_DATABASE_URL_VARIABLE"]
    raw = app.config.get("MIGRATION_DATABASE_URL") or os.environ.get(variable)
    if not raw:
        return
    if not has_url:
        raise ConfigError(f"{variable} is set but {app.config['DATABASE_URL_VARIABLE']} is not: set both (the "
                          f"application's URL, and {variable} for the same database without the pooler), or neither.")
    app.config["MIGRATION_DATABASE_URL"] = normalise(str(raw), variable).render_as_string(hide_password=False)


def register_extensions(app):
    """Bind SQLAlchemy and Flask-Migrate to app, with every model registered on db.metadata."""
    from app import models  # noqa: F401  (importing registers the tables)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))


def register_blueprints(app):
    """Attach the JSON endpoints of app/views.py, if the application still has it."""
    if importlib.util.find_spec("app.views") is not None:
        app.register_blueprint(importlib.import_module("app.views").bp)
