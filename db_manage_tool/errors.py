"""Expected failures turned into one readable sentence, with every password masked."""
import configparser
import errno
import os
import re
import signal
import sys
import traceback

from .database_url import ConfigError, scrub

VERBOSE_VARIABLE = "DB_MANAGE_VERBOSE"


class Failure(Exception):
    """An expected failure of a command: its message says what happened and what to do."""


class NotOffline(Failure):
    """A revision whose Python cannot run without a database (it reads rows), so no offline SQL for it."""


def describe(exc):
    """Return one sentence saying what went wrong in exc and, where known, how to fix it."""
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, CommandError):
        ambiguous = re.match(r"Multiple revisions start with '([^']*)': (.*?)\.*$", str(exc.__cause__ or ""))
        if ambiguous:
            return scrub(f"{ambiguous[1]!r} is the start of several revisions ({ambiguous[2]}): give more of its "
                         "characters (`python db_manage.py history` lists them).")
        return scrub(reword(str(exc)))
    if isinstance(exc, Failure | ConfigError) or getattr(exc, "expected", False):
        return scrub(str(exc))
    if in_a_cycle(exc):
        from .revisions import cycle_sentence

        return scrub(cycle_sentence(str(exc)))
    if isinstance(exc, OSError) and exc.filename and not type(exc).__module__.startswith("psycopg2"):
        return scrub(file_problem(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "No space left on the device being written (the output, or a file the command writes): free some space."
    if isinstance(exc, ModuleNotFoundError) and exc.name == "psycopg2":
        return ("db-manage talks to PostgreSQL through psycopg2, which is not installed: `pip install "
                "psycopg2-binary` (or the application's own pin of psycopg2).")
    revision_file = failing_revision_file(exc)
    if revision_file:
        return scrub(f"{revision_file} failed to load ({type(exc).__name__}: {first_line(str(exc))}): fix it, or move "
                     "it out of migrations/versions.")
    if isinstance(exc, KeyError) and raised_in(exc, "alembic"):
        return (f"A revision file names {exc.args[0]!r} as its down_revision (or depends_on), but no file in "
                "migrations/versions has that revision: fix that line, or restore the missing file.")
    if type(exc).__name__ in ("RevisionError", "MultipleHeads", "ResolutionError") and "overlaps" in str(exc):
        return ("The database records several revisions on one line of history (alembic_version has overlapping "
                f"rows: {first_line(str(exc))}): repair the record with `python db_manage.py stamp --purge REVISION` "
                "(the revision the schema really is at, often head).")
    duplicate = re.fullmatch(r"Revision (\S+) is present more than once", str(exc))
    if isinstance(exc, UserWarning) and duplicate:
        from .revisions import files_with_revision

        files = files_with_revision(duplicate.group(1)) or ["migrations/versions"]
        return scrub(f"Several migration files have the revision id {duplicate.group(1)} ({', '.join(files)}), so "
                     "the history is ambiguous: delete the copy, or give one of them a new id (its `revision = ` "
                     "line, and the down_revision of any file that follows it).")
    if isinstance(exc, SyntaxError) and exc.filename:
        return scrub(f"{exc.filename} line {exc.lineno} does not compile ({exc.msg}): fix it, or move it away.")
    if isinstance(exc, configparser.Error):
        return scrub(f"An Alembic configuration file cannot be read ({first_line(str(exc))}): fix migrations/"
                     "alembic.ini, or copy Flask-Migrate's own (`flask db init` writes one in an empty folder).")
    if isinstance(exc, TypeError) and raised_in(exc, "alembic"):
        from .revisions import files_with_unquoted_ids

        files = files_with_unquoted_ids()
        if files:
            return (f"{', '.join(files)}: its `revision` (or `down_revision`) is not a revision id in quotes: write "
                    "it as revision = \"ab12cd34ef56\" (down_revision: such an id, a tuple of them, or None).")
    missing = re.fullmatch(r"module '(\w+)' has no attribute '(upgrade|downgrade)'", str(exc))
    if isinstance(exc, AttributeError) and missing and raised_in(exc, "alembic"):
        return (f"The revision file {missing[1].removesuffix('_py')}.py has no {missing[2]}() function: add one "
                f"(`def {missing[2]}(): pass` when it has nothing to do).")
    if isinstance(exc, AssertionError) and raised_in(exc, "alembic"):
        return ("Alembic cannot resolve the revision given: use head, base, a revision id (or its first "
                "characters), or a relative step such as -1 or +2.")
    if session_ended(exc):
        return scrub(_connection_problem(str(getattr(exc, "orig", None) or exc).strip()))
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and "invalid dsn" in str(exc.orig)):
        return scrub(_connection_problem(str(exc.orig).strip()))
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "pgcode", None) == INSUFFICIENT_PRIVILEGE:
        return scrub(privilege_problem(exc))
    if isinstance(exc, DBAPIError):
        return scrub(f"The database refused the operation: {first_line(str(exc.orig))}")
    if type(exc).__module__.startswith("psycopg2"):  # raised by the driver directly (COPY, psycopg2.sql)
        return scrub(f"The database refused the operation: {first_line(str(exc))}")
    return scrub(f"Unexpected {type(exc).__name__}: {first_line(str(exc))}")


# Alembic's messages (CommandError, printed by Flask-Migrate as "Error: ..."), each with what to do.
ALEMBIC_MESSAGES = (
    (r"Can't locate revision identified by '(?P<rev>[^']*)'",
     "No migration file has the revision '{rev}': `python db_manage.py history` lists them (a revision, its first "
     "characters, head, base, or a step such as -1 or +2 work)."),
    (r"Relative revision (?P<step>[-+]?\d+) didn't produce (?P<n>\d+) migrations",
     "There are fewer than {n} migrations to go through from where the database is (step {step}): "
     "`python db_manage.py history` lists them; `downgrade base` reverts every one."),
    (r"Ambiguous walk",
     "The database is at a merge of several branches, where one step down is ambiguous: name the revision to go "
     "down to (`python db_manage.py history` lists them), as in `python db_manage.py downgrade REVISION`."),
    (r"Target database is not up to date",
     "The database is not at the migrations' head: run `python db_manage.py upgrade` first (with several heads, "
     "`python db_manage.py merge -m \"Merge branches\"` joins them), then run migrate again."),
    (r"Multiple heads are present",
     "The migrations have several heads: name one (`python db_manage.py heads` lists them), or join them with "
     "`python db_manage.py merge -m \"Merge branches\"`."),
    (r"downgrade with --sql requires",
     "downgrade --sql does not read the database, so it needs FROM:TO, as in `python db_manage.py downgrade --sql "
     "head:base`."),
    (r"Path doesn't exist: '?(?P<path>.+?)'?\.?(?:\s+Please use the 'init' command.*)?$",
     "There is no migrations folder at {path}: run `python db_manage.py setup` (or `init`) to create it."),
    (r"Directory (?P<path>.+) already exists and is not empty",
     "The migrations folder {path} already exists: nothing to init (`python db_manage.py adopt` gives it the tool's "
     "env.py)."),
    (r"Requested revision (?P<one>\S+) overlaps with other requested revisions (?P<other>\S+)",
     "The database records several revisions on one line of history (alembic_version has the rows {one} and "
     "{other}): repair the record with `python db_manage.py stamp --purge REVISION` (the revision the schema "
     "really is at, often head)."),
    (r"Walked too far",
     "The revision given lies beyond the ends of the history (above head, or below base): "
     "`python db_manage.py history` lists the revisions; give one of them, head, base or a step such as -1."),
    (r"Could not determine revision id from filename (?P<file>\S+?)\. ",
     "The migration file {file} has no `revision = \"...\"` line (or is empty): write it, or delete the file."),
    (r"Destination (?P<rev>\S+) is not a valid downgrade target from current head\(s\)",
     "{rev} is not below the database's revision: `python db_manage.py current` says where it is and "
     "`python db_manage.py history` what lies below."),
    (r"Destination (?P<rev>\S+) is not a valid upgrade target from current head\(s\)",
     "{rev} is not above the database's revision: `python db_manage.py current` says where it is and "
     "`python db_manage.py history` what lies above."),
)


def session_ended(exc):
    """Return True when exc says the server ended the session (stopped, restarted, or pg_terminate_backend)."""
    text = str(getattr(exc, "orig", None) or exc)
    return any(words in text for words in ("connection already closed", "server closed the connection",
                                           "terminating connection due to administrator command"))


def in_a_cycle(exc):
    """Return True when exc is Alembic's report of a cycle in the migration history."""
    from alembic.script.revision import CycleDetected

    return isinstance(exc, CycleDetected)


def reword(message):
    """Return Alembic's message as a sentence that says what to do (the original is kept when not known)."""
    from .revisions import cycle_sentence

    cycle = cycle_sentence(message)
    if cycle is not None:
        return cycle
    text = first_line(message).removeprefix("Error: ").rstrip(".")
    for pattern, sentence in ALEMBIC_MESSAGES:
        match = re.search(pattern, text)
        if match:
            return sentence.format(**{k: v.strip("'\"") for k, v in match.groupdict().items()})
    return first_line(message).removeprefix("Error: ")


def file_problem(exc):
    """Return one sentence for an operating-system error on a file or folder (permission, missing, full disk)."""
    path = exc.filename
    if isinstance(exc, PermissionError):
        return (f"Permission denied on {path}: the command cannot write or read it as this user; fix the "
                "permissions or choose another place.")
    if isinstance(exc, FileNotFoundError):
        return f"{path} does not exist: check the path, or choose another place."
    return f"{exc.strerror or type(exc).__name__} for {path}: check that path and its permissions, or choose another place."


def failing_revision_file(exc):
    """Return the revision file (under a versions/ folder) whose own code raised exc while it loaded, or None."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if f"{os.sep}versions{os.sep}" in name and tb.tb_frame.f_code.co_name == "<module>":
            found = name
        tb = tb.tb_next
    return found


def raised_in(exc, package):
    """Return True when exc was raised by code of the installed package `package`."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}{package}{os.sep}" in tb.tb_frame.f_code.co_filename


def _connection_problem(message):
    """Return a sentence for a psycopg2 connection failure message."""
    first = first_line(message)
    pooled = re.search(r'no such database: (\S+)', message)  # PgBouncer's own message
    if pooled:
        return (f"The connection pooler in front of the server has no database {pooled.group(1)!r}: add it to the "
                "pooler's [databases], or set MIGRATION_DATABASE_URL to a direct connection to the server.")
    missing = re.search(r'database "([^"]+)" does not exist', message)
    if missing:
        return f"The database {missing.group(1)!r} does not exist yet: run `python db_manage.py setup` to create it."
    if "Connection refused" in message or "No such file or directory" in message:
        return f"Cannot connect to PostgreSQL ({first}): is the server running, on that host and port?"
    if "could not translate host name" in message or "Name or service not known" in message:
        return f"Cannot connect to PostgreSQL: unknown host ({first})."
    if "password authentication failed" in message:
        return f"PostgreSQL refused the login ({first}): check the user and password in DATABASE_URL."
    role = re.search(r'role "([^"]+)" does not exist', message)
    if role:
        return (f"PostgreSQL has no role {role.group(1)!r}: fix the user in DATABASE_URL, or have an administrator "
                f"create it (CREATE ROLE {quote_identifier(role.group(1))} LOGIN PASSWORD '...').")
    if "server does not support SSL" in message:
        return ("The server does not accept SSL connections, but the URL asks for one (sslmode=require or "
                "stronger): remove sslmode from the URL, or enable SSL on the server.")
    if "SSL" in message and ("certificate" in message or "SSL error" in message):
        return f"The SSL connection failed ({first}): check sslmode, sslrootcert and the server's certificate."
    if "no pg_hba.conf entry" in message:
        return (f"The server does not accept this connection ({first}): an administrator must allow it in "
                "pg_hba.conf, or connect from an allowed host, user or with SSL.")
    if any(words in message for words in ("terminating connection due to administrator command",
                                          "server closed the connection", "connection already closed")):
        return (f"The server ended the session while the command ran ({first}): it was stopped, restarted, or the "
                "session was terminated. What the command had not committed was rolled back: run it again once the "
                "server is up (`python db_manage.py status`).")
    if "too many connections" in message or "remaining connection slots are reserved" in message:
        return f"The server has no free connection ({first}): close idle connections or raise max_connections."
    option = _bad_option(message)
    if option:
        return option
    return f"Cannot use the database: {first}"


# libpq's and the server's words for a connection option that is unknown or has a value they reject.
_OPTION_PROBLEMS = (
    (r'invalid connection option "(?P<name>[^"]+)"',
     "The database URL has an option libpq does not know ({name}): remove it from the URL's query string "
     "(libpq's options: https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS)."),
    (r'invalid port number: "(?P<value>[^"]*)"',
     "The port {value} in the database URL is not a port number: give one from 1 to 65535 (PostgreSQL's is 5432)."),
    (r'invalid sslmode value: "(?P<value>[^"]*)"',
     "The database URL's sslmode={value} is not a value libpq accepts: use disable, allow, prefer, require, "
     "verify-ca or verify-full, or remove it."),
    (r'invalid (?P<name>\w+) value: "(?P<value>[^"]*)"',
     "The database URL's {name}={value} is not a value libpq accepts: fix or remove it."),
    (r'invalid integer value "(?P<value>[^"]*)" for connection option "(?P<name>[^"]+)"',
     "The database URL's {name}={value} is not a whole number: fix or remove it."),
    (r'unrecognized configuration parameter "(?P<name>[^"]+)"',
     "The server has no setting {name}, which the database URL's options=-c... sets: fix or remove it."),
    (r'invalid value for parameter "(?P<name>[^"]+)": "(?P<value>[^"]*)"',
     "The server rejects {name}={value}, which the database URL's options=-c... sets: fix or remove it."),
)


def _bad_option(message):
    """Return a sentence for a connection option libpq or the server rejects, or None."""
    for pattern, sentence in _OPTION_PROBLEMS:
        found = re.search(pattern, message)
        if found:
            return sentence.format(**found.groupdict())
    return None


INSUFFICIENT_PRIVILEGE = "42501"
# "permission denied for table users", "must be owner of table users": the object a role lacks rights on.
_DENIED = re.compile(r"permission denied for (table|view|sequence|schema|database|function) (\S+)")
_NOT_OWNER = re.compile(r"must be owner of (?:table|relation|view|sequence|schema|index|type) (\S+)")
# What a role needs on each kind of object: to read, and to read and write.
GRANTS = {"table": ("SELECT", "SELECT, INSERT, UPDATE, DELETE"), "view": ("SELECT", "SELECT"),
          "sequence": ("SELECT", "USAGE, SELECT, UPDATE"), "schema": ("USAGE", "USAGE, CREATE"),
          "database": ("CONNECT", "CONNECT, CREATE"), "function": ("EXECUTE", "EXECUTE")}


def privilege_problem(exc, reading=False):
    """Return one sentence for a permission error (SQLSTATE 42501): the statement an administrator runs."""
    message = first_line(str(getattr(exc, "orig", exc)))
    role = role_of(exc)
    grantee = quote_identifier(role) if role else "<the role of DATABASE_URL>"
    denied, not_owner = _DENIED.search(message), _NOT_OWNER.search(message)
    if denied:
        kind, name = denied.groups()
        on = "" if kind in ("table", "view") else f"{kind.upper()} "
        return (f"The role {role or 'in use'} may not use the {kind} {name} ({message}): ask its owner or an "
                f"administrator to run `GRANT {GRANTS[kind][0 if reading else 1]} ON {on}{quote_identifier(name)} "
                f"TO {grantee};`, or connect as a role that has it.")
    if not_owner:
        return (f"Only the owner of {not_owner.group(1)} may change it ({message}): run migrations as the role that "
                f"owns the application's tables, or ask an administrator to run `ALTER TABLE "
                f"{quote_identifier(not_owner.group(1))} OWNER TO {grantee};`.")
    return f"The role {role or 'in use'} lacks a privilege ({message}): ask an administrator for it."


def role_of(exc):
    """Return the role of the connection that raised exc (psycopg2 keeps its cursor), or None."""
    cursor = getattr(getattr(exc, "orig", exc), "cursor", None)
    try:
        return cursor.connection.info.user if cursor is not None else None
    except (AttributeError, ValueError):  # an older psycopg2, or a closed connection
        return None


def quote_identifier(name):
    """Return name as a PostgreSQL identifier in double quotes."""
    return '"' + name.strip('"').replace('"', '""') + '"'


def first_line(text):
    """Return the first non-empty line of text."""
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


from .children import INVOCATION_VARIABLE, with_invocation  # noqa: E402,F401  (re-exported)


def report(exc):
    """Print exc as one sentence on stderr (with the traceback when verbose) and return its exit code (1, 130)."""
    from .interrupts import cancelled_by_ctrl_c, stopped

    if stopped() and not getattr(exc, "expected", False):  # however the stop surfaced (a COPY's failed read)
        from .children import Stopped

        exc = Stopped(signal.SIGTERM, in_process=True)
    if not getattr(exc, "expected", False) and cancelled_by_ctrl_c(exc):  # said already by an expected one
        print("Error: Interrupted (Ctrl-C): the running statement was cancelled and its transaction rolled back.",
              file=sys.stderr)
        return 130
    if os.environ.get(VERBOSE_VARIABLE):
        print(scrub("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
    print(f"Error: {with_invocation(describe(exc))}", file=sys.stderr)
    if not os.environ.get(VERBOSE_VARIABLE) and traceback_helps(exc):
        if isinstance(exc, Failure | ConfigError) or getattr(exc, "expected", False):
            print(with_invocation(f"(run `python db_manage.py --verbose COMMAND ...`, or set {VERBOSE_VARIABLE}=1, "
                                  "to see the traceback)"), file=sys.stderr)
        else:
            print(f"This looks like a bug in db_manage.py or in the application: run the command again with --verbose "
                  f"(or {VERBOSE_VARIABLE}=1) to see the traceback, and report it with that traceback.",
                  file=sys.stderr)
    return getattr(exc, "exit_code", 1) if isinstance(exc, Failure) or getattr(exc, "expected", False) else 1


def traceback_helps(exc):
    """Return True when exc is not fully explained by its sentence (an unforeseen failure)."""
    from sqlalchemy.exc import OperationalError

    if getattr(exc, "traceback_helps", False):
        return True
    if getattr(exc, "expected", False) or getattr(getattr(exc, "orig", None), "pgcode", None) == INSUFFICIENT_PRIVILEGE:
        return False
    from alembic.util import CommandError

    if isinstance(exc, ModuleNotFoundError) and exc.name == "psycopg2":
        return False
    if isinstance(exc, CommandError) or (isinstance(exc, OSError) and (exc.filename or exc.errno == errno.ENOSPC)):
        return False
    if isinstance(exc, UserWarning) and "is present more than once" in str(exc) or in_a_cycle(exc) or session_ended(exc):
        return False
    if _bad_option(str(getattr(exc, "orig", ""))):
        return False
    if isinstance(exc, (AssertionError, AttributeError, KeyError, TypeError)) and raised_in(exc, "alembic") and \
            not describe(exc).startswith("Unexpected "):  # a sentence that says it all (revision files, steps)
        return False
    if type(exc).__name__ in ("RevisionError", "MultipleHeads", "ResolutionError") and "overlaps" in str(exc):
        return False
    return not isinstance(exc, Failure | ConfigError | OperationalError | SyntaxError | configparser.Error)


def install_excepthook():
    """Make uncaught errors of the flask CLI print one sentence instead of a traceback."""
    def hook(kind, exc, tb):
        if issubclass(kind, KeyboardInterrupt):
            return sys.__excepthook__(kind, exc, tb)
        report(exc)

    sys.excepthook = hook
