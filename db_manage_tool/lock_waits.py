"""Say what a command waits for when another session holds a lock it needs, instead of hanging silently.

db_manage.py names every session of a run (PGAPPNAME, which libpq reads for the tool's own
connections and for pg_dump, pg_restore, psql and `flask db`). While a command runs, a
thread looks, after a short while and then every second, for those sessions waiting on a
lock, and prints once per blocking session who holds it and what it is doing.
"""
import contextlib
import os
import threading

import click

PREFIX = "db_manage.py "
FIRST_LOOK_AFTER = 2.0  # seconds: most commands are done by then, and open no extra connection
LOOK_EVERY = 1.0
# Sessions of this run waiting on a lock (the tool's own advisory lock aside: it says so itself), with the
# sessions blocking them and the relation waited for, when it is one.
WAITS = """
SELECT blocker.pid, blocker.application_name, blocker.state,
       extract(epoch FROM now() - coalesce(blocker.xact_start, blocker.query_start))::int AS seconds,
       (SELECT l.relation::regclass::text FROM pg_locks l
         WHERE l.pid = waiter.pid AND NOT l.granted AND l.relation IS NOT NULL LIMIT 1) AS relation
FROM pg_stat_activity waiter
CROSS JOIN LATERAL unnest(pg_blocking_pids(waiter.pid)) AS blocking(pid)
JOIN pg_stat_activity blocker ON blocker.pid = blocking.pid
WHERE left(waiter.application_name, length(%(name)s)) = %(name)s AND waiter.wait_event_type = 'Lock'
  AND left(blocker.application_name, length(%(name)s)) <> %(name)s
  AND NOT EXISTS (SELECT 1 FROM pg_locks a WHERE a.pid = waiter.pid AND NOT a.granted AND a.locktype = 'advisory')
"""


@contextlib.contextmanager
def reporting_lock_waits(url):
    """Run the block while a thread reports the locks this run's sessions wait for (url: any of the server)."""
    name = os.environ.get("PGAPPNAME", "")
    if not name.startswith(PREFIX) or url is None:
        yield
        return
    done = threading.Event()
    threading.Thread(target=watch, args=(url, name, done), daemon=True, name="lock-waits").start()
    try:
        yield
    finally:
        done.set()


def watch(url, name, done):
    """Print a note for each session that blocks one of this run's, until done is set."""
    import psycopg2
    from sqlalchemy.engine import make_url

    if done.wait(FIRST_LOOK_AFTER):
        return
    told, unnamed = set(), {}
    try:
        url = make_url(url)
        args = {**url.translate_connect_args(username="user", database="dbname"), **dict(url.query),
                "application_name": f"{PREFIX}lock watcher"}
        connection = psycopg2.connect(**args)
    except (psycopg2.Error, ValueError, TypeError):
        return  # the command itself will say what is wrong with the connection
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            while not done.is_set():
                cursor.execute(WAITS, {"name": name})
                for pid, application, state, seconds, relation in cursor.fetchall():
                    unnamed[pid] = unnamed.get(pid, 0) + (relation is None)
                    if relation is None and unnamed[pid] < 2:  # a relation lock may show a moment late: look again
                        continue
                    if pid not in told and not done.is_set():  # one note per blocking session
                        told.add(pid)
                        click.echo(note(pid, application, state, seconds, relation), err=True)
                done.wait(LOOK_EVERY)
    except psycopg2.Error:
        return  # the server went away or refused: the command reports that itself
    finally:
        connection.close()


def note(pid, application, state, seconds, relation):
    """Return one line saying what this command waits for and who holds it (never the other session's SQL,
    which may hold a password)."""
    what = f"a lock on {relation}" if relation else "a lock (on rows or an object another session changed)"
    who = f"session {pid}" + (f" ({application})" if application else "")
    doing = f", {state} for {seconds} s" if state and seconds is not None else ""
    return (f"Waiting for {what}, held by {who}{doing}. This goes on when that transaction ends; Ctrl-C stops it "
            f"(SELECT pg_terminate_backend({pid}) ends the other session).")
