"""Destructive commands refuse to touch production, like Rails' protected environments."""
import os

from flask import current_app

from app import db, dbadmin
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
    if dbadmin.database_exists(current_app.config["SQLALCHEMY_DATABASE_URI"]):
        with db.engine.connect() as connection:
            if recorded_environment(connection) == "production":
                reasons.append("this database was last migrated by the production configuration")
        db.engine.dispose()
    if reasons:
        raise Failure(f"Refusing to {action}: {' and '.join(reasons)}. Nothing was changed; --yes does not "
                      f"lift this. If you really mean it, set {OVERRIDE_VARIABLE}=1.")
