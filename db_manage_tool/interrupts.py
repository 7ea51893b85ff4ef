"""Ctrl-C cancels the statement the server is running, as psql does, instead of waiting for it to end.

psycopg2 blocks inside libpq while a statement runs, so Python's KeyboardInterrupt would only be
raised once the statement ends: a long ALTER or a migration's pg_sleep would hold its locks on.
Python's own signal handler writes each signal to a wakeup file descriptor at once; a thread
reading it sends the server a cancel request for each connection of the process's pools. The
statement ends with "canceling statement due to user request", the transaction rolls back, and the
command stops as interrupted.
"""
import os
import signal
import threading
import weakref

CONNECTIONS = weakref.WeakSet()  # the DBAPI connections of every SQLAlchemy pool of this process
PRESSED = threading.Event()
STOPPED = threading.Event()  # SIGTERM received: whatever error follows, the command was stopped


def cancel_statements_on_ctrl_c(sigterm=False):
    """From now on, make Ctrl-C cancel the statements running on this process's pooled connections; with
    sigterm, SIGTERM too, which then stops the command as children.Stopped (exit 143, one sentence)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
        return  # Ctrl-C is ignored here (a background job), or not Python's to handle
    if sigterm and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, stop)
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    if not event.contains(Pool, "connect", remember):
        event.listen(Pool, "connect", remember)
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    threading.Thread(target=watch, args=(read,), name="db-manage-ctrl-c", daemon=True).start()


def remember(dbapi_connection, connection_record):
    """Keep a new pooled connection, to cancel its statement on Ctrl-C."""
    CONNECTIONS.add(dbapi_connection)


def watch(read):
    """Read the signals Python's handlers write, and cancel every running statement on SIGINT or SIGTERM."""
    import psycopg2

    while True:
        try:
            received = os.read(read, 64)
        except OSError:
            return
        if signal.SIGINT in received:
            PRESSED.set()
        if signal.SIGINT in received or signal.SIGTERM in received:
            for connection in list(CONNECTIONS):
                try:
                    if not connection.closed:
                        connection.cancel()  # thread-safe: a cancel request on a connection of its own
                except (psycopg2.Error, AttributeError):  # closed meanwhile, or not psycopg2's
                    continue


def stop(signum, frame):
    """SIGTERM's handler: stop the command as the wrapper stops a child (its transaction rolls back)."""
    from .children import Stopped

    STOPPED.set()
    raise Stopped(signum, in_process=True)


def stopped():
    """Return True once SIGTERM has stopped the command (an error raised meanwhile is that stop, in other words:
    psycopg2 reports the stop inside a COPY's read() as a failed COPY)."""
    return STOPPED.is_set()


def pressed():
    """Return True once Ctrl-C has been pressed (a cancelled statement is then the interruption, not an error)."""
    return PRESSED.is_set()


QUERY_CANCELED = "57014"  # SQLSTATE of a statement cancelled on request (not a lock or statement timeout)


def cancelled_by_ctrl_c(exc):
    """Return True when exc, or an error it came from, is a statement that Ctrl-C cancelled."""
    seen = set()
    while exc is not None and id(exc) not in seen and pressed():
        seen.add(id(exc))
        orig = getattr(exc, "orig", exc)
        if getattr(orig, "pgcode", None) == QUERY_CANCELED and "user request" in str(orig):
            return True
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return False
