"""Large loads as PostgreSQL's manual advises ("Populating a Database"), and as pg_restore does.

While a table takes more new rows than it holds, its secondary indexes, its unique constraints
that no foreign key relies on, and its own foreign keys are set aside and rebuilt after COPY,
in the same transaction: one sorted build and one validating join instead of a lookup per
row. Each is rebuilt from the definition the server gave (pg_get_indexdef,
pg_get_constraintdef), with its name and comment; a failure rolls it all back.
"""
import psycopg2.extensions
import psycopg2.extras
import sqlalchemy as sa
from psycopg2 import sql

THRESHOLD = 10_000  # fewer new rows than this are loaded as they are

INDEXES = sa.text("""
    SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid), obj_description(i.indexrelid, 'pg_class')
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE i.indrelid = CAST(:table AS regclass) AND NOT i.indisprimary AND NOT i.indisclustered
      AND NOT i.indisreplident AND i.indisvalid
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
      AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
      AND c.reltablespace = 0 AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid
                                               AND a.attstattarget >= 0)
    ORDER BY c.relname""")
CONSTRAINTS = sa.text("""
    SELECT k.conname, k.contype, pg_get_constraintdef(k.oid), obj_description(k.oid, 'pg_constraint')
    FROM pg_constraint k
    WHERE k.conrelid = CAST(:table AS regclass) AND k.conparentid = 0
      AND (k.contype = 'f' OR (k.contype = 'u' AND NOT EXISTS (
           SELECT 1 FROM pg_constraint r WHERE r.contype = 'f' AND r.conindid = k.conindid)
           AND NOT EXISTS (SELECT 1 FROM pg_class x WHERE x.oid = k.conindid AND x.reltablespace <> 0)
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = k.conindid AND a.attstattarget >= 0)))
    ORDER BY k.contype DESC, k.conname""")
PLAIN_TABLE = sa.text("""
    SELECT c.relkind = 'r' AND NOT c.relispartition AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhparent = c.oid)
    FROM pg_class c WHERE c.oid = CAST(:table AS regclass)""")


def worth_it(connection, table, new_rows):
    """Return True when setting table's indexes aside pays: many new rows, more than it holds, a plain table."""
    if new_rows < THRESHOLD:
        return False
    name = qualified(connection, table)
    if not connection.execute(PLAIN_TABLE, {"table": name}).scalar():
        return False
    return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar() <= new_rows


def qualified(connection, table):
    """Return the table's name quoted for regclass."""
    return connection.dialect.identifier_preparer.format_table(table)


class SetAside:
    """A context: the table's secondary indexes, free unique constraints and foreign keys dropped, then rebuilt."""

    def __init__(self, connection, table):
        self.connection, self.table = connection, table
        self.cursor = connection.connection.dbapi_connection.cursor()
        self.target = sql.Identifier(*([table.schema] if table.schema else []), table.name)

    def __enter__(self):
        name = qualified(self.connection, self.table)
        self.indexes = self.connection.execute(INDEXES, {"table": name}).all()
        self.constraints = self.connection.execute(CONSTRAINTS, {"table": name}).all()
        for schema, index, _, _ in self.indexes:
            self.cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, index)))
        for constraint, _, _, _ in self.constraints:
            self.cursor.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                self.target, sql.Identifier(constraint)))
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None:
            return False  # the transaction is rolled back: everything comes back as it was
        psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)  # Ctrl-C cancels a long rebuild
        try:
            self.rebuild()
        finally:
            psycopg2.extensions.set_wait_callback(None)
        return False

    def rebuild(self):
        """Add back the unique constraints, then the indexes, then the foreign keys, each with its comment."""
        uniques = [c for c in self.constraints if c[1] != "f"]
        foreign = [c for c in self.constraints if c[1] == "f"]
        for constraint, _, definition, comment in uniques:
            self.add_constraint(constraint, definition, comment)
        for schema, index, definition, comment in self.indexes:
            self.cursor.execute(definition)  # pg_get_indexdef: a whole CREATE INDEX statement
            if comment is not None:
                self.cursor.execute(sql.SQL("COMMENT ON INDEX {} IS %s").format(sql.Identifier(schema, index)),
                                    (comment,))
        for constraint, _, definition, comment in foreign:  # validated by one join over the table
            self.add_constraint(constraint, definition, comment)


    def add_constraint(self, constraint, definition, comment):
        """Add a constraint back from the server's definition of it, with its comment."""
        self.cursor.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
            self.target, sql.Identifier(constraint)) + sql.SQL(definition))  # the server's own definition
        if comment is not None:
            self.cursor.execute(sql.SQL("COMMENT ON CONSTRAINT {} ON {} IS %s").format(
                sql.Identifier(constraint), self.target), (comment,))


class Unchanged:
    """A context that sets nothing aside."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def loading(connection, table, new_rows):
    """Return the context to COPY new_rows into table in: indexes set aside when it pays."""
    return SetAside(connection, table) if worth_it(connection, table, new_rows) else Unchanged()
