"""`backup` and `restore`: pg_dump's custom format, verified before it is kept, restored in one transaction."""
import os
import re
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from . import dbadmin
from .application import database_url, describe_database, engine, project_root
from .confirm import confirm
from .errors import Failure
from .production_guard import refuse_on_production
from .migration_hooks import script_directory
from .revisions import current_revision, is_known
from . import children
from .pgtools import (dbname_option, ensure_reachable, find_program, fitting_programs, libpq_env,
                      refuse_transaction_pooler, server_major)


def backup(output=None, force=False):
    """Dump the database to output (default backups/backup_YYYYmmdd_HHMMSS.dump), mode 0600; return its path.

    An existing output file is replaced only when force is given, and only once the new dump is verified.
    """
    url = database_url()
    target = Path(output).resolve() if output else free_name(project_root() / "backups" / f"backup_{datetime.now():%Y%m%d_%H%M%S}")
    if target.is_dir():
        raise Failure(f"{target} is a folder: give --output a file name in it. Nothing was written.")
    if target.exists() and not target.is_file():  # a device, a FIFO: --force must never replace it
        raise Failure(f"{target} is not a regular file: give --output the name of a file. Nothing was written.")
    if target.exists() and not force:
        raise Failure(f"{target} already exists: give another --output, or pass --force to replace it. "
                      "Nothing was written.")
    if output and not target.parent.is_dir():
        raise Failure(f"There is no folder {target.parent}: create it, or give another --output. Nothing was written.")
    ensure_reachable()
    refuse_transaction_pooler(url, "pg_dump")
    pg_dump, major = find_program("pg_dump", server_major(url))
    pg_restore, _ = find_program("pg_restore", major)
    click.echo(f"Using {pg_dump} (PostgreSQL {major}).", err=True)
    if output is None and not target.parent.exists():  # backups/ holds every row: keep it out of git
        target.parent.mkdir(parents=True)
        (target.parent / ".gitignore").write_text("# Written by db_manage.py backup: dumps hold every row.\n*\n")
    remove_stale_partials(target.parent)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".partial")
    os.close(handle)  # created with mode 0600, which the final file keeps
    started = time.monotonic()
    try:
        run([pg_dump, "--format=custom", f"--file={partial}"], url, "pg_dump failed")
        run([pg_restore, "--list", partial], url, "the dump could not be read back by pg_restore --list")
        try:
            os.replace(partial, target) if force else os.link(partial, target)  # else never over another file
        except FileExistsError:
            raise Failure(f"{target} appeared while the dump ran: give another --output. Nothing was written.") from None
    finally:
        Path(partial).unlink(missing_ok=True)
    size = target.stat().st_size
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
    click.echo(f"Backup written to {target} ({shown} in {time.monotonic() - started:.1f} s).", err=True)
    return target


def remove_stale_partials(folder):
    """Delete the .partial files of backups whose process is gone (killed outright, it could not clean up)."""
    for path in folder.glob(".*.partial"):
        pid = path.name.rsplit(".partial", 1)[0].split(".")[-2]
        if pid.isdigit() and not process_exists(int(pid)):
            path.unlink(missing_ok=True)
            click.echo(f"Removed {path.name}, left by a backup that was killed.", err=True)


def process_exists(pid):
    """Return True when a process pid exists (any user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_name(stem):
    """Return stem.dump, or stem_2.dump, stem_3.dump, ...: the first that does not exist (resolved)."""
    candidate, number = stem.with_name(stem.name + ".dump"), 1
    while candidate.exists():
        number += 1
        candidate = stem.with_name(f"{stem.name}_{number}.dump")
    return candidate.resolve()


def restore(path, yes=False, any_revision=False):
    """Restore the dump at path into the configured database (created if missing), after confirmation.

    A dump recording a revision no migration file has (another project's, an unmerged branch's)
    is restored only when the user says so again: on the terminal, or with any_revision.
    """
    url = database_url()
    refuse_on_production("restore over the database")
    dump = Path(path)
    if not dump.is_file():
        raise Failure(f"No backup file at {dump}: nothing was changed.")
    refuse_transaction_pooler(url, "pg_restore")
    pg_restore = readable_by(dump, url)
    unknown = [r for r in dump_revisions(pg_restore, dump) if not is_known(script_directory(), r)]
    if unknown:
        confirm(f"{dump} records revision {', '.join(unknown)}, which no file in migrations/versions has: a dump of "
                "another project, or of a branch not merged here, leaves a database no migration can move "
                "(`python db_manage.py stamp` would be needed).", any_revision, flag="--any-revision")
    confirm(f"Restore {dump} into {describe_database()}: its objects are dropped "
            "and replaced by the backup's.", yes)
    created = dbadmin.create_database(url)
    started = time.monotonic()
    try:
        run([pg_restore, "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
             dbname_option(make_url(url).database), str(dump)], url, "pg_restore failed (nothing was restored)")
    except Failure as exc:
        if created:  # leave the server as it was: no empty database behind
            dbadmin.drop_database(url)
        newer = dumped_by_major(pg_restore, dump)
        if newer and newer > server_major(url):
            raise Failure(f"{dump} was made by pg_dump {newer}, and PostgreSQL {server_major(url)} refused what it "
                          f"wrote ({str(exc).split(': ', 1)[-1]}): restore it into a server of version {newer} or "
                          f"newer, or make the backup again with a pg_dump {server_major(url)}. Nothing was "
                          "restored.") from exc
        raise
    if created:
        click.echo(f"Created database {make_url(url).database!r}.", err=True)
    with engine().connect() as connection:
        revision = current_revision(connection)
    engine().dispose()
    click.echo(f"Restored {dump} in {time.monotonic() - started:.1f} s; "
               f"the database is at revision {revision or 'none (no migration recorded)'}.", err=True)
    return revision


def dump_revisions(pg_restore, dump):
    """Return the revisions a dump's alembic_version holds (none when it has no such table)."""
    listing = subprocess.run([str(pg_restore), "--data-only", "--table=alembic_version", "--file=-", str(dump)],
                             capture_output=True, text=True)
    revisions, copying = [], False
    for line in listing.stdout.splitlines():
        if copying and line == "\\.":
            copying = False
        elif copying:
            revisions.append(line.strip())
        elif line.startswith("COPY ") and "alembic_version" in line:
            copying = True
    return revisions


def dumped_by_major(pg_restore, dump):
    """Return the major version of the pg_dump that made dump (from its --list header), or None."""
    listing = subprocess.run([str(pg_restore), "--list", str(dump)], capture_output=True, text=True)
    match = re.search(r"Dumped by pg_dump version: (\d+)", listing.stdout)
    return int(match[1]) if match else None


def readable_by(dump, url):
    """Return the first fitting pg_restore that can read dump (--list), or raise Failure before anything changes."""
    reason = "unknown error"
    for pg_restore, _ in fitting_programs("pg_restore", server_major(url)):
        listing = subprocess.run([str(pg_restore), "--list", str(dump)], capture_output=True, text=True)
        if listing.returncode == 0:
            return pg_restore
        reason = (listing.stderr.strip().splitlines() or [reason])[-1]
    raise Failure(f"{dump} is not a backup that pg_restore can read ({reason}): nothing was changed.")


def run(argv, url, what):
    """Run a libpq program with the connection (password included) in its environment; raise Failure if it fails."""
    result = children.run([str(a) for a in argv], env=libpq_env(url, argv[0]), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        detail = " ".join(result.stderr.strip().splitlines()[-2:]) or f"exit code {result.returncode}"
        raise Failure(f"{what}: {detail}")
