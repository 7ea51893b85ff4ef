"""`migrate` writes the zero-downtime form of what would stop a live table's writers.

Alembic's autogenerate writes the plain forms: an index build, a foreign key or a unique
constraint that locks writes out for a scan or a build, and SET NOT NULL, which scans under an
exclusive lock. For tables that exist before the revision (a table it creates keeps the plain
form: nobody writes to it yet), the revision gets instead, each with a one-line comment:

- an index built CONCURRENTLY in an autocommit_block, after dropping any invalid one a failed
  build left; dropped CONCURRENTLY too;
- a foreign key added NOT VALID (a brief lock, no scan), then validated after a commit (a scan
  that blocks no writes);
- NOT NULL proven by a CHECK (...) IS NOT NULL added NOT VALID and validated after a commit,
  then SET NOT NULL (which PostgreSQL 12+ runs without a scan when such a check exists), then
  the check dropped;
- a unique constraint built as a unique index CONCURRENTLY, then attached with ADD CONSTRAINT
  ... UNIQUE USING INDEX.

`migrate --plain` (DB_MANAGE_PLAIN=1 in the child) keeps Alembic's own forms.
"""
import os
import re
import textwrap

import alembic
from alembic import util
from alembic.autogenerate import renderers
from alembic.autogenerate.render import render_op
from alembic.operations import ops

# Alembic writes drop_index(..., if_exists=True) from 1.13.3 on (the oldest supported release is 1.12).
RENDERS_IF_EXISTS = tuple(int(part) for part in alembic.__version__.split(".")[:3] if part.isdigit()) >= (1, 13, 3)

PLAIN_VARIABLE = "DB_MANAGE_PLAIN"
NAME_LIMIT = 63  # PostgreSQL truncates longer identifiers
LEFTOVER = "# lint: ignore[ban-drop-constraint] (only what an interrupted run of this revision left)"


class SafeForm(ops.MigrateOperation):
    """An operation written in its safe form: lines built at render time from the original operation."""

    def __init__(self, original, table, build):
        self.original, self.table, self.build = original, table, build

    def reverse(self):
        return self.original.reverse()

    def to_diff_tuple(self):
        return self.original.to_diff_tuple()


@renderers.dispatch_for(SafeForm)
def _render_safe_form(autogen_context, op):
    return op.build(autogen_context)


def rewrite(script, dialect):
    """Return the scripts to write for script: its constructive operations on existing tables move to a second
    revision in their safe forms (or stay in it, when nothing else is there); --plain keeps it as it is.

    The second revision holds only steps that can run again after an interruption (an autocommit_block commits
    what precedes it, before the revision is recorded): the first stays one transaction, all or nothing.
    """
    if os.environ.get(PLAIN_VARIABLE) == "1":
        return [script]
    quote, upgrade = Quoting(dialect), script.upgrade_ops
    upgrade.ops[:] = [form for op in upgrade.ops for form in placed_enum_values(op, quote)]
    upgrade.ops[:] = [said_enum_rewrite(op) for op in upgrade.ops]
    fresh = {(op.schema, op.table_name) for op in upgrade.ops if isinstance(op, (ops.CreateTableOp, ops.DropTableOp))}
    moved = take_safe(upgrade, fresh, quote)
    if not moved:
        return [script]
    for op in moved:  # their reverses leave the first revision's downgrade: the second's undoes them first
        remove_reverse(script.downgrade_ops, op)
    steps_up = ops.UpgradeOps(ops=moved)
    steps_down = ops.DowngradeOps(ops=[concurrent_drop(op.reverse(), quote) for op in reversed(moved)])
    if not list(walk(upgrade)):  # nothing else: one revision, of steps only
        script.upgrade_ops, script.downgrade_ops = steps_up, steps_down
        return [script]
    tables = ", ".join(dict.fromkeys(op.table for op in moved))
    steps = ops.MigrationScript(rev_id=util.rev_id(), upgrade_ops=steps_up, downgrade_ops=steps_down,
                                message=f"{script.message} (steps that keep {tables} writable)", imports=script.imports,
                                head=script.rev_id, version_path=script.version_path)
    return [script, steps]


def take_safe(container, fresh, quote):
    """Remove from container (and its table containers) each operation that has a safe form; return them so."""
    taken, kept = [], []
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps):
            if (op.schema, op.table_name) not in fresh:
                taken += take_safe(op, fresh, quote)
            if op.ops:
                kept.append(op)
            continue
        table = (getattr(op, "schema", None), getattr(op, "table_name", None) or getattr(op, "source_table", None))
        safe = None if table in fresh else safe_form(op, quote)
        (taken if safe else kept).append(safe or op)
    container.ops[:] = kept
    return taken


def safe_form(op, quote):
    """Return op's SafeForm, or None when it has none (or is safe already)."""
    if isinstance(op, ops.CreateIndexOp) and op.index_name and not op.kw.get("postgresql_concurrently"):
        return SafeForm(op, op.table_name, lambda ctx: build_index(ctx, op))
    if isinstance(op, ops.CreateForeignKeyOp) and not op.kw.get("postgresql_not_valid"):
        op.constraint_name = op.constraint_name or default_name(op.source_table, op.local_cols, "fkey")
        return SafeForm(op, op.source_table, lambda ctx: foreign_key(ctx, op, quote))
    if isinstance(op, ops.CreateUniqueConstraintOp):
        op.constraint_name = op.constraint_name or default_name(op.table_name, op.columns, "key")
        return SafeForm(op, op.table_name, lambda ctx: unique_constraint(ctx, op, quote))
    if isinstance(op, ops.AlterColumnOp) and op.modify_nullable is False and only_nullable(op):
        return SafeForm(op, op.table_name, lambda ctx: not_null(ctx, op, quote))
    return None


def placed_enum_values(op, quote):
    """Return op, or for alembic-postgresql-enum's add_enum_value the ALTER TYPE ... ADD VALUE statements that
    name each value's place (BEFORE or AFTER a neighbour, as the model orders them), which lint accepts."""
    if getattr(op, "operation_name", None) != "add_enum_value" or not op.old_values:
        return [op]
    placed, enum = [], quote.table(op.schema, op.name)
    for index, value in enumerate(op.new_values):
        if value in op.old_values:
            continue
        where = (f"AFTER {literal(op.new_values[index - 1])}" if index else f"BEFORE {literal(op.old_values[0])}")
        placed.append(ops.ExecuteSQLOp(f"ALTER TYPE {enum} ADD VALUE {literal(value)} {where}"))
    return placed


def said_enum_rewrite(op):
    """Return op, or for alembic-postgresql-enum's sync_enum_values (a value removed, renamed or moved) the same
    call below a comment saying what it costs, which lint then accepts: PostgreSQL has no lighter form."""
    if getattr(op, "operation_name", None) != "change_enum_variants":
        return op
    lines = comment(f"{enum_rewrite_cost(op)} PostgreSQL cannot remove or move an enum value in place.")
    return SafeForm(op, None, lambda ctx: [*lines, "# lint: ignore (the cost is said above)", *render_op(ctx, op), ""])


def enum_rewrite_cost(op):
    """Return a sentence saying what recreating op's enum type does to the tables that use it."""
    used = ", ".join(dict.fromkeys(f"{c.table_name}.{c.column_name}" for c in op.affected_columns)) or "no column"
    return (f"This recreates the enum type {op.name} and converts {used} to it: each table is rewritten under an "
            "ACCESS EXCLUSIVE lock, which blocks its reads and writes meanwhile.")


def enum_warnings(upgrade_ops):
    """Return a sentence for each enum type a revision recreates (a value removed, renamed or moved)."""
    return [f"{enum_rewrite_cost(op)} On a large live table, run it when the table is quiet."
            for op in upgrade_ops.ops if getattr(op, "operation_name", None) == "change_enum_variants"]


def literal(value):
    """Return value as an SQL string literal, its colons kept from being read as bind parameters by text()."""
    return "'" + re.sub(r":(?=\w)", r"\\:", value.replace("'", "''")) + "'"


def concurrent_drop(op, quote):
    """Return the reverse op, an index drop made concurrent."""
    if isinstance(op, ops.DropIndexOp):
        return SafeForm(op, op.table_name, lambda ctx: drop_index(ctx, op))
    return op


def remove_reverse(container, safe):
    """Remove from container the operation that undoes safe's original (Alembic wrote it with the rest)."""
    original = safe.original
    for op in list(container.ops):
        if isinstance(op, ops.ModifyTableOps):
            remove_reverse(op, safe)
            if not op.ops:
                container.ops.remove(op)
        elif undoes(op, original):
            container.ops.remove(op)
            return


def undoes(op, original):
    """Return True when op is the reverse Alembic wrote for original."""
    if isinstance(original, ops.CreateIndexOp):
        return isinstance(op, ops.DropIndexOp) and op.index_name == original.index_name
    if isinstance(original, (ops.CreateForeignKeyOp, ops.CreateUniqueConstraintOp)):
        kind = "foreignkey" if isinstance(original, ops.CreateForeignKeyOp) else "unique"
        table = getattr(original, "source_table", None) or original.table_name
        return isinstance(op, ops.DropConstraintOp) and op.constraint_type == kind and op.table_name == table \
            and op.constraint_name in (original.constraint_name, None)
    if isinstance(original, ops.AlterColumnOp):
        return isinstance(op, ops.AlterColumnOp) and op.table_name == original.table_name and \
            op.column_name == original.column_name and op.modify_nullable is True
    return False


def only_nullable(op):
    """Return True when the alter_column changes nullability alone (other changes keep the plain form)."""
    return (op.modify_type is None and op.modify_server_default is False and op.modify_name is None
            and op.modify_comment is False)


def walk(container):
    """Yield the operations of container, those of its table containers included."""
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps):
            yield from walk(op)
        else:
            yield op


def comment(text):
    """Return text as comment lines of a revision, wrapped at 100 characters."""
    return [f"# {line}" for line in textwrap.wrap(text, 98)]


def default_name(table, columns, suffix):
    """Return PostgreSQL's own name for an unnamed constraint: table_col1_col2_suffix (63 characters at most)."""
    name = "_".join([table, *[str(c) for c in columns], suffix])
    return name[:NAME_LIMIT]


class Quoting:
    """Quotes identifiers for the SQL a revision executes as text, as the dialect does."""

    def __init__(self, dialect):
        self.preparer = dialect.identifier_preparer

    def table(self, schema, name):
        """Return the quoted, schema-qualified table name."""
        quoted = self.preparer.quote(name)
        return f"{self.preparer.quote_schema(schema)}.{quoted}" if schema else quoted

    def name(self, name):
        """Return a quoted identifier."""
        return self.preparer.quote(name)


def concurrent_build(ctx, name, table, columns, schema, unique, kw):
    """Return the lines of an autocommit_block that drops an invalid leftover, then builds the index concurrently."""
    leftover = ops.DropIndexOp(name, table_name=table, schema=schema, if_exists=True, postgresql_concurrently=True)
    if not RENDERS_IF_EXISTS:  # Alembic before 1.13.3 leaves if_exists out of what it writes
        quote = Quoting(ctx.dialect)
        leftover = ops.ExecuteSQLOp(f"DROP INDEX CONCURRENTLY IF EXISTS {quote.table(schema, name)}")
    build = ops.CreateIndexOp(name, table, columns, schema=schema, unique=unique,
                              **{**kw, "postgresql_concurrently": True})
    return ["with op.get_context().autocommit_block():", *render_op(ctx, leftover), *render_op(ctx, build), ""]


def build_index(ctx, op):
    """An index on an existing table, built without blocking its writes."""
    return [*comment(f"Built CONCURRENTLY, so that writes to {op.table_name} go on during the build (a plain CREATE "
                     "INDEX blocks them); an invalid index left by a failed build is dropped first."),
            *concurrent_build(ctx, op.index_name, op.table_name, op.columns, op.schema, op.unique, op.kw)]


def drop_index(ctx, op):
    """An index of an existing table, dropped without blocking its reads and writes."""
    dropped = ops.DropIndexOp(op.index_name, table_name=op.table_name, schema=op.schema,
                              **{**op.kw, "postgresql_concurrently": True})
    return [*comment(f"Dropped CONCURRENTLY, so that queries on {op.table_name} are not blocked meanwhile."),
            "with op.get_context().autocommit_block():", *render_op(ctx, dropped), ""]


def foreign_key(ctx, op, quote):
    """A foreign key on an existing table: added NOT VALID (no scan under lock), validated after a commit."""
    added = ops.CreateForeignKeyOp(op.constraint_name, op.source_table, op.referent_table, op.local_cols,
                                   op.remote_cols, **{**op.kw, "postgresql_not_valid": True})
    table, name = quote.table(op.kw.get("source_schema"), op.source_table), quote.name(op.constraint_name)
    return [*comment(f"Added NOT VALID (a brief lock, no scan), then validated after a commit: the scan of "
                     f"{op.source_table} then blocks no writes to it or to {op.referent_table}."),
            LEFTOVER,
            f"op.execute({f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}'!r})",
            *not_valid(render_op(ctx, added)),
            "with op.get_context().autocommit_block():",
            f"op.execute({f'ALTER TABLE {table} VALIDATE CONSTRAINT {name}'!r})", ""]


def not_valid(lines):
    """Return the rendered create_foreign_key lines with postgresql_not_valid=True, which Alembic before 1.16.2
    leaves out of what it writes."""
    if any("postgresql_not_valid=True" in line for line in lines):
        return lines
    *before, last = lines
    return [*before, last[:last.rindex(")")] + ", postgresql_not_valid=True" + last[last.rindex(")"):]]


def unique_constraint(ctx, op, quote):
    """A unique constraint on an existing table: its index built concurrently, then attached as the constraint."""
    attach = (f"ALTER TABLE {quote.table(op.schema, op.table_name)} ADD CONSTRAINT {quote.name(op.constraint_name)} "
              f"UNIQUE USING INDEX {quote.name(op.constraint_name)}")
    return [*comment(f"Its unique index built CONCURRENTLY (writes to {op.table_name} go on), then made the "
                     "constraint in a moment."),
            *concurrent_build(ctx, op.constraint_name, op.table_name, list(op.columns), op.schema, True, {}),
            f"op.execute({attach!r})"]


def not_null(ctx, op, quote):
    """NOT NULL on an existing column, proven by a validated CHECK so that SET NOT NULL needs no scan."""
    check = default_name(op.table_name, [op.column_name], "not_null")
    table = quote.table(op.schema, op.table_name)
    condition = f"{quote.name(op.column_name)} IS NOT NULL"
    schema = f", schema={op.schema!r}" if op.schema else ""
    return [*comment(f"SET NOT NULL alone scans {op.table_name} under a lock that blocks every write: a CHECK "
                     "added NOT VALID and validated after a commit proves it first, so PostgreSQL 12+ sets it "
                     "without a scan."),
            LEFTOVER,
            f"op.execute({f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {quote.name(check)}'!r})",
            f"op.create_check_constraint({check!r}, {op.table_name!r}, {condition!r}{schema}, "
            "postgresql_not_valid=True)",
            "with op.get_context().autocommit_block():",
            f"op.execute({f'ALTER TABLE {table} VALIDATE CONSTRAINT {quote.name(check)}'!r})", "",
            *render_op(ctx, op),
            "# lint: ignore[ban-drop-constraint] (the check has done its work: the column is NOT NULL)",
            f"op.drop_constraint({check!r}, {op.table_name!r}{schema}, type_='check')"]
