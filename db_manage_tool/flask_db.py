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

from .errors import install_excepthook, reword, scrub, with_invocation
from .revisions import use_first_line_messages

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
        print(f"Error: {with_invocation(scrub(reword(text)))}", file=sys.stderr)

    def __getattr__(self, name):
        return getattr(self.logger, name)


def prepared_app(command, offline=False):
    """Load the application (failures in one sentence) and say what the command should know first."""
    import click

    from .adoption import foreign_environment_note
    from .application import load_app, migrations_directory
    from .errors import Failure

    app = load_app(announce=command in MIGRATING | {"current"} and not offline)
    with app.app_context():
        directory = migrations_directory()
        if command != "init" and directory.is_dir() and not (directory / "env.py").exists():
            raise Failure(f"{directory} has no env.py: run `python db_manage.py adopt` to write the tool's.")
        note = foreign_environment_note(directory) if command in MIGRATING else None
    if note:
        click.echo(note, err=True)
    return app


def main():
    """Run `flask ARGS` on the application loaded by prepared_app(); lint what it wrote when asked to."""
    import flask_migrate

    install_excepthook()
    use_first_line_messages()
    flask_migrate.log = ErrorsToStderr(logging.getLogger("flask_migrate"))
    app = prepared_app(sys.argv[2] if len(sys.argv) > 2 else "", offline="--sql" in sys.argv)
    started = time.time()
    code = run_flask(app)
    if code == 0 and os.environ.get(LINT_VARIABLE) == "1":
        from .lint import lint_written_since

        with app.app_context():  # the application is loaded once, for the migration and its lint
            lint_written_since(started)
    sys.exit(code)


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
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return 0


if __name__ == "__main__":
    main()
