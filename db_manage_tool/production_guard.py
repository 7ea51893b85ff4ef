"""Destructive commands refuse to touch production, like Rails' protected environments."""
import os

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from .application import config_name, engine, is_protected
from .errors import Failure

OVERRIDE_VARIABLE = "ALLOW_DESTRUCTIVE_COMMANDS_ON_PRODUCTION"


def refuse_on_production(action, connection=None):
    """Raise Failure when the configuration in use, or the one recorded in the database, is protected."""
    if os.environ.get(OVERRIDE_VARIABLE) == "1":
        return
    reasons = []
    if is_protected(config_name()):
        reasons.append(f"the {config_name()} configuration is in use")
    marked = recorded_environment(connection) if connection is not None else recorded()
    if marked is not None and is_protected(marked):
        reasons.append(f"this database was last migrated by the {marked} configuration")
    if reasons:
        raise Failure(f"Refusing to {action}: {' and '.join(reasons)}. Nothing was changed; --yes does not "
                      f"lift this. If you really mean it, set {OVERRIDE_VARIABLE}=1.")


def recorded():
    """Return the configuration recorded in the configured database, or None (also when it does not exist yet)."""
    try:
        with engine().connect() as connection:  # left in the pool for the command that follows
            return recorded_environment(connection)
    except OperationalError as exc:
        if "does not exist" in str(exc.orig):
            return None
        raise


def recorded_environment(connection):
    """Return the configuration name recorded in the database on connection, or None."""
    # Wherever the migrations put it: the first schema of the search_path (a role's own schema, or public).
    if connection.execute(text("SELECT to_regclass('db_manage_metadata')")).scalar() is None:
        return None
    return connection.execute(text("SELECT value FROM db_manage_metadata WHERE key = 'environment'")).scalar()
