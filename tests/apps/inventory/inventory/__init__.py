"""Inventory: an application that keeps its migration history inside its package (run with
`flask db -d inventory/migrations ...`), connects to its database when it starts, and prints
while it loads."""
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

db = SQLAlchemy()
migrate = Migrate()


def create_app():
    print("inventory: loading the configuration")  # on stdout, as many applications do
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    db.init_app(app)
    migrate.init_app(app, db)
    from inventory import models  # noqa: F401

    with app.app_context():  # a start-up check: fails when the database does not exist
        db.session.execute(text("SELECT 1"))
        db.session.remove()
    print("inventory: ready")
    return app
