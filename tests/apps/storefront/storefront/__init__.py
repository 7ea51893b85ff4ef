"""Storefront: a small shop, laid out as tutorial Flask apps are (an application factory and blueprints)."""
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


def database_url():
    """Return DATABASE_URL for psycopg2 (SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://)."""
    url = os.environ.get("DATABASE_URL", "postgresql+psycopg2://localhost/storefront")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url()
    app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False

    db.init_app(app)
    migrate.init_app(app, db)

    from storefront.errors import bp as errors_bp
    app.register_blueprint(errors_bp)

    from storefront.main import bp as main_bp
    app.register_blueprint(main_bp)

    return app


from storefront import models  # noqa: E402,F401
