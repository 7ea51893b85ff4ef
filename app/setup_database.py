"""`setup`: what a fresh checkout needs, as Flask-Migrate's steps run in one process."""
from pathlib import Path

import click
from alembic import command
from alembic.runtime.migration import MigrationContext
from flask import current_app
from flask_migrate import Config as MigrateConfig
from sqlalchemy.engine import make_url

from app import PROJECT_ROOT, create_app, db, dbadmin
from app.migration_hooks import alembic_config


def setup_database(template):
    """Create the database, init migrations/ if missing, upgrade, and autogenerate only if models differ."""
    app = create_app()
    with app.app_context():
        ensure_database(app.config["SQLALCHEMY_DATABASE_URI"])
        ensure_migrations_folder(PROJECT_ROOT / template)
        upgrade_to_head()
        if write_migration_if_models_differ("Initial migration"):
            upgrade_to_head()
        with db.engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
        db.engine.dispose()
        click.echo(f"Setup complete: the database is at revision {revision or 'base'} (head).", err=True)


def ensure_database(url):
    """Create the database named in url when the server does not have it yet."""
    name = make_url(url).database
    created = dbadmin.create_database(url)
    click.echo(f"Database {name!r}: {'created' if created else 'exists'}.", err=True)


def ensure_migrations_folder(template):
    """Run `flask db init` with the project's template when the migrations folder has no env.py."""
    directory = current_app.extensions["migrate"].directory
    if (Path(directory) / "env.py").exists():
        return
    click.echo(f"$ flask db init --template {template.relative_to(PROJECT_ROOT)}", err=True)
    config = MigrateConfig(template_directory=str(template.parent))
    config.set_main_option("script_location", directory)
    config.config_file_name = str(Path(directory) / "alembic.ini")
    command.init(config, directory, template=template.name)


def upgrade_to_head():
    """Run `flask db upgrade`: apply every pending migration."""
    click.echo("$ flask db upgrade", err=True)
    command.upgrade(alembic_config(), "head")


def write_migration_if_models_differ(message):
    """Run `flask db migrate` with message; return True when the models differed and a file was written."""
    click.echo(f"$ flask db migrate --message {message!r}", err=True)
    script = command.revision(alembic_config(autogenerate=True), message=message, autogenerate=True)
    return bool(script)
