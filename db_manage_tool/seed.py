"""`seed`: run the application's own seed function (its sample data) in one transaction.

The seed data belongs to the application, like Rails' db/seeds.rb: a module `seeds` beside it
(app/seeds.py in the skeleton; SEED_MODULE in app.config names another) with a function
seed(connection, **options) that inserts rows and returns {what: count}.
"""
import importlib
import importlib.util
import inspect
from collections.abc import Mapping
from pathlib import Path

import click
from flask import current_app
from sqlalchemy.exc import OperationalError

from .application import engine, setting
from .errors import Failure, first_line
from .production_guard import refuse_on_production

EXAMPLE = """    def seed(connection):
        added = connection.execute(insert(User).values(name="ada").on_conflict_do_nothing()).rowcount
        return {"users": added}"""


def seed_database(**options):
    """Run the application's seed(connection, **options) in one transaction; say and return what it added."""
    refuse_on_production("seed the database")
    seed = seed_function()
    given = {name: value for name, value in options.items() if value}
    unknown = sorted(set(given) - set(inspect.signature(seed).parameters))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(seed).parameters.values()):
        raise Failure(f"The application's seed function ({seed.__module__}.seed) takes no "
                      f"{', '.join('--' + name for name in unknown)}: nothing was changed.")
    try:
        with engine().connect() as connection, connection.begin():
            added = seed(connection, **given)
    except (Failure, OperationalError):
        raise
    except Exception as exc:  # the application's seed code failed: its transaction is rolled back
        raise Failure(f"The seed function {seed.__module__}.seed failed: {type(exc).__name__}: "
                      f"{first_line(str(getattr(exc, 'orig', None) or exc))}. Nothing was changed.") from exc
    engine().dispose()
    summary = ", ".join(f"{count} {what}" for what, count in added.items()) if isinstance(added, Mapping) else ""
    click.echo(f"Seeded: {summary} added." if summary else "Seeded.", err=True)
    return added


def seed_module_name():
    """Return the name of the application's seed module: SEED_MODULE, else `seeds` beside the application."""
    if setting("SEED_MODULE"):
        return setting("SEED_MODULE")
    package = current_app.import_name.rpartition(".")[0] if not is_package(current_app.import_name) \
        else current_app.import_name
    return f"{package}.seeds" if package else "seeds"


def is_package(name):
    """Return True when the module `name` is a package."""
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def seed_function():
    """Return the application's seed function, or raise Failure saying where to write one."""
    name = seed_module_name()
    try:
        module = importlib.import_module(name)
    except SyntaxError as exc:
        raise Failure(f"The seed file {name} has a syntax error ({exc}): fix it. Nothing was changed.") from exc
    except ImportError as exc:
        if not isinstance(exc, ModuleNotFoundError) or exc.name is None or not name.startswith(exc.name):
            raise Failure(f"The seed file {name} does not import ({exc}): bring it up to date with the models. "
                          "Nothing was changed.") from exc
        if setting("SEED_MODULE"):
            raise Failure(f"SEED_MODULE names {name!r}, which does not exist: correct app.config['SEED_MODULE'] "
                          "or write that module. Nothing was changed.") from None
        where = name if setting("SEED_MODULE") else relative(Path(current_app.root_path) / "seeds.py")
        raise Failure(f"This application has no seed data: write {where} with a function seed(connection) that "
                      f"adds your sample rows and returns what it added (SEED_MODULE in app.config may name "
                      f"another module). Nothing was changed. For example:\n{EXAMPLE}") from None
    if not callable(getattr(module, "seed", None)):
        raise Failure(f"{module.__file__} has no function seed(connection): add one. Nothing was changed.")
    return module.seed


def relative(path):
    """Return path relative to the project folder when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
