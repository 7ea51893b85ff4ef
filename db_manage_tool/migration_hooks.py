"""How Alembic compares and writes migrations: the tool's settings, merged with the application's.

The tool's env.py (migration_template/env.py) passes configure_args(...) to context.configure():
whatever the application gave Migrate(...) (compare_type, compare_server_default, render_as_batch,
include_schemas, include_object, ...), as plain `flask db` would, with the tool's hooks chained
before the application's own include_name and process_revision_directives. The tool adds no
comparison setting of its own: the skeleton opts in through its own Migrate(...) call.
"""
import logging
import os

import click
from alembic.operations import ops
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql

from . import safe_forms
from .application import database, metadata, migrate_extension, migrations_directory

log = logging.getLogger("alembic.env")


def configure_args(app_args=None):
    """Return the keyword arguments for Alembic's context.configure(): the application's, with the tool's hooks."""
    args = dict(app_args or {})
    app_include, app_directives = args.pop("include_name", None), args.pop("process_revision_directives", None)
    args["include_name"] = include_name if app_include is None else both(include_name, app_include)
    args["process_revision_directives"] = (process_revision_directives if app_directives is None
                                           else chained(process_revision_directives, app_directives))
    args["render_item"] = importing_types(args.get("render_item"))
    return args


def importing_types(app_render_item):
    """Return a render_item hook that imports the module of each type not SQLAlchemy's own that a revision names.

    Alembic writes such a type as `module.Type()` without importing module (a revision that fails with NameError);
    the application's own render_item, when it has one, renders first.
    """
    def render_item(type_, obj, autogen_context):
        rendered = app_render_item(type_, obj, autogen_context) if app_render_item is not None else False
        module = type(obj).__module__ if type_ == "type" else ""
        if rendered is False and module and not module.startswith(("sqlalchemy.", "alembic.", "builtins", "__main__")):
            if autogen_context.opts.get("user_module_prefix") is None:
                autogen_context.imports.add(f"import {module}")
        return rendered
    return render_item


def both(first, second):
    """Return an include_name hook that accepts what both hooks accept."""
    return lambda name, type_, parent_names: first(name, type_, parent_names) and second(name, type_, parent_names)


def chained(first, second):
    """Return a process_revision_directives hook that runs first, then second unless first emptied the list."""
    def run(context, revision, directives):
        first(context, revision, directives)
        if directives:
            second(context, revision, directives)
    return run


def alembic_config(autogenerate=False):
    """Return Flask-Migrate's Alembic configuration for the current app."""
    migrations_directory()  # refuses a file in the folder's place
    return migrate_extension().migrate.get_config(opts=["autogenerate"] if autogenerate else None)


def script_directory():
    """Return the migration scripts of the current app."""
    return ScriptDirectory.from_config(alembic_config())


def model_schemas():
    """Return the schemas the models use, None standing for the default one."""
    return {table.schema for table in metadata().tables.values()} | {None}


def include_name(name, type_, parent_names):
    """Compare the default schema and the models' schemas only, and never the tool's own table."""
    if type_ == "schema":
        return name in model_schemas()
    if type_ == "table":
        return name != "db_manage_metadata"  # the tool's own table, never the models'
    return True


def process_revision_directives(context, revision, directives):
    """Write no file when autogenerate found nothing; create and drop the new schemas a revision uses."""
    script = directives[0]
    if getattr(context.config.cmd_opts, "autogenerate", False) and script.upgrade_ops.is_empty():
        directives[:] = []
        log.info(f"No changes in schema detected; no migration written (model modules loaded: {model_modules()}).")
        return
    add_schema_operations(context.connection, script)
    for warning in rename_warnings(script.upgrade_ops) + safe_forms.enum_warnings(script.upgrade_ops):
        click.echo(f"Warning: {warning}", err=True)
    if getattr(context.config.cmd_opts, "autogenerate", False):
        directives[:] = safe_forms.rewrite(script, context.dialect)


LISTED_MODULES = 8  # beyond this many model modules, the no-change message gives a count and their package


def model_modules():
    """Return the modules that define the application's mapped models: listed when few, else counted."""
    registry = getattr(getattr(database(), "Model", None), "registry", None)
    modules = sorted({mapper.class_.__module__ for mapper in registry.mappers}) if registry else []
    if len(modules) <= LISTED_MODULES:
        return ", ".join(modules) or "none"
    package = os.path.commonprefix([m.split(".") for m in modules])
    return f"{len(modules)} modules" + (f" under {'.'.join(package)}" if package else "")


def rename_warnings(upgrade_ops):
    """Return a sentence for each drop + add of the same shape: autogenerate cannot tell it from a rename."""
    warnings = []
    for table_ops in (op for op in upgrade_ops.ops if isinstance(op, ops.ModifyTableOps)):
        drops = [op for op in table_ops.ops if isinstance(op, ops.DropColumnOp)]
        adds = [op for op in table_ops.ops if isinstance(op, ops.AddColumnOp)]
        schema = f", schema={table_ops.schema!r}" if table_ops.schema else ""
        for drop in drops:
            for add in (a for a in adds if type_name(a.column.type) == type_name(drop.to_column().type)):
                warnings.append(
                    f"table {table_ops.table_name!r}: column {drop.column_name!r} is dropped and {add.column.name!r} "
                    f"added with the same type ({type_name(add.column.type)}). If it is a rename, replace both in "
                    f"the revision with op.alter_column({table_ops.table_name!r}, {drop.column_name!r}, "
                    f"new_column_name={add.column.name!r}{schema}) (and the reverse in downgrade) to keep its data.")
    dropped = [op for op in upgrade_ops.ops if isinstance(op, ops.DropTableOp)]
    created = [op for op in upgrade_ops.ops if isinstance(op, ops.CreateTableOp)]
    for drop in dropped:
        for create in (c for c in created if shape(c.to_table()) == shape(drop.to_table())):
            schema = f", schema={drop.schema!r}" if drop.schema else ""
            warnings.append(
                f"table {drop.table_name!r} is dropped and {create.table_name!r} created with the same columns. "
                f"If it is a rename, replace both with op.rename_table({drop.table_name!r}, {create.table_name!r}"
                f"{schema}) (and the reverse in downgrade) to keep its rows.")
    return warnings


def type_name(sql_type):
    """Return the PostgreSQL spelling of a column type."""
    return sql_type.compile(dialect=postgresql.dialect())


def shape(table):
    """Return a table's columns as {(name, type)}."""
    return {(column.name, type_name(column.type)) for column in table.columns}


def add_schema_operations(connection, script):
    """Put CREATE SCHEMA first in the upgrade and DROP SCHEMA last in the downgrade, for new schemas."""
    if connection is None:
        return
    existing = set(inspect(connection).get_schema_names())
    used = {getattr(op, "schema", None) for op in script.upgrade_ops.ops}
    quote = connection.dialect.identifier_preparer.quote_schema
    new = sorted(s for s in used if s and s not in existing)
    script.upgrade_ops.ops[:0] = [ops.ExecuteSQLOp(f"CREATE SCHEMA IF NOT EXISTS {quote(s)}") for s in new]
    script.downgrade_ops.ops.extend(ops.ExecuteSQLOp(f"DROP SCHEMA IF EXISTS {quote(s)}") for s in new)
