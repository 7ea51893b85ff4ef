"""`python -m db_manage_tool.flask_db db ARGS`: Flask's own `flask db ...`, with the application loaded first.

The wrapper runs Flask-Migrate's commands through this module so that, for any application:
a failure to load it is one sentence (not Flask's "No such command 'db'"); the database is
announced once; a migrations folder whose env.py is missing or not the tool's is said before
a migration runs; and Flask-Migrate's own errors reach stderr even when an env.py's logging
setup has disabled its logger.
"""
import logging
import os
import sys
import time

from .children import open_missing_streams
from .errors import describe, install_excepthook, reword, scrub, with_invocation
from .interrupts import cancel_statements_on_ctrl_c
from .lock_waits import reporting_lock_waits
from .revisions import ensure_several_heads, use_first_line_messages

LINT_VARIABLE = "DB_MANAGE_LINT_WRITTEN"  # set by db_manage.py for migrate and revision
# The `flask db` commands that run migrations: a note precedes them when env.py is not the tool's.
MIGRATING = {"upgrade", "downgrade", "migrate", "stamp"}


class ErrorsToStderr:
    """Stands in for Flask-Migrate's logger: its errors go to stderr whatever the logging setup."""

    def __init__(self, logger):
        self.logger = logger

    def error(self, message, *args):
        """Print Flask-Migrate's error message as one line on stderr."""
        text = str(message) % args if args else str(message)
        handled = sys.exc_info()[1]  # Flask-Migrate logs str(exc) from its except block: the cause has more
        from alembic.util import CommandError

        sentence = describe(handled) if isinstance(handled, CommandError) else scrub(reword(text))
        print(f"Error: {with_invocation(sentence)}", file=sys.stderr)

    def __getattr__(self, name):
        return getattr(self.logger, name)


class CheckedStdout:
    """Stands in for sys.stdout: remembers a write that failed (a full disk), which Alembic's output swallows."""

    def __init__(self, stream):
        self.stream, self.error = stream, None

    def write(self, text):
        """Write text, remembering the first failure before raising it."""
        try:
            return self.stream.write(text)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self):
        """Flush, remembering the first failure before raising it."""
        try:
            self.stream.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name):
        return getattr(self.stream, name)


def ensure_output_written():
    """Raise the error of an output that could not be written (a reader that stopped early is no error)."""
    try:
        sys.stdout.flush()
    except OSError:
        pass
    error = getattr(sys.stdout, "error", None)
    if isinstance(error, BrokenPipeError):
        sys.stdout = open(os.devnull, "w")  # nothing left to flush at exit
    elif error is not None:
        sys.stdout = open(os.devnull, "w")
        raise error


def prepared_app(command, offline=False):
    """Load the application (failures in one sentence), refuse a merge of one head, and say what the command
    should know first."""
    import click

    from .adoption import foreign_environment_note
    from .application import load_app, migrations_directory
    from .errors import Failure

    app = load_app(announce=command in MIGRATING | {"current"} and not offline)
    with app.app_context():
        directory = migrations_directory()
        if command != "init" and directory.is_dir() and not (directory / "env.py").exists():
            raise Failure(f"{directory} has no env.py: run `python db_manage.py adopt` to write the tool's.")
        if command == "merge":
            ensure_several_heads()
        note = foreign_environment_note(directory) if command in MIGRATING else None
    if note:
        click.echo(note, err=True)
    return app


def main():
    """Run `flask ARGS` on the application loaded by prepared_app(); lint what it wrote when asked to."""
    open_missing_streams()  # a closed stdout drops the output, not the command
    sys.stdout = CheckedStdout(sys.stdout)  # before Alembic's Config takes sys.stdout as its default
    import flask_migrate

    install_excepthook()
    cancel_statements_on_ctrl_c()
    use_first_line_messages()
    flask_migrate.log = ErrorsToStderr(logging.getLogger("flask_migrate"))
    command = sys.argv[2] if len(sys.argv) > 2 else ""
    app = prepared_app(command, offline="--sql" in sys.argv)
    if "--sql" in sys.argv and command in ("upgrade", "downgrade"):
        check_range(app, command, [arg for arg in sys.argv[3:] if ":" in arg and not arg.startswith("-")])
    if command in ("upgrade", "downgrade") and not {"--sql", "--help", "-h"} & set(sys.argv):
        count_pairs_as_one_step(app, command)
    if command == "stamp" and not {"--purge", "--sql", "--help", "-h"} & set(sys.argv):
        ensure_known_record(app)
    started = time.time()
    from .application import application_engine

    with app.app_context():
        url = application_engine().url
    try:
        with reporting_lock_waits(url):
            code = run_flask(app)
    except KeyboardInterrupt:
        if command in ("migrate", "revision"):
            name_files_written(app, started)
        raise
    ensure_output_written()
    if code == 0 and command in SUMMARIES and not {"--sql", "--help", "-h"} & set(sys.argv):
        with app.app_context():
            code = summarise(command, towards_head=command == "upgrade" and set(sys.argv[3:]) <= {"head", "heads"})
    if code == 0 and os.environ.get(LINT_VARIABLE) == "1":
        from .lint import lint_written_since

        with app.app_context():  # the application is loaded once, for the migration and its lint
            lint_written_since(started)
    sys.exit(code)


SUMMARIES = {"upgrade": "Upgrade complete", "downgrade": "Downgrade complete", "stamp": "Stamped"}


def summarise(command, towards_head=False):
    """Say where the database stands after command, as setup and reset do: its revision, and whether it is head;
    return the exit code: 1 for an upgrade to head that did not reach it (an env.py that runs no migration)."""
    import click
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from .application import application_engine
    from .migration_hooks import script_directory
    from .revisions import current_heads

    try:
        with application_engine().connect() as connection:
            current = sorted(current_heads(connection))
        heads = sorted(script_directory().get_heads())
    except (SQLAlchemyError, CommandError):  # the command succeeded: a summary that cannot be read is left out
        return 0
    where = ", ".join(current) or "base"
    if towards_head and current != heads:
        from .application import migrations_directory

        click.echo(f"Error: The upgrade ended at revision {where}, not at head ({', '.join(heads)}): "
                   f"{migrations_directory() / 'env.py'} ran no migration (it does not call "
                   "context.run_migrations()): fix it, or run `python db_manage.py adopt --force` to write the "
                   "tool's.", err=True)
        return 1
    state = " (head)" if current == heads else f" (head is {', '.join(heads)})" if heads else ""
    click.echo(f"{SUMMARIES[command]}: the database is at revision {where}{state}.", err=True)
    return 0


def count_pairs_as_one_step(app, command):
    """Rewrite a relative REVISION (downgrade's -N or default, upgrade's +N) into the revision it reaches when
    the two revisions one `migrate` wrote count as one step (revisions.second_halves)."""
    from .application import application_engine
    from .migration_hooks import script_directory
    from .revisions import current_heads, relative_steps, whole_step_target

    given = [arg for arg in sys.argv[3:] if arg != "--" and not arg.startswith("--")]
    steps = relative_steps(command, given[-1] if given else None)
    if steps is None:
        return
    with app.app_context():
        script = script_directory()
        with application_engine().connect() as connection:
            current = current_heads(connection)
        target = whole_step_target(script, current, command, steps)
    if target is not None:
        sys.argv[3:] = ["--", target] if command == "downgrade" else [target]


def name_files_written(app, started):
    """Say which revision files an interrupted migrate or revision had written already (not linted)."""
    import click

    from .lint import written_since

    with app.app_context():
        written = written_since(started)
    for path in written:
        click.echo(f"Note: {os.path.relpath(path)} was written before the interruption, and not linted: review it "
                   "(`python db_manage.py lint` checks it), or delete it.", err=True)


def ensure_known_record(app):
    """Refuse to stamp over a revision the database records but no file has: only --purge replaces it."""
    from .application import application_engine
    from .migration_hooks import script_directory
    from .revisions import current_heads, ensure_known

    with app.app_context():
        with application_engine().connect() as connection:
            current = current_heads(connection)
        ensure_known(script_directory(), current)


def check_range(app, command, ranges):
    """Refuse an offline FROM:TO range that would render an empty script, before Alembic runs."""
    from .migration_hooks import script_directory
    from .revisions import ensure_range_direction

    with app.app_context():
        for revision_range in ranges:
            ensure_range_direction(script_directory(), command, revision_range)


def run_flask(app):
    """Run Flask's CLI on app as `flask` would, and return its exit code instead of exiting."""
    import click
    from flask.cli import ScriptInfo, cli

    try:
        cli.main(prog_name="flask", obj=ScriptInfo(create_app=lambda: app), standalone_mode=False)
    except SystemExit as exc:  # Flask-Migrate exits 1 on its own errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C: the wrapper says "Interrupted"
            raise KeyboardInterrupt from None
        click.echo("Aborted!", err=True)
        return 1
    return 0


if __name__ == "__main__":
    main()
