#!/usr/bin/env python3
"""Manage this project's PostgreSQL database: `python db_manage.py help` lists the commands.

This file is the map of the commands, a few lines each. Commands that Flask-Migrate
already provides hand off to `flask db ...`, run by this same interpreter in a
subprocess (nothing heavy is imported here first); the others run in this process,
in the application context, with their work in small modules of app/.
Exit codes: 0 done, 1 the operation failed, 2 usage error.
"""
import importlib.util
import os
import shlex
import subprocess
import sys

NOT_INSTALLED = ("The project's packages are not installed for {}: run `.venv/bin/python db_manage.py`, "
                 "activate the virtualenv (`. .venv/bin/activate`), or `pip install -r requirements-dev.txt`.")
try:
    import click
except ImportError:  # run by a Python other than the project's virtualenv
    sys.exit("Error: " + NOT_INSTALLED.format(sys.executable))

ROOT = os.path.dirname(os.path.abspath(__file__))
MIGRATION_TEMPLATE = "app/migration_template"
CONFIGS = ("development", "testing", "production")


def flask_db(*args):
    """Run `flask db ARGS` with this interpreter in the project folder and return its exit code."""
    click.echo(f"$ flask db {shlex.join(args)}", err=True)
    env = dict(os.environ, FLASK_APP="run.py")
    code = subprocess.run([sys.executable, "-m", "flask", "db", *args], cwd=ROOT, env=env).returncode
    return code if code in (0, 1, 2) else 1


def revision_files():
    """Return the paths of the files in migrations/versions."""
    versions = os.path.join(ROOT, "migrations", "versions")
    return {os.path.join(versions, f) for f in os.listdir(versions) if f.endswith(".py")} if os.path.isdir(versions) else set()


def lint_new_revisions(*args):
    """Run `flask db ARGS`; lint the revision files it wrote, warning only; return its exit code."""
    before = revision_files()
    code = flask_db(*args)
    written = sorted(revision_files() - before)
    if code == 0 and written:
        from app.lint import lint_files

        in_app(lint_files, written)
    return code


def in_app(work, *args):
    """Run work(*args) in this process, inside the application context, and return its result."""
    from app import create_app

    with create_app().app_context():
        return work(*args)


class WorkflowGroup(click.Group):
    """A command group that lists its commands in the order they are defined: the workflow's order."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(cls=WorkflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Choice(CONFIGS), help="Configuration to use  [default: $FLASK_CONFIG, else development]")
@click.option("--verbose", is_flag=True, help="Show the full traceback when a command fails.  [default: off]")
def cli(config, verbose):
    """Create, migrate and inspect this project's PostgreSQL database.

    With no DATABASE_URL (environment or .env) the commands use an embedded
    PostgreSQL kept in instance/pgdata, started on first use.
    """
    if importlib.util.find_spec("flask_migrate") is None:
        raise click.ClickException(NOT_INSTALLED.format(sys.executable))
    os.environ["DB_MANAGE_ANNOUNCE"] = "1"
    if config:
        os.environ["FLASK_CONFIG"] = config
    if verbose:
        os.environ["DB_MANAGE_VERBOSE"] = "1"


@cli.command()
def setup():
    """Create the database if missing and migrate it to head (first checkout).

    Writes an "Initial migration" only when the models differ from the migrated
    database (for instance after deleting migrations/). Safe to run again.
    """
    from app.setup_database import setup_database

    setup_database(MIGRATION_TEMPLATE)


@cli.command()
@click.option("--yes", is_flag=True, help="Skip the confirmation.  [default: ask on a terminal, refuse elsewhere]")
@click.option("--seed", "then_seed", is_flag=True, help="Add the sample data afterwards.  [default: off]")
@click.option("--table", metavar="[SCHEMA.]NAME", help="Only empty this table (and those its foreign keys force).")
@click.option("--schema", metavar="NAME", help="Only empty every table of this schema.")
def reset(yes, then_seed, table, schema):
    """Drop everything and migrate to head again; or only empty a table or a schema."""
    if table is not None and schema is not None:
        raise click.UsageError("Give --table or --schema, not both.")
    from app.reset import reset

    in_app(reset, yes, table, schema, then_seed)


@cli.command()
@click.option("--users", type=click.IntRange(min=0), default=0, help="Generated users to add.  [default: 0]")
@click.option("--posts", type=click.IntRange(min=0), default=0, help="Generated posts to add.  [default: 0]")
def seed(users, posts):
    """Add the sample data (idempotent), plus generated users and posts on top."""
    from app.seed import seed_database

    in_app(seed_database, users, posts)


@cli.command()
def init():
    """Create migrations/ from the project's template (once per project)."""
    return flask_db("init", "--template", MIGRATION_TEMPLATE)


@cli.command()
@click.argument("message")
def migrate(message):
    """Write a migration from your model changes (autogenerate), then lint it."""
    return lint_new_revisions("migrate", "--message", message)


@cli.command()
@click.argument("revision", required=False)
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.  [default: off]")
def upgrade(revision, sql):
    """Apply migrations up to REVISION  [default: head]."""
    return flask_db("upgrade", *([revision] if revision else []), *(["--sql"] if sql else []))


@cli.command(context_settings={"ignore_unknown_options": True})  # so that -1, -2 are revisions
@click.argument("revision", required=False)
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (needs FROM:TO).  [default: off]")
def downgrade(revision, sql):
    """Revert migrations down to REVISION  [default: -1; `base` reverts all]."""
    return flask_db("downgrade", *(["--sql"] if sql else []), *(["--", revision] if revision else []))


@cli.command()
@click.argument("revisions", nargs=-1)
@click.option("--exclude", multiple=True, metavar="RULE", help="A squawk rule to skip (repeatable).  [default: none]")
def lint(revisions, exclude):
    """Flag migration operations unsafe on a live database (default: every revision)."""
    from app.lint import lint

    in_app(lint, revisions, exclude)


@cli.command()
def history():
    """List the migrations, newest first."""
    return flask_db("history")


@cli.command()
def current():
    """Show the revision the database is at."""
    return flask_db("current")


@cli.command()
def heads():
    """Show the newest revision(s) in migrations/, with message and file."""
    return flask_db("heads", "--verbose")


@cli.command()
@click.argument("message")
def revision(message):
    """Write an empty migration to fill in by hand (data, raw SQL)."""
    return lint_new_revisions("revision", "--message", message)


@cli.command()
@click.argument("revision")
@click.option("--purge", is_flag=True, help="First forget what the database records (a lost revision).  [default: off]")
def stamp(revision, purge):
    """Record REVISION as the database's revision; runs no migration."""
    return flask_db("stamp", *(["--purge"] if purge else []), revision)


@cli.command()
@click.option("-m", "--message", default="Merge heads", help="The merge revision's message.  [default: Merge heads]")
def merge(message):
    """Write a revision that joins every head (after two branches each added a migration)."""
    from app.revisions import ensure_several_heads

    in_app(ensure_several_heads)
    return flask_db("merge", "--message", message, "heads")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.  [default: off]")
def status(as_json):
    """Show the server, the revision, pending migrations and every table's rows."""
    from app.status import show_status

    in_app(show_status, as_json)


@cli.command()
def check():
    """Exit 1, listing each difference, unless models, migrations and database agree (for CI)."""
    from app.check import check

    in_app(check)


@cli.command()
@click.option("--output", type=click.Path(dir_okay=False), help="Markdown file to write.  [default: print the diagram]")
def erd(output):
    """Draw the models as a Mermaid entity-relationship diagram (no database needed)."""
    from app.erd import erd

    erd(output)


@cli.command()
@click.option("--output", type=click.Path(dir_okay=False), help="File to write.  [default: backups/backup_YYYYmmdd_HHMMSS.dump]")
def backup(output):
    """Dump the database with pg_dump (custom format, verified, mode 0600)."""
    from app.backup import backup

    in_app(backup, output)


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Skip the confirmation.  [default: ask on a terminal, refuse elsewhere]")
def restore(path, yes):
    """Restore a backup file into the configured database (created if missing)."""
    from app.backup import restore

    in_app(restore, path, yes)


@cli.command()
def version():
    """Print the PostgreSQL server's version line."""
    from app.status import server_version

    click.echo(in_app(server_version))


@cli.command()
@click.option("-c", "--command", "sql", metavar="SQL", help="Run this one statement and exit.  [default: interactive]")
def shell(sql):
    """Open psql on the configured database (the password never on its command line)."""
    from app.pgtools import shell

    return in_app(shell, sql)


@cli.group(cls=WorkflowGroup)
def server():
    """Start, stop or describe the embedded PostgreSQL in instance/pgdata."""


@server.command("status")
def server_status():
    """Say whether the embedded server runs, where, which version, its size, and how to connect."""
    from app import PROJECT_ROOT, embedded

    click.echo(embedded.describe(PROJECT_ROOT / "instance" / "pgdata", "app_development"))


@server.command("start")
def server_start():
    """Start the embedded server (every command also starts it on demand)."""
    from app import PROJECT_ROOT, embedded

    embedded.embedded_url(PROJECT_ROOT / "instance" / "pgdata", "postgres")
    click.echo("The embedded PostgreSQL is running.")


@server.command("stop")
def server_stop():
    """Stop the embedded server; the next command starts it again."""
    from app import PROJECT_ROOT, embedded

    stopped = embedded.stop(PROJECT_ROOT / "instance" / "pgdata")
    click.echo("The embedded PostgreSQL is stopped." if stopped else "The embedded PostgreSQL was not running.")


@cli.command("help")
@click.argument("command", required=False)
@click.pass_context
def help_command(ctx, command):
    """Show the list of commands, or the help of COMMAND."""
    if command is None:
        return click.echo(ctx.parent.get_help())
    target = cli.get_command(ctx, command)
    if target is None:
        raise click.UsageError(f"No such command {command!r}.", ctx)
    click.echo(target.get_help(click.Context(target, info_name=command, parent=ctx.parent)))


def main():
    """Run the command line and exit with its code; the one place where a failure becomes an exit code."""
    try:
        code = cli.main(prog_name="db_manage.py", complete_var="_DB_MANAGE_COMPLETE", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        code = 1
    except Exception as exc:  # an expected failure of a command run in this process
        from app.errors import report

        code = report(exc)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
