"""`check`: do the models, the migrations and the database agree? (for CI)"""
import click
from sqlalchemy import DefaultClause
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from .application import engine, metadata, migrate_extension
from .status import reading
from .errors import Failure, with_invocation
from .migration_hooks import configure_args, script_directory
from .revisions import current_heads, ensure_known

# The settings of context.configure() that decide what autogenerate compares (the application's included).
COMPARE_OPTIONS = ("include_schemas", "include_name", "include_object", "compare_type", "compare_server_default",
                   "version_table", "version_table_schema")


def check():
    """Print every difference in words and raise Failure if there is any; say so when all agree."""
    problems = revision_problems() + [describe(diff) for diff in model_differences()]
    engine().dispose()
    for problem in problems:
        click.echo(f"- {with_invocation(problem)}")
    if problems:
        raise Failure(f"{len(problems)} difference(s) between the models, the migrations and the database.")
    click.echo("The models, the migrations and the database agree.")


def revision_problems():
    """Return sentences for a database not at the single head of the migrations."""
    script = script_directory()
    heads = list(script.get_heads())
    with engine().connect() as connection, reading():
        current = current_heads(connection)
    ensure_known(script, current)
    problems = []
    if len(heads) > 1:
        problems.append(f"the migrations have {len(heads)} heads ({', '.join(heads)}): join them with "
                        "`python db_manage.py merge -m \"Merge branches\"`, then `python db_manage.py upgrade`")
    if sorted(current) != sorted(heads):
        advice = " (run `python db_manage.py upgrade`)" if len(heads) == 1 else ""
        problems.append(f"the database is behind: at {', '.join(current) or 'base'}, head is {', '.join(heads)}"
                        f"{advice}")
    return problems


def model_differences():
    """Return Alembic's differences between the models and the database, with the project's compare settings."""
    args = configure_args(migrate_extension().configure_args)
    with engine().connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"target_metadata": metadata(), **{k: args[k] for k in COMPARE_OPTIONS if k in args}})
        return flatten(compare_metadata(context, metadata()))


def flatten(diffs):
    """Return the diffs with Alembic's grouped column modifications unpacked."""
    return [item for diff in diffs for item in (diff if isinstance(diff, list) else [diff])]


def describe(diff):
    """Return one Alembic difference as a sentence."""
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        where = "in the models, not in the database" if kind == "add_table" else "in the database, not in the models"
        return f"table {_qualified(diff[1].schema, diff[1].name)} is {where}"
    if kind in ("add_column", "remove_column"):
        _, schema, table, column = diff
        where = "in the models, not in the database" if kind == "add_column" else "in the database, not in the models"
        return f"column {_qualified(schema, table)}.{column.name} is {where}"
    if kind.startswith("modify_"):
        _, schema, table, column, _, existing, new = diff
        what = {"modify_type": "type", "modify_nullable": "nullability", "modify_default": "server default",
                "modify_comment": "comment"}.get(kind, kind)
        return (f"column {_qualified(schema, table)}.{column}: {what} is {sql_words(existing, kind)} in the database, "
                f"{sql_words(new, kind)} in the models")
    if kind in ("create_enum", "drop_enum"):  # alembic-postgresql-enum's
        where = "in the models, not in the database" if kind == "create_enum" else "in the database, not in the models"
        return f"enum type {_qualified(diff[2], diff[1])} is {where}"
    if kind in ("change_enum_variants", "add_enum_value"):
        _, old, new, columns = diff
        used = ", ".join(f"{_qualified(getattr(c, 'table_schema', None) or None, c.table_name)}.{c.column_name}"
                         for c in columns) or "no column"
        return f"enum values of {used}: {', '.join(old)} in the database, {', '.join(new)} in the models"
    obj = diff[1]
    where = "in the models, not in the database" if kind.startswith("add") else "in the database, not in the models"
    label = {"index": "index", "constraint": "constraint", "fk": "foreign key"}.get(kind.split("_", 1)[-1])
    if label is None:  # a comparison added by a plug-in: its own words
        return f"{kind.replace('_', ' ')}: {', '.join(map(str, diff[1:]))}"
    table = getattr(getattr(obj, "table", None), "name", None) or getattr(getattr(obj, "parent", None), "name", "?")
    name = obj.name or f"(unnamed, on {', '.join(c.name for c in getattr(obj, 'columns', [])) or 'an expression'})"
    return f"{label} {name} on {table} is {where}"


def sql_words(value, kind):
    """Return a column's type, nullability or server default as SQL words (never a Python repr)."""
    if kind == "modify_nullable":
        return "NULL allowed" if value else "NOT NULL"
    if value is None:
        return "none"
    if isinstance(value, TypeEngine):
        return value.compile(dialect=postgresql.dialect())
    if isinstance(value, DefaultClause):  # the models' side: a string there is a literal
        value = value.arg
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
    if isinstance(value, ClauseElement):
        return str(value.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return str(value)


def _qualified(schema, name):
    """Return schema.name, or name in the default schema."""
    return f"{schema}.{name}" if schema else name
