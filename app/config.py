"""Configuration classes, picked by name (FLASK_CONFIG); settings are read in the factory, not here."""
import os

from db_manage_tool.database_url import ConfigError


class Config:
    """Settings shared by every configuration."""

    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    JSON_SORT_KEYS = False
    # Where the database URL comes from, and the embedded database used when it is unset.
    DATABASE_URL_VARIABLE = "DATABASE_URL"
    # A direct connection for db_manage.py when DATABASE_URL goes through a pooler (PgBouncer).
    MIGRATION_DATABASE_URL_VARIABLE = "MIGRATION_DATABASE_URL"
    EMBEDDED_DATABASE = "app_development"
    SECRET_KEY_REQUIRED = False
    # Settings of db_manage.py (db_manage_tool/application.py lists them with their defaults).
    MIGRATION_LOCK_TIMEOUT = 10.0  # seconds a migration may wait for table locks, in 1 s attempts; 0: no limit
    PROTECTED_CONFIGS = ("production",)  # destructive commands refuse databases migrated by these


class DevelopmentConfig(Config):
    """A developer's machine: debug on, embedded PostgreSQL unless DATABASE_URL is set."""

    DEBUG = True


class TestingConfig(Config):
    """The test suite: its own database (TEST_DATABASE_URL, else the embedded server)."""

    TESTING = True
    DATABASE_URL_VARIABLE = "TEST_DATABASE_URL"
    MIGRATION_DATABASE_URL_VARIABLE = "TEST_MIGRATION_DATABASE_URL"
    EMBEDDED_DATABASE = "app_test"


class ProductionConfig(Config):
    """A deployed application: DATABASE_URL and SECRET_KEY are required, nothing is embedded."""

    EMBEDDED_DATABASE = None
    SECRET_KEY_REQUIRED = True
    DEBUG = False  # never the interactive debugger on a deployed application


configs = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_name(name=None):
    """Return the configuration name: name, else FLASK_CONFIG, else the legacy FLASK_ENV, else development."""
    name = name or os.environ.get("FLASK_CONFIG") or os.environ.get("FLASK_ENV") or "development"
    if name not in configs:
        raise ConfigError(f"Unknown configuration {name!r}: use one of {', '.join(configs)} (FLASK_CONFIG).")
    return name
