"""A generated Flask application of N tables, for the scaling benchmark and the lock-budget tests.

write_project(folder, tables) copies db_manage.py and its package into folder and writes a
package `genapp` whose models (ten per module) each have an id, a unique name, a text body,
a timestamp, and a foreign key to the previous table with its index: about 14 locks each
when created or dropped, as a typical model's table.
"""
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PER_MODULE = 10

FACTORY = '''"""A generated application: {tables} tables in {modules} model modules."""
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


def create_app():
    """Create the application on DATABASE_URL."""
    app = Flask(__name__)
    url = os.environ["DATABASE_URL"]  # SQLAlchemy 2.1 reads postgresql:// as psycopg 3: this project has psycopg2
    app.config["SQLALCHEMY_DATABASE_URI"] = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    db.init_app(app)
    migrate.init_app(app, db)
    from . import models  # noqa: F401
    return app
'''

MODEL = '''

class Table{n}(db.Model):
    __tablename__ = "table_{n:04d}"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False, unique=True)
    body = db.Column(db.Text)
    created_at = db.Column(db.DateTime, server_default=db.func.now())
{parent}'''
PARENT = '''    parent_id = db.Column(db.Integer, db.ForeignKey("table_{p:04d}.id"), index=True)
'''


def write_project(folder, tables):
    """Write a project with `tables` generated models into folder (created), ready for `db_manage.py setup`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "db_manage.py", folder)
    shutil.copytree(ROOT / "db_manage_tool", folder / "db_manage_tool", ignore=shutil.ignore_patterns("__pycache__"))
    package = folder / "genapp"
    (package / "models").mkdir(parents=True, exist_ok=True)
    modules = (tables + PER_MODULE - 1) // PER_MODULE
    (package / "__init__.py").write_text(FACTORY.format(tables=tables, modules=modules))
    imports = []
    for module in range(modules):
        numbers = range(module * PER_MODULE + 1, min(tables, (module + 1) * PER_MODULE) + 1)
        body = "from .. import db\n" + "".join(
            MODEL.format(n=n, parent=PARENT.format(p=n - 1) if n > 1 else "") for n in numbers)
        (package / "models" / f"m{module:03d}.py").write_text(body)
        imports.append(f"from . import m{module:03d}  # noqa: F401")
    (package / "models" / "__init__.py").write_text("\n".join(imports) + "\n")
    (folder / ".flaskenv").write_text("FLASK_APP=genapp:create_app()\n")
    return folder
