"""Adoption of an existing migrations folder: is its env.py the tool's, and putting the tool's in place.

Only the standard library is imported here, so that db_manage.py may ask cheaply.
"""
import ast
import os
import shutil
from pathlib import Path

# A line of env.py that says it is the tool's: commands look for it before relying on its guarantees.
MARKER = "db_manage_tool.environment"
TEMPLATE_ENV = Path(__file__).resolve().parent / "migration_template" / "env.py"
TEMPLATE_INI = TEMPLATE_ENV.with_name("alembic.ini.mako")  # plain text: it has no template variables
# Keywords of context.configure() that every stock env.py passes; any other is a customisation to carry over.
STOCK_KEYWORDS = {"connection", "target_metadata", "url", "literal_binds", "process_revision_directives",
                  "dialect_opts"}


def is_tool_environment(directory):
    """Return True when the env.py of the migrations folder `directory` is the tool's."""
    try:
        return MARKER in (Path(directory) / "env.py").read_text(encoding="utf-8")
    except OSError:
        return False


def foreign_environment_note(directory):
    """Return a sentence when the migrations folder has an env.py that is not the tool's, else None."""
    env = Path(directory) / "env.py"
    if not env.exists() or is_tool_environment(directory):
        return None
    return (f"Note: {env} is not db_manage's, so this runs without the tool's migration lock, lock timeout, "
            "production guard and schema handling; `python db_manage.py adopt` puts the tool's in place "
            "(your env.py is kept).")


def adopt(directory):
    """Put the tool's env.py into the migrations folder (which exists), keeping the old one; return the kept copy.

    Returns None when the folder had no env.py.
    """
    env = Path(directory) / "env.py"
    kept = free_name(env.with_name("env.py.orig")) if env.exists() else None
    if kept:
        shutil.copy2(env, kept)
    tmp = env.with_name(".env.py.new")
    shutil.copyfile(TEMPLATE_ENV, tmp)
    os.replace(tmp, env)
    write_missing_ini(directory)
    return kept


def write_missing_ini(directory):
    """Write the tool's alembic.ini into directory when it has none or an empty one; return True if written."""
    ini = Path(directory) / "alembic.ini"
    if ini.exists() and ini.read_text(encoding="utf-8", errors="replace").strip():
        return False
    shutil.copyfile(TEMPLATE_INI, ini)
    return True


def is_stock(source):
    """Return True when source is the env.py of one of Flask-Migrate's own templates."""
    import flask_migrate

    templates = Path(flask_migrate.__file__).parent / "templates"
    return any(source.strip() == path.read_text(encoding="utf-8").strip() for path in templates.glob("*/env.py"))


def free_name(path):
    """Return path, or path.1, path.2, ... : the first that does not exist."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def custom_keywords(source):
    """Return the keywords an env.py passes to context.configure() beyond the stock ones (its customisations)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = {keyword.arg for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "attr", getattr(node.func, "id", None)) == "configure"
             for keyword in node.keywords if keyword.arg}
    return sorted(found - STOCK_KEYWORDS)


def adopt_migrations():
    """Put the tool's env.py into the current application's migrations folder and say what changed."""
    import click

    from .application import migrations_directory
    from .errors import Failure

    directory = migrations_directory()
    if is_tool_environment(directory):
        if write_missing_ini(directory):
            return click.echo(f"Wrote the tool's {directory / 'alembic.ini'} (it was missing or empty).", err=True)
        return click.echo(f"{directory / 'env.py'} is already the tool's: nothing to do.", err=True)
    if not directory.is_dir():
        raise Failure(f"There is no migrations folder at {directory}: for a new history run "
                      "`python db_manage.py setup`, which creates it with the tool's env.py.")
    old = (directory / "env.py").read_text(encoding="utf-8") if (directory / "env.py").exists() else None
    kept = adopt(directory)
    click.echo(f"Wrote the tool's {directory / 'env.py'}" + (f"; yours is kept as {kept}." if kept else "."), err=True)
    customised = custom_keywords(old) if old else []
    if customised:
        click.echo(f"Your env.py passed {', '.join(customised)} to context.configure(): pass them to "
                   f"Migrate(app, db, {', '.join(f'{k}=...' for k in customised)}) instead, and the tool's env.py "
                   "will use them.", err=True)
    if old and not is_stock(old):
        click.echo(f"Your env.py was not Flask-Migrate's own: read {kept} for anything else it did (creating "
                   "tables, building its own app, logging) and carry it over into the application.", err=True)
