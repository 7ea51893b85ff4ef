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
    """Put the tool's env.py into the migrations folder, keeping the old one; return (kept copy, customisations).

    Returns (None, None) when the folder has no env.py.
    """
    directory = Path(directory)
    env = directory / "env.py"
    if not env.exists():
        return None, None
    kept = free_name(directory / "env.py.orig")
    shutil.copy2(env, kept)
    customised = custom_keywords(env.read_text(encoding="utf-8"))
    tmp = env.with_name(".env.py.new")
    shutil.copyfile(TEMPLATE_ENV, tmp)
    os.replace(tmp, env)
    return kept, customised


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
        return click.echo(f"{directory / 'env.py'} is already the tool's: nothing to do.", err=True)
    kept, customised = adopt(directory)
    if kept is None:
        raise Failure(f"{directory} has no env.py: this application has no migrations yet; run "
                      "`python db_manage.py setup` (or `init`) to create them with the tool's env.py.")
    click.echo(f"Wrote the tool's {directory / 'env.py'}; yours is kept as {kept}.", err=True)
    if customised:
        click.echo(f"Your env.py passed {', '.join(customised)} to context.configure(): pass them to "
                   f"Migrate(app, db, {', '.join(f'{k}=...' for k in customised)}) instead, and the tool's env.py "
                   "will use them.", err=True)
