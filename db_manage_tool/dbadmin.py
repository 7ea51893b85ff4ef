"""Database administration on the server: create, clone and drop databases, read the revision."""
from contextlib import contextmanager

from psycopg2 import errors, sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from .errors import Failure


MAINTENANCE_DATABASES = ("postgres", "template1")  # where to connect to create the one that is missing


@contextmanager
def server_connection(url, target_first=False):
    """Yield an autocommit psycopg2 connection to url's server: to url's own database when target_first and it
    exists (a pooler may list no other), else to its maintenance database (postgres, else template1)."""
    names = ([make_url(url).database] if target_first else []) + list(MAINTENANCE_DATABASES)
    for number, name in enumerate(names):
        engine = create_engine(make_url(url).set(database=name), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            connection = engine.connect()
        except OperationalError as exc:
            engine.dispose()
            if number == len(names) - 1 or not database_missing(exc):
                raise
            continue
        try:
            yield connection.connection.dbapi_connection
        finally:
            connection.close()
            engine.dispose()
        return


def database_missing(exc):
    """Return True when a connection failed because its database does not exist (on the server or the pooler)."""
    message = str(getattr(exc, "orig", exc))
    return "does not exist" in message and "database" in message or "no such database" in message


def database_exists(url):
    """Return True when the database named in url exists on its server."""
    with server_connection(url, target_first=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (make_url(url).database,))
        return cur.fetchone() is not None


def create_database(url, template=None):
    """Create the database named in url (from template if given); return False if it already existed."""
    name = make_url(url).database
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with server_connection(url, target_first=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone():
            return False
        try:
            cur.execute(statement)
        except (errors.DuplicateDatabase, errors.UniqueViolation):  # created meanwhile by another process
            return False
        except errors.InsufficientPrivilege:
            cur.execute("SELECT current_user")
            role = cur.fetchone()[0]
            wanted = sql.SQL("CREATE DATABASE {} OWNER {};").format(sql.Identifier(name), sql.Identifier(role))
            raise Failure(f"The database {name!r} does not exist and the role {role!r} may not create databases: "
                          f"ask an administrator to run `{wanted.as_string(conn)}`, then run setup again.") from None
        return True


def drop_database(url):
    """Drop the database named in url if it exists, closing its other connections first."""
    name = make_url(url).database
    with server_connection(url) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))



CLIENT_CHECK_MS = 1000  # client_connection_check_interval (PostgreSQL 14+)


def end_with_client(connection, local=True):
    """Make the server end this session's statement within a second of its client dying (PostgreSQL 14+).

    Without it, a killed command's statement (a long ALTER, a lock wait) runs on, holding its locks, until
    it finishes. Set for the transaction (local) or the session.
    """
    if connection.dialect.server_version_info >= (14,):
        connection.execute(text("SELECT set_config('client_connection_check_interval', :ms, :local)"),
                           {"ms": str(CLIENT_CHECK_MS), "local": local})


def execute_composed(connection, statement):
    """Run a psycopg2 sql.Composed statement (identifiers quoted by psycopg2) on a SQLAlchemy connection."""
    return connection.exec_driver_sql(statement.as_string(connection.connection.dbapi_connection))


# The application's tables (never system ones, nor the tools' alembic_version and db_manage_metadata), optionally one schema or name:
# oid, schema, name, size in bytes, and an estimate of its rows: the statistics' live-row counter,
# else the planner's reltuples, else -1 (no statistics yet).
APPLICATION_TABLES = text("""
    SELECT c.oid, n.nspname, c.relname, pg_relation_size(c.oid),
           COALESCE(NULLIF(pg_stat_get_live_tuples(c.oid), 0), c.reltuples)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      AND (CAST(:schema AS text) IS NULL OR n.nspname = :schema)
      AND (CAST(:name AS text) IS NULL OR c.relname = :name)
      AND NOT (n.nspname = 'public' AND c.relname IN ('alembic_version', 'db_manage_metadata'))
    ORDER BY 2, 3""")


def application_tables(connection, schema=None, name=None):
    """Return (oid, schema, name, bytes, estimated rows) for the application's tables, filtered if asked."""
    return connection.execute(APPLICATION_TABLES, {"schema": schema, "name": name}).all()
