"""Destructive commands refuse to touch production, like Rails' protected environments."""
import os

from flask import current_app
from sqlalchemy.exc import OperationalError

from app import db
from app.errors import Failure
from app.migration_safety import recorded_environment

OVERRIDE_VARIABLE = "ALLOW_DESTRUCTIVE_COMMANDS_ON_PRODUCTION"


def refuse_on_production(action):
    """Raise Failure when the configuration, or the configuration recorded in the database, is production."""
    if os.environ.get(OVERRIDE_VARIABLE) == "1":
        return
    reasons = []
    if current_app.config["CONFIG_NAME"] == "production":
        reasons.append("the production configuration is in use")
    if recorded() == "production":
        reasons.append("this database was last migrated by the production configuration")
    if reasons:
        raise Failure(f"Refusing to {action}: {' and '.join(reasons)}. Nothing was changed; --yes does not "
                      f"lift this. If you really mean it, set {OVERRIDE_VARIABLE}=1.")


def recorded():
    """Return the configuration recorded in the configured database, or None (also when it does not exist yet)."""
    try:
        with db.engine.connect() as connection:  # left in the pool for the command that follows
            return recorded_environment(connection)
    except OperationalError as exc:
        if "does not exist" in str(exc.orig):
            return None
        raise
