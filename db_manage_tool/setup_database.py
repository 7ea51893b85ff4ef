"""`setup`: what a fresh checkout needs, as Flask-Migrate's steps run in one process.

It never writes a migration on top of a history: with revisions in the migrations folder it
creates the database if missing and upgrades to head, and only reports what the models add.
"""
import contextlib
import io
from pathlib import Path

import click
from alembic import command
from flask_migrate import Config as MigrateConfig
from sqlalchemy.engine import make_url

from . import dbadmin
from .adoption import adopt, foreign_environment_note
from .application import CREATED, database_url, engine, migrations_directory
from .errors import Failure, with_invocation
from .migration_hooks import alembic_config, script_directory
from .revisions import current_revision

TEMPLATE = Path(__file__).resolve().parent / "migration_template"


def setup_database():
    """Create the database, init the migrations folder if missing, upgrade; write an initial revision only
    when there is no revision at all, else report how the models differ from the migrated database."""
    ensure_database(database_url())
    ensure_history_here()
    ensure_migrations_folder(TEMPLATE)
    note = foreign_environment_note(migrations_directory())
    if note:
        click.echo(note, err=True)
    if not list(script_directory().walk_revisions()):
        if write_migration_if_models_differ("Initial migration"):
            upgrade_to_head()
    else:
        upgrade_to_head()
        report_model_differences()
    with engine().connect() as connection:
        revision = current_revision(connection)
    engine().dispose()
    click.echo(f"Setup complete: the database is at revision {revision or 'base'} (head).", err=True)
    return revision


def ensure_database(url):
    """Create the database named in url when the server does not have it yet."""
    name = make_url(url).database
    created = dbadmin.create_database(url)
    if name not in CREATED:  # else said as the application loaded
        click.echo(f"Database {name!r}: {'created' if created else 'exists'}.", err=True)


def ensure_history_here():
    """Refuse to start a new history on a database that records a revision, when the migrations folder is missing."""
    directory = migrations_directory()
    if directory.is_dir() and any(directory.iterdir()):
        return
    with engine().connect() as connection:
        revision = current_revision(connection)
    if revision:
        raise Failure(f"The database records revision {revision}, but there is no migrations folder at {directory}: "
                      "run the command from the project that holds its history (or point --directory at its "
                      "migrations folder); a new history would not match this database. Nothing was changed.")


def ensure_migrations_folder(template):
    """Run `flask db init` with the tool's template when the migrations folder has no env.py."""
    directory = migrations_directory()
    if (directory / "env.py").exists():
        return
    if directory.is_dir() and any(directory.iterdir()):  # a history without its env.py: give it the tool's
        adopt(directory)
        return click.echo(f"Wrote the tool's {directory / 'env.py'} (the migrations folder had none).", err=True)
    click.echo(f"$ flask db init --template {template}", err=True)
    config = MigrateConfig(template_directory=str(template.parent))
    config.set_main_option("script_location", str(directory))
    config.config_file_name = str(directory / "alembic.ini")
    with contextlib.redirect_stdout(io.StringIO()) as said:
        command.init(config, str(directory), template=template.name)
    # Alembic's closing "Please edit ... alembic.ini before proceeding" does not apply: the tool fills it in.
    click.echo(said.getvalue().split("Please edit")[0].rstrip(), err=True)


def init_migrations(template=TEMPLATE):
    """`init`: create the migrations folder from the tool's template, once; say what comes next."""
    directory = migrations_directory()
    if (directory / "env.py").exists():
        raise Failure(f"{directory} already has its env.py: nothing to init (`python db_manage.py adopt` gives an "
                      "existing folder the tool's env.py).")
    ensure_migrations_folder(template)
    click.echo(f"Created {directory}: next, `python db_manage.py setup` creates the database and its first "
               "migration.", err=True)


def upgrade_to_head():
    """Run `flask db upgrade`: apply every pending migration."""
    click.echo("$ flask db upgrade", err=True)
    command.upgrade(alembic_config(), "head")


def write_migration_if_models_differ(message):
    """Run `flask db migrate` with message; return True when the models differed and a file was written."""
    click.echo(f"$ flask db migrate --message {message!r}", err=True)
    script = command.revision(alembic_config(autogenerate=True), message=message, autogenerate=True)
    return bool(script)


def report_model_differences():
    """Warn, in check's words, about each difference between the models and the migrated database."""
    from .check import describe, model_differences

    differences = [describe(diff) for diff in model_differences()]
    if not differences:
        return
    click.echo(f"Warning: the models differ from the migrated database in {len(differences)} way(s); "
               "setup writes no migration on top of a history:", err=True)
    for difference in differences:
        click.echo(f"- {difference}", err=True)
    click.echo(with_invocation('If these changes are yours, write their migration with `python db_manage.py migrate '
                               '"MESSAGE"`, review it, then `python db_manage.py upgrade`.'), err=True)
