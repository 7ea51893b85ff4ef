"""The API of an application's seed file: rows added idempotently by natural key, and rows streamed through COPY.

    from db_manage_tool.seeding import add_all, ref

    def seed(connection):
        return add_all(connection, {User: [{"username": "ada", "email": "ada@example.com"}],
                                    Post: [{"slug": "hello", "title": "Hello", "author_id": ref(User, username="ada")}]})

A row is added only when its natural key (a unique constraint or the primary key whose columns
the row gives, else all the columns it gives) is not in the table yet; existing rows are never
changed unless update=True. Tables are filled parents first. `seed` runs it all in one transaction.
"""
import sys
import time
import uuid
from itertools import groupby

import click
import psycopg2
import sqlalchemy as sa
from psycopg2 import sql
from sqlalchemy.dialects.postgresql import insert

from .errors import Failure, first_line

BATCH = 1000  # rows per INSERT statement
CHUNK_BYTES = 1 << 15  # what COPY asks for at a time


class ref:  # noqa: N801 - reads as a value in a row: {"author_id": ref(User, username="ada")}
    """A row of another table found by its natural key; as a value it stands for the key the column refers to."""

    def __init__(self, model, **where):
        if not where:
            raise Failure(f"ref({getattr(model, '__name__', model)}) needs the columns that find the row, "
                          "e.g. ref(User, username='ada').")
        self.table, self.where = table_of(model), where

    def __repr__(self):
        return f"ref({self.table.fullname}, {', '.join(f'{k}={v!r}' for k, v in self.where.items())})"

    def resolve(self, connection, column):
        """Return the value column takes to refer to this row; raise Failure when the row is missing."""
        target = referred_column(column, self.table)
        condition = sa.and_(*[column_named(self.table, None, name) == value for name, value in self.where.items()])
        found = connection.execute(sa.select(target).where(condition).limit(2)).scalars().all()
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise Failure(f"{column.table.fullname}.{column.name} refers to {self!r}, but {self.table.fullname} has "
                          f"{what} such row: add it first (parents before children), or find it by a unique column.")
        return found[0]


def table_of(model):
    """Return the Table of a model class or a Table."""
    table = model if isinstance(model, sa.Table) else getattr(model, "__table__", None)
    if not isinstance(table, sa.Table):
        raise Failure(f"{model!r} is neither a model nor a table.")
    return table


def referred_column(column, parent):
    """Return the column of parent that column refers to (its foreign key), else parent's primary key."""
    for fk in column.foreign_keys:
        if fk.column.table is parent:
            return fk.column
    keys = list(parent.primary_key.columns)
    if len(keys) != 1:
        raise Failure(f"{column.table.fullname}.{column.name} has no foreign key to {parent.fullname}, whose primary "
                      "key is not one column: give the value itself.")
    return keys[0]


def column_named(table, model, name):
    """Return the column of table that name (a column name, or the model's attribute) means."""
    if name in table.c:
        return table.c[name]
    mapper = sa.inspect(model, raiseerr=False) if model is not None and not isinstance(model, sa.Table) else None
    if mapper is not None and name in mapper.columns and mapper.columns[name].table is table:
        return mapper.columns[name]
    raise Failure(f"{table.fullname} has no column {name!r}: use one of {', '.join(c.name for c in table.columns)}.")


def unique_keys(table):
    """Return the column-name sets that identify a row: unique constraints and indexes first, the primary key last."""
    keys = [[c.name for c in constraint.columns] for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)]
    keys += [[c.name for c in index.columns] for index in table.indexes
             if index.unique and index.dialect_options["postgresql"].get("where") is None and len(index.columns)
             and all(isinstance(e, sa.Column) for e in index.expressions)]
    keys += [[c.name] for c in table.columns if c.unique]
    position = {c.name: i for i, c in enumerate(table.columns)}
    keys = sorted({tuple(k) for k in keys if k}, key=lambda k: (len(k), [position[n] for n in k]))
    primary = [c.name for c in table.primary_key.columns]
    return [list(k) for k in keys] + ([primary] if primary else [])


def natural_key(table, given, key=None):
    """Return (columns, True) for the unique key the given columns fill, else (the key or given columns, False)."""
    keys = unique_keys(table)
    if key is not None:
        key = [column_named(table, None, name).name for name in key]
        return key, sorted(key) in [sorted(k) for k in keys]
    for candidate in keys:
        if set(candidate) <= set(given):
            return candidate, True
    return list(given), False


def prepared(connection, table, model, row, cache):
    """Return row with column names as keys and every ref (or FK dict) replaced by the value it stands for."""
    values = {}
    for name, value in row.items():
        column = column_named(table, model, name)
        if isinstance(value, dict) and column.foreign_keys and not isinstance(column.type, sa.JSON):
            value = ref(next(iter(column.foreign_keys)).column.table, **value)
        if isinstance(value, str) and isinstance(column.type, sa.Uuid) and column.type.as_uuid:
            value = uuid_value(table, column, value)
        if isinstance(value, ref):
            cache_key = (value.table, tuple(sorted(value.where.items(), key=str)), column.name)
            if cache_key not in cache:
                cache[cache_key] = value.resolve(connection, column)
            value = cache[cache_key]
        values[column.name] = value
    return values


def uuid_value(table, column, text):
    """Return text as a UUID for column, or raise Failure saying which value is not one."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Failure(f"{table.fullname}.{column.name} takes a UUID, not {text!r}.") from None


def add(connection, model, rows, key=None, update=False):
    """Insert the rows whose natural key is not in the table yet; return how many were added."""
    table, cache, added = table_of(model), {}, 0
    rows = [prepared(connection, table, model, row, cache) for row in rows]
    for given, group in groupby(sorted(rows, key=lambda r: sorted(r)), key=lambda r: tuple(sorted(r))):
        group = list(group)
        columns, backed = natural_key(table, given, key)
        refuse_repeated_keys(table, group, columns)
        if update and not backed:
            raise Failure(f"add(..., update=True) needs a unique key of {table.fullname} among the columns given "
                          f"({', '.join(given)}).")
        for first in range(0, len(group), BATCH):
            batch = group[first:first + BATCH]
            if backed:
                statement = insert(table).values(batch)
                others = [name for name in given if name not in columns]
                if update and others:
                    statement = statement.on_conflict_do_update(
                        index_elements=columns, set_={name: statement.excluded[name] for name in others})
                else:  # a row whose key exists is kept; a clash on another unique key is an error
                    statement = statement.on_conflict_do_nothing(index_elements=columns)
                added += execute(connection, statement, table)
            else:
                added += sum(insert_if_missing(connection, table, row, columns) for row in batch)
    sync_sequences(connection, table, {name for row in rows for name in row})
    return added


def refuse_repeated_keys(table, rows, key):
    """Raise Failure when two of the rows given share their natural key (the second would be dropped unseen)."""
    seen = set()
    for row in rows:
        values = tuple(repr(row.get(name)) for name in key)
        if values in seen:
            shown = ", ".join(f"{name}={row.get(name)!r}" for name in key)
            raise Failure(f"Two rows given for {table.fullname} have the same {', '.join(key)} ({shown}): keep one, "
                          "or give them different values. Nothing was changed.")
        seen.add(values)


def execute(connection, statement, table):
    """Run an insert of seed rows; return its row count, or raise Failure naming a clash with an existing row."""
    try:
        return connection.execute(statement).rowcount
    except sa.exc.IntegrityError as exc:
        raise Failure(f"{refused_row(table, exc.orig)} Nothing was changed.") from None


def refused_row(table, error):
    """Return what an integrity error says of a seed row, by its SQLSTATE: a clash, a missing value or parent."""
    diag = error.diag
    detail = (diag.message_detail or first_line(str(error))).rstrip(".")
    if error.pgcode == "23502":  # not_null_violation
        return f"{table.fullname}.{diag.column_name} may not be NULL, and a row gives it none: give it a value."
    if error.pgcode == "23503":  # foreign_key_violation
        return (f"A row for {table.fullname} refers to a row that does not exist ({detail}): add that row first, or "
                "refer to one that exists.")
    if error.pgcode == "23514":  # check_violation
        return f"A row for {table.fullname} breaks the check {diag.constraint_name} ({detail}): change its values."
    return f"A row for {table.fullname} clashes with an existing one on {diag.constraint_name} ({detail}): " \
           "change one of them."


def insert_if_missing(connection, table, row, key):
    """Insert row unless a row with the same key values (NULLs equal) exists; return 1 if inserted, else 0."""
    names = list(row)
    literal = {name: sa.literal(row[name], type_=table.c[name].type) for name in names}
    same = sa.and_(*[table.c[name].is_not_distinct_from(literal[name]) for name in key])
    source = sa.select(*[literal[name] for name in names]).where(~sa.exists().where(same))
    return connection.execute(sa.insert(table).from_select([table.c[n] for n in names], source)).rowcount


def sync_sequences(connection, table, given):
    """Move the sequences of integer key columns given explicitly past their largest value."""
    name = connection.dialect.identifier_preparer.format_table(table)
    for column in table.primary_key.columns:
        if column.name in given and isinstance(column.type, sa.Integer):
            sequence = connection.execute(sa.select(sa.func.pg_get_serial_sequence(name, column.name))).scalar()
            if sequence:
                connection.execute(sa.select(sa.func.setval(sequence, sa.select(sa.func.max(column))
                                                            .scalar_subquery())).where(
                    sa.select(sa.func.max(column)).scalar_subquery().is_not(None)))


def add_all(connection, data, update=False):
    """Add each model's rows (a {model: rows} mapping), parents before children; return {table: rows added}."""
    from .generate import ordered

    tables = {table_of(model): model for model in data}
    added = {}
    for table in ordered(tables):
        added[table] = add(connection, tables[table], data[tables[table]], update=update)
    return {table.fullname: added[table] for table in tables}  # in the order given


# ---- COPY --------------------------------------------------------------------------------------------------


def copy_chunks(connection, table, columns, chunks, bar=None):
    """Stream chunks ((COPY text, rows) pairs) into `COPY table (columns) FROM STDIN` on connection's transaction."""
    dbapi = connection.connection.dbapi_connection
    target = sql.Identifier(*([table.schema] if table.schema else []), table.name)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, columns)))
    reader = ChunkReader(chunks, bar)
    previous = sys.unraisablehook, sys.excepthook
    sys.unraisablehook = quiet_about_the_server  # a session ended mid-COPY: said once, by the error raised after
    sys.excepthook = quiet_excepthook  # what psycopg2's C code prints there goes through the excepthook
    try:
        dbapi.cursor().copy_expert(statement.as_string(dbapi), reader, size=CHUNK_BYTES)
    except SystemError as exc:  # the server went away mid-COPY: psycopg2 wraps its error in a SystemError
        if isinstance(exc.__cause__ or exc.__context__, psycopg2.Error):
            raise (exc.__cause__ or exc.__context__) from None
        raise
    except Exception:
        if reader.error is not None:  # psycopg2 reports a failed read() as "COPY from stdin failed": the cause
            raise reader.error from None
        raise
    finally:
        sys.unraisablehook, sys.excepthook = previous


def quiet_excepthook(kind, value, tb):
    """Print what Python would, but psycopg2's report of a session ended mid-COPY (raised again afterwards)."""
    if not isinstance(value, psycopg2.Error | SystemError):
        sys.__excepthook__(kind, value, tb)


def quiet_about_the_server(unraisable):
    """Pass on to Python's hook what psycopg2 could not raise during COPY, but the server's own errors."""
    if not isinstance(unraisable.exc_value, psycopg2.Error | SystemError):
        sys.__unraisablehook__(unraisable)


def add_default_rows(connection, table, count, bar=None):
    """Insert count rows made only of the columns' defaults (a table whose every column the server fills)."""
    statement = sa.insert(table)  # INSERT ... DEFAULT VALUES
    for first in range(0, count, BATCH):
        for _ in range(min(BATCH, count - first)):
            connection.execute(statement)
        if bar is not None:
            bar.update(min(BATCH, count - first))


class ChunkReader:
    """A file-like object that COPY reads: it makes the next chunk only when asked, so memory stays flat."""

    def __init__(self, chunks, bar):
        self.chunks, self.bar, self.error = chunks, bar, None

    def read(self, size):
        """Return the next chunk's bytes (b"" at the end); keep what it raised (Ctrl-C included) for copy_chunks."""
        try:
            for text, rows in self.chunks:
                if self.bar is not None:
                    self.bar.update(rows)
                return text.encode()
        except BaseException as exc:
            self.error = exc
            raise
        return b""


class Progress:
    """A progress bar with rows per second on a terminal's stderr; nothing elsewhere."""

    def __init__(self, total, label="Seeding"):
        self.total, self.label, self.done, self.bar = total, label, 0, None

    def __enter__(self):
        if sys.stderr.isatty():
            self.started = time.monotonic()
            self.bar = click.progressbar(length=self.total, label=self.label, file=sys.stderr, show_pos=True, show_percent=True,
                                         item_show_func=lambda rate: rate).__enter__()
        return self

    def update(self, rows):
        """Count rows as written."""
        self.done += rows
        if self.bar is not None:
            rate = self.done / max(time.monotonic() - self.started, 1e-6)
            self.bar.update(rows, f"{rate:,.0f} rows/s")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
