"""`reset`: drop every object of the application and migrate to head, or empty chosen tables.

The full reset runs in one transaction: the drops and the migrations to head commit
together, so a failing migration leaves the database as it was.
"""
import click
from alembic import command
from psycopg2 import sql
from sqlalchemy import text

from .adoption import environment_settings, is_tool_environment, runs_stepwise
from .application import describe_database, engine, is_protected, migrations_directory
from .dbadmin import application_tables, end_with_client, execute_composed
from .confirm import confirm
from .errors import Failure
from .migration_hooks import alembic_config
from .lock_budget import Steps, step_budget
from .migration_safety import AutocommitInTransaction, OutOfLocks
from .production_guard import recorded_environment, refuse_on_production
from .revisions import current_revision

# Objects of an extension, and sequences owned by a column, go with their owner.
NOT_OWNED = """NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = CAST('{catalog}' AS regclass)
                          AND d.objid = {oid} AND d.deptype IN ('e', 'a', 'i'))"""
SCHEMAS = text("""
    SELECT n.nspname FROM pg_namespace n
    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', 'public')
      AND NOT n.nspname = ANY (current_schemas(false))
      AND NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extnamespace = n.oid)
      AND """ + NOT_OWNED.format(catalog="pg_namespace", oid="n.oid") + """
    ORDER BY 1""")
PUBLIC_RELATIONS = text("""
    SELECT n.nspname, c.relname, c.relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE (n.nspname = 'public' OR n.nspname = ANY (current_schemas(false))) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND NOT c.relispartition
      AND """ + NOT_OWNED.format(catalog="pg_class", oid="c.oid") + """
    ORDER BY 1""")
PUBLIC_TYPES = text("""
    SELECT n.nspname, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE (n.nspname = 'public' OR n.nspname = ANY (current_schemas(false))) AND t.typtype IN ('e', 'd', 'r', 'c')
      AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
      AND """ + NOT_OWNED.format(catalog="pg_type", oid="t.oid") + """
    ORDER BY 1""")
PUBLIC_ROUTINES = text("""
    SELECT CAST(CAST(p.oid AS regprocedure) AS text), p.prokind FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE (n.nspname = 'public' OR n.nspname = ANY (current_schemas(false))) AND p.prokind IN ('f', 'p')
      AND """ + NOT_OWNED.format(catalog="pg_proc", oid="p.oid") + """
    ORDER BY 1""")
REFERENCING_CLOSURE = text("""
    WITH RECURSIVE hit(oid) AS (
        SELECT unnest(CAST(:oids AS oid[]))
        UNION
        SELECT con.conrelid FROM pg_constraint con JOIN hit ON con.confrelid = hit.oid WHERE con.contype = 'f'
    )
    SELECT n.nspname, c.relname FROM hit JOIN pg_class c ON c.oid = hit.oid
    JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2""")
# Every relation of the schemas a reset drops or empties, each its own statement (a DROP SCHEMA ... CASCADE
# of a large schema would take all their locks in one), views and foreign-key children before what they use.
EVERY_RELATION = text("""
    SELECT n.nspname, c.relname, c.relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extnamespace = n.oid)
      AND """ + NOT_OWNED.format(catalog="pg_class", oid="c.oid") + """
    ORDER BY c.relkind IN ('r', 'p', 'f'), c.oid DESC""")
TOOL_TABLES = ("alembic_version", "db_manage_metadata")
RELATION_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE",
                  "S": "SEQUENCE"}


def reset(yes=False, table=None, schema=None, seed=False):
    """Empty the table or schema if one is named, else drop everything and migrate to head; seed if asked."""
    refuse_on_production("reset the database")
    if table is not None or schema is not None:  # an empty name is an unknown one, never "everything"
        emptied = empty_tables(table, schema, yes)
        click.echo(f"Emptied {len(emptied)} table(s): {', '.join(emptied)}.", err=True)
    else:
        revision = reset_database(yes)
        click.echo(f"Reset done: the database is at revision {revision or 'base (there is no revision)'} (head).",
                   err=True)
    if seed:
        from .seed import seed_database

        seed_database()


def reset_database(yes):
    """Drop every object of the application's schemas, then migrate to head, in one transaction.

    An env.py that is not the tool's opens its own connection (it would wait forever behind the
    drops), and a revision with an autocommit_block cannot run inside a transaction: then the drops
    are committed first and the migrations run as a second step (a rerun finishes a failed one).
    """
    if not (migrations_directory() / "env.py").exists():  # the migrations could not run after the drops
        raise Failure(f"{migrations_directory()} has no env.py, so nothing could migrate the database after the "
                      "drops: run `python db_manage.py adopt` (or `setup` for a new project) first. Nothing was changed.")
    atomic = is_tool_environment(migrations_directory())
    stepwise = atomic and runs_stepwise(environment_settings(migrations_directory()))
    if stepwise:  # the history was written to commit revision by revision (try/except around statements...)
        click.echo("Note: the migrations commit revision by revision (as your env.py had them), so the drops are "
                   "committed first and the migrations run as a second step; should one fail, fix it and run "
                   "`python db_manage.py upgrade`.", err=True)
        atomic = False
    with engine().connect() as connection:
        needed, budget = drop_locks(connection), step_budget(connection)
    if atomic and needed > budget:
        click.echo(f"Note: dropping everything takes about {needed:,} locks, more than one transaction should hold "
                   f"on this server (about {budget:,}: half its lock table), so this reset is not one transaction: "
                   "the drops commit in steps, then the migrations run as `upgrade` does on an empty database (in "
                   "steps too). Should it stop midway, run reset again: it finishes the job.", err=True)
        atomic = False
    try:
        revision, mark = drop_and_migrate(yes, atomic)
    except AutocommitInTransaction as exc:  # undone; a concurrent index build needs its own transactions
        click.echo(f"Note: {exc} The reset was undone and runs again in two steps: the drops are committed "
                   "first, then the migrations run as `upgrade` does.", err=True)
        atomic = False
        revision, mark = drop_and_migrate(yes, atomic=False, confirmed=True)  # the drops listed above
    except OutOfLocks:  # undone; on an empty database the migrations can commit in steps
        click.echo("Note: the drops and the migrations together need more locks than one transaction may hold on "
                   "this server: the reset was undone and runs again in steps (the drops, then the migrations as "
                   "`upgrade` does on an empty database). Should it stop midway, run reset again.", err=True)
        atomic = False
        revision, mark = drop_and_migrate(yes, atomic=False, confirmed=True)
    else:
        if needed <= budget and not atomic and not stepwise:
            click.echo(f"Note: {migrations_directory() / 'env.py'} is not db_manage's: the drops were committed "
                       "first and the migrations ran as a second step (`python db_manage.py adopt` makes a reset "
                       "one transaction again).", err=True)
    if not atomic:
        command.upgrade(alembic_config(), "head")
        with engine().connect() as connection, connection.begin():
            keep_protected_mark(connection, mark)
            revision = current_revision(connection)
    engine().dispose()
    return revision


def drop_and_migrate(yes, atomic, confirmed=False):
    """Drop every object after confirmation (unless confirmed already), and migrate to head in the same
    transaction when atomic; return (revision or None when not atomic, the protected mark)."""
    revision = None
    with engine().connect() as connection, connection.begin():
        end_with_client(connection)  # killed midway, the drops end and roll back within a second
        mark = recorded_environment(connection)  # a protected mark survives an authorised reset
        drops, summary = drop_plan(connection)
        if not confirmed:
            confirm(f"Reset {describe_database()}: DROP everything below, then migrate to head.\n{summary}", yes)
        if atomic:
            for statement in drops:
                execute_composed(connection, statement)
            try:
                migrate_to_head(connection)
            except (AutocommitInTransaction, OutOfLocks):
                raise
            except Failure as exc:  # the drops roll back with the migrations
                raise Failure(f"{exc} The reset was undone: the database is as it was before it.") from exc
            keep_protected_mark(connection, mark)
            revision = current_revision(connection)
        else:  # committed in steps when the drops outgrow the lock budget
            steps = Steps(connection, step_budget(connection))
            try:
                drop_everything(connection)
            finally:
                steps.close()
    return revision, mark


def drop_locks(connection):
    """Return about how many locks dropping every object takes: one per relation, index, sequence and TOAST part."""
    return connection.execute(text("""
        SELECT count(*) + 2 * count(*) FILTER (WHERE c.reltoastrelid <> 0)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'""")).scalar()


def keep_protected_mark(connection, mark):
    """Write back a protected configuration's mark that the reset dropped (the migrations recorded the current one)."""
    if mark is not None and is_protected(mark) and \
            connection.execute(text("SELECT to_regclass('db_manage_metadata')")).scalar() is not None:
        connection.execute(text("UPDATE db_manage_metadata SET value = :mark WHERE key = 'environment'"),
                           {"mark": mark})


def drop_plan(connection):
    """Return the DROP statements that empty the database, and a summary of what they drop."""
    schemas = list(connection.execute(SCHEMAS).scalars())
    relations = connection.execute(PUBLIC_RELATIONS).all()
    types = connection.execute(PUBLIC_TYPES).all()
    routines = connection.execute(PUBLIC_ROUTINES).all()
    drops = [sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)) for s in schemas]
    drops += [sql.SQL(f"DROP {RELATION_KINDS[kind]} IF EXISTS {{}} CASCADE").format(sql.Identifier(schema, name))
              for schema, name, kind in relations]
    drops += [sql.SQL("DROP TYPE IF EXISTS {} CASCADE").format(sql.Identifier(schema, name)) for schema, name in types]
    # A routine's signature comes quoted by PostgreSQL itself (regprocedure).
    drops += [sql.SQL(f"DROP {'PROCEDURE' if kind == 'p' else 'FUNCTION'} IF EXISTS {signature} CASCADE")
              for signature, kind in routines]
    lines = [f"  schema {s} (dropped): {_names(table_names(connection, s))}" for s in schemas]
    kept = sorted({"public", *connection.execute(text("SELECT unnest(current_schemas(false))")).scalars()})
    for schema in kept:  # the search_path's schemas hold the tool's tables: emptied, never dropped
        names = [n for s, n, _ in relations if s == schema] + [n for s, n in types if s == schema]
        names += [r for r, _ in routines] if schema == "public" else []
        lines.append(f"  schema {schema} (emptied): {_names(names)}")
    return drops, "\n".join(lines)


def is_empty(connection):
    """Return True when the database holds nothing of the application's (the tool's own empty tables aside)."""
    relations = [name for _, name, _ in connection.execute(PUBLIC_RELATIONS) if name not in TOOL_TABLES]
    return not (relations or connection.execute(SCHEMAS).first() or connection.execute(PUBLIC_TYPES).first()
                or connection.execute(PUBLIC_ROUTINES).first())


def drop_everything(connection):
    """Drop every object a reset drops, one relation per statement (a caller may commit between them)."""
    for schema, name, kind in connection.execute(EVERY_RELATION).all():
        execute_composed(connection, sql.SQL(f"DROP {RELATION_KINDS[kind]} IF EXISTS {{}} CASCADE").format(
            sql.Identifier(schema, name)))
    for statement in drop_plan(connection)[0]:
        execute_composed(connection, statement)


def migrate_to_head(connection):
    """Run `flask db upgrade` inside the caller's transaction on connection."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def empty_tables(table, schema, yes):
    """TRUNCATE the table (or every table of the schema) and the tables whose foreign keys force it."""
    with engine().connect() as connection, connection.begin():
        targets = resolve_targets(connection, table, schema)
        chosen = {(s, t) for _, s, t in targets}
        tables = connection.execute(REFERENCING_CLOSURE, {"oids": [oid for oid, _, _ in targets]}).all()
        forced = [f"{s}.{t}" for s, t in tables if (s, t) not in chosen]
        summary = f"  {', '.join(f'{s}.{t}' for s, t in tables)}"
        if forced:
            summary += f"\n  ({', '.join(forced)}: emptied too, their foreign keys reference the tables above)"
        confirm(f"Empty these tables of {describe_database()} (structure and migrations kept):\n{summary}", yes)
        execute_composed(connection, sql.SQL("TRUNCATE TABLE {} RESTART IDENTITY").format(
            sql.SQL(", ").join(sql.Identifier(s, t) for s, t in tables)))
    engine().dispose()
    return [f"{s}.{t}" for s, t in tables]


def resolve_targets(connection, table, schema):
    """Return [(oid, schema, name)] for --table NAME (qualified or not) or --schema NAME; raise if unknown."""
    if schema is not None:
        if not connection.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first():
            raise Failure(f"Unknown schema {schema!r}: nothing was changed.")
        found = [row[:3] for row in application_tables(connection, schema)]
        if not found:
            raise Failure(f"Schema {schema!r} has no table to empty: nothing was changed.")
        return found
    schema_part, dot, name = table.rpartition(".")
    schema_part, name = unquoted(schema_part), unquoted(name)  # "Users" as SQL writes it is Users
    found = [] if dot and not (schema_part and name) else \
        [row[:3] for row in application_tables(connection, schema_part or None, name)]
    if not found:
        why = " (the migration history table is never emptied)" if name in TOOL_TABLES else ""
        raise Failure(f"Unknown table {table!r}{why}: nothing was changed.")
    if len(found) > 1:
        raise Failure(f"Table name {table!r} is ambiguous ({', '.join(f'{s}.{t}' for _, s, t in found)}): "
                      "qualify it with its schema.")
    return found


def unquoted(identifier):
    """Return an identifier written as SQL quotes it ("Users") as its name (Users)."""
    if len(identifier) >= 2 and identifier[0] == identifier[-1] == '"':
        return identifier[1:-1].replace('""', '"')
    return identifier


def table_names(connection, schema):
    """Return the names of the tables of schema."""
    return [row[2] for row in application_tables(connection, schema)]


def _names(names):
    """Return names as one readable list."""
    return ", ".join(names) if names else "(nothing)"
