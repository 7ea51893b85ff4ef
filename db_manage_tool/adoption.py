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


def adopt(directory, settings=None):
    """Put the tool's env.py into the migrations folder (which exists), keeping the old one; return the kept copy.

    settings are passed to the tool's run() (what the old env.py set). Returns None when the folder had no env.py.
    """
    env = Path(directory) / "env.py"
    kept = free_name(env.with_name("env.py.orig")) if env.exists() else None
    if kept:
        shutil.copy2(env, kept)
    tmp = env.with_name(".env.py.new")
    tmp.write_text(written_environment(settings), encoding="utf-8")
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


# Calls of Flask-Migrate's env.py templates (4.x and 2.x): anything else an env.py calls is its own doing.
TEMPLATE_CALLS = {"fileConfig", "getLogger", "get_engine", "get_engine_url", "render_as_string", "replace", "str",
                  "set_main_option", "get_main_option", "get_metadata", "hasattr", "getattr", "configure",
                  "begin_transaction", "run_migrations", "is_offline_mode", "run_migrations_offline",
                  "run_migrations_online", "connect", "is_empty", "info", "get", "engine_from_config",
                  "get_section", "process_revision_directives", "get_bind", "items", "current_app", "dict",
                  "execution_options", "warning", "debug", "logger", "join", "format", "close", "dispose"}


def carried_settings(source):
    """Return what an env.py sets that the tool's env.py can take over, and what it cannot.

    The first is {keyword: value}: the literal keywords it passes to context.configure() beyond the
    stock ones (transaction_per_migration=True, version_table="...", ...), and isolation_level when its
    connection runs in AUTOCOMMIT. The second lists (name, why) for what would be lost: keywords whose
    value is code of the env.py, calls of its own (create_all(), seeding...), several databases.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return {}, [("env.py", f"does not compile (line {exc.lineno})")]
    settings, lost = {}, []
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    hooks = {keyword.value.id for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "attr", None) == "configure" for keyword in node.keywords
             if isinstance(keyword.value, ast.Name)}  # functions given to configure(): judged as settings
    inside_hooks = {id(node) for name in hooks if name in functions for node in ast.walk(functions[name])}
    for node in ast.walk(tree):
        if id(node) in inside_hooks:
            continue
        if not isinstance(node, ast.Call):
            continue
        called = getattr(node.func, "attr", getattr(node.func, "id", None))
        for keyword in node.keywords:
            if keyword.arg == "isolation_level":
                try:
                    level = ast.literal_eval(keyword.value)
                except ValueError:
                    level = None
                if str(level).upper() == "AUTOCOMMIT":
                    settings["isolation_level"] = "AUTOCOMMIT"
                elif level is None:
                    lost.append(("isolation_level", "is computed by the env.py"))
        if called != "configure":
            if called and called not in TEMPLATE_CALLS and not called.startswith("_") and called not in BUILTINS:
                lost.append((f"{called}()", "is called by the env.py"))
            continue
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg in STOCK_KEYWORDS or keyword.arg in settings:
                continue
            try:
                settings[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError:
                function = functions.get(getattr(keyword.value, "id", None))
                if function is not None and self_contained(function):
                    settings[keyword.arg] = Carried(function.name, ast.get_source_segment(source, function))
                else:
                    lost.append((f"{keyword.arg}={ast.unparse(keyword.value)}", "is code of the env.py that uses "
                                 "more than its arguments"))
    imports = [ast.get_source_segment(source, node) for node in tree.body
               if isinstance(node, (ast.Import, ast.ImportFrom))
               and not {name.split(".")[0] for name in imported_modules(node)} <= STOCK_MODULES]
    if imports:  # a plug-in (alembic_postgresql_enum) or the models, imported for what importing does
        settings[IMPORTS] = imports
    if "binds" in source and "get_engine(bind" in source.replace(" ", ""):
        lost.append(("several databases (binds)", "are migrated by the env.py, the tool migrates the default one"))
    return settings, sorted(set(lost))


BUILTINS = set(dir(__import__("builtins")))
IMPORTS = "imports"  # the key of carried_settings' imports, written above run()
STOCK_MODULES = {"__future__", "logging", "alembic", "flask", "sqlalchemy", "os", "sys", "flask_migrate"}


def imported_modules(node):
    """Return the modules an import statement names."""
    return [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]


class Carried:
    """A function of the old env.py, copied into the tool's: its name, and its source."""

    def __init__(self, name, source):
        self.name, self.source = name, source

    def __repr__(self):
        return self.name


def self_contained(function):
    """Return True when function uses nothing but its arguments, its own names and builtins (safe to copy)."""
    arguments = function.args
    own = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                           *filter(None, [arguments.vararg, arguments.kwarg])]}
    own |= {node.id for node in ast.walk(function) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    used = {node.id for node in ast.walk(function) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return not function.decorator_list and used <= own | BUILTINS


def written_environment(settings):
    """Return the text of the tool's env.py, passing settings carried over from the application's to run()."""
    text = TEMPLATE_ENV.read_text(encoding="utf-8")
    settings = dict(settings or {})
    imports = settings.pop(IMPORTS, [])
    if imports:
        carried = "".join(f"{line}  # carried over from your env.py\n" for line in imports)
        text = text.replace("\nfrom db_manage_tool.environment import", f"\n{carried}from db_manage_tool.environment import")
    if not settings:
        return text
    copied = "".join(f"\n\n# Carried over from your env.py.\n{value.source}\n" for _, value in sorted(settings.items())
                     if isinstance(value, Carried))
    arguments = ", ".join(f"{name}={value!r}" for name, value in sorted(settings.items()))
    return text.replace("\nrun()\n", f"{copied}\n\nrun({arguments})  # carried over from your env.py\n")


def environment_settings(directory):
    """Return the settings the tool's env.py in directory passes to run() (what adopt carried over)."""
    try:
        tree = ast.parse((Path(directory) / "env.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run":
            settings = {}
            for keyword in node.keywords:
                try:
                    settings[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:  # a function carried over
                    continue
            return settings
    return {}


def runs_stepwise(settings):
    """Return True when settings make each revision (or statement) commit on its own."""
    return bool(settings.get("transaction_per_migration")) or settings.get("isolation_level") == "AUTOCOMMIT"


def adopt_migrations(force=False):
    """Put the tool's env.py into the current application's migrations folder, carrying over what the old one set;
    refuse, unless forced, when something it did would be lost."""
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
    settings, lost = carried_settings(old) if old and not is_stock(old) else ({}, [])
    if lost and not force:
        raise Failure(f"{directory / 'env.py'} does what the tool's env.py would not: "
                      f"{'; '.join(f'{name} {why}' for name, why in lost)}. Carry that into the application (a "
                      "setting can go to Migrate(app, db, ...)), or run `python db_manage.py adopt --force` to adopt "
                      "without it. Nothing was changed.")
    kept = adopt(directory, settings)
    click.echo(f"Wrote the tool's {directory / 'env.py'}" + (f"; yours is kept as {kept}." if kept else "."), err=True)
    if settings:
        carried = [*settings.get(IMPORTS, []), *(f"{k}={v!r}" for k, v in sorted(settings.items()) if k != IMPORTS)]
        click.echo(f"Carried over from your env.py: {', '.join(carried)}"
                   + (" (each revision commits on its own, as before)." if runs_stepwise(settings) else "."), err=True)
    if lost:
        click.echo(f"Not carried over (--force): {'; '.join(name for name, _ in lost)}: see {kept}.", err=True)
