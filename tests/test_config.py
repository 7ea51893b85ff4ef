"""Configuration: names, URL normalisation and required settings, checked against the real server."""
import pytest
from sqlalchemy import text

from app import create_app, db
from db_manage_tool.database_url import ConfigError


def connect_and_select(app):
    """Return SELECT 1 run through app's engine (the URL must really work)."""
    with app.app_context():
        value = db.session.execute(text("SELECT 1")).scalar()
        db.engine.dispose()
    return value


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg2"])
def test_urls_are_normalised_to_psycopg2(database_url, scheme):
    raw = scheme + "://" + database_url.split("://", 1)[1]
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": raw})
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg2://")
    assert connect_and_select(app) == 1


def test_config_name_falls_back_to_legacy_flask_env(monkeypatch, database_url):
    monkeypatch.delenv("FLASK_CONFIG", raising=False)
    monkeypatch.setenv("FLASK_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    app = create_app()
    assert app.config["CONFIG_NAME"] == "production" and not app.config.get("DEBUG")
    assert connect_and_select(app) == 1


def test_flask_config_wins_over_flask_env(monkeypatch, database_url):
    monkeypatch.setenv("FLASK_CONFIG", "development")
    monkeypatch.setenv("FLASK_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", database_url)
    app = create_app()
    assert app.config["CONFIG_NAME"] == "development" and app.config["DEBUG"]
    assert connect_and_select(app) == 1


def test_production_requires_database_url_and_secret_key(monkeypatch, database_url):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    with pytest.raises(ConfigError, match="DATABASE_URL must be set"):
        create_app("production")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("SECRET_KEY")
    with pytest.raises(ConfigError, match="SECRET_KEY must be set"):
        create_app("production")


def test_production_names_every_missing_setting_at_once(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="DATABASE_URL and SECRET_KEY must be set for the production configuration"):
        create_app("production")


def test_unknown_configuration_name():
    with pytest.raises(ConfigError, match="Unknown configuration 'staging'"):
        create_app("staging")
