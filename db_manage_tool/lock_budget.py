"""The server's lock budget: how many locks one transaction may hold, and runs that commit in steps to stay under it.

PostgreSQL keeps every lock of every transaction in one shared table sized for
max_locks_per_transaction x (max_connections + max_prepared_transactions) objects. Creating or
dropping a table takes about 14 locks (the table, its indexes, sequences, TOAST table, types
and constraints), all held to the end of the transaction: with the defaults (64 x 100) one
transaction runs out of shared memory somewhere past 500 tables, and managed servers often do
not let that setting change.

A migration run that starts on an empty database (setup, reset, upgrade from base) has nothing
to lose by committing part way: when it holds more than half the table, it commits and goes
on in a new transaction, the migration lock still held for the session. Should it fail after
such a step, the database is emptied again, so that it is as the run found it and a rerun does
the whole job. Any other run stays one transaction, and one too large for the server is
refused in one sentence, nothing applied.
"""
import click
from sqlalchemy import event, text

OUT_OF_LOCKS = "53200"  # out_of_memory, which PostgreSQL raises when the shared lock table is full
CHECK_EVERY = 20  # statements between two counts of the locks held
OWN_LOCKS = "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND NOT fastpath"
SETTINGS = text("SELECT current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int, "
                "current_setting('max_prepared_transactions')::int")


def lock_table_size(connection):
    """Return (max_locks_per_transaction, max_connections, the lock table's nominal size)."""
    per_transaction, connections, prepared = connection.execute(SETTINGS).one()
    return per_transaction, connections, per_transaction * (connections + prepared)


def step_budget(connection):
    """Return how many locks one step may hold: half the lock table, the rest left to every other session."""
    return max(lock_table_size(connection)[2] // 2, 64)


def is_out_of_locks(exc):
    """Return True when exc is PostgreSQL's "out of shared memory" for a full lock table."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "pgcode", None) == OUT_OF_LOCKS and "max_locks_per_transaction" in str(orig)


def out_of_locks_advice(settings):
    """Return what to do when one transaction needs more locks than the server's lock table holds."""
    figures = f" (max_locks_per_transaction = {settings[0]}, max_connections = {settings[1]})" if settings else ""
    return (f"one transaction needs more locks than the server's lock table holds{figures}: raise "
            "max_locks_per_transaction (it takes a server restart), or split the work into smaller revisions "
            "(to empty the database, `python db_manage.py reset` works in steps; on an empty database, setup and "
            "upgrade do too)")


class Steps:
    """Commits a migration run in steps whenever it holds more locks than budget (installed on one connection)."""

    def __init__(self, connection, budget, renew=None, note=None):
        self.connection, self.budget, self.renew, self.note = connection, budget, renew, note
        self.statements, self.committed, self.busy = 0, 0, False
        event.listen(connection, "after_cursor_execute", self.after_statement)

    def after_statement(self, conn, cursor, statement, parameters, context, executemany):
        """Every CHECK_EVERY statements, commit and start again when the locks held pass the budget."""
        self.statements += 1
        if self.busy or self.statements % CHECK_EVERY:
            return
        self.busy = True
        try:
            dbapi = conn.connection.dbapi_connection
            with dbapi.cursor() as own:
                own.execute(OWN_LOCKS)
                held = own.fetchone()[0]
            if held > self.budget:
                if not self.committed and self.note:
                    click.echo(self.note.format(held=held), err=True)
                dbapi.commit()  # the next statement begins the next step's transaction
                self.committed += 1
                if self.renew:
                    self.renew(dbapi)
        finally:
            self.busy = False

    def close(self):
        """Stop watching the connection."""
        event.remove(self.connection, "after_cursor_execute", self.after_statement)
