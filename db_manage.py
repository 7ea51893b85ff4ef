#!/usr/bin/env python3
"""Manage this project's PostgreSQL database: `python db_manage.py help` lists the commands.

This file is the map of the commands, a few lines each; installed (`pip install .`), it is also
the console command `db-manage`, run from the application's folder. It sets FLASK_APP (--app,
else $FLASK_APP, else .flaskenv/.env, else run.py if there is one, else Flask's own search for
wsgi.py or app.py) and routes each command: those that Flask-Migrate already provides
hand off to `flask db ...`, run in a subprocess forked from this one (nothing heavy is
imported here first, so the child starts with only what it needs); the others run in this
process, in the application context, with their work in the package db_manage_tool/, which
serves any Flask-SQLAlchemy + Flask-Migrate app.
Exit codes: 0 done, 1 the operation failed, 2 usage error.
"""
import importlib.util
import os
import re
import shlex
import site
import sys

NOT_INSTALLED = ("The project's packages are not installed for {}: run `.venv/bin/python db_manage.py`, "
                 "activate the virtualenv (`. .venv/bin/activate`), or `pip install -r requirements-dev.txt`.")
try:
    import click
except ImportError:  # run by a Python other than the project's virtualenv
    sys.exit("Error: " + NOT_INSTALLED.format(sys.executable))


def project_folder():
    """Return the project's folder: this file's, when a project's copy is run as a script; else the working directory.

    Imported (the console command `db-manage`, installed or editable), the command serves the folder it runs in.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if __name__ != "__main__":
        return os.getcwd()
    installed = {os.path.realpath(path) for path in [*site.getsitepackages(), site.getusersitepackages()]}
    return os.getcwd() if os.path.realpath(here) in installed else here  # python -m db_manage


ROOT = project_folder()
PGDATA = os.path.join(ROOT, "instance", "pgdata")  # the embedded PostgreSQL's data directory
INSTALLED = ROOT != os.path.dirname(os.path.abspath(__file__))  # the console command `db-manage`
PROGRAM = "db-manage" if INSTALLED else "python db_manage.py"


def flask_db(*args, lint_written=False):
    """Run `flask db ARGS` in a child of this interpreter, in the project folder, and return its exit code.

    With lint_written, the child also lints the revision files it writes (warnings only), with the
    application it has loaded already.
    """
    click.echo(f"$ flask db {shlex.join(args)}", err=True)
    from db_manage_tool import children  # signals passed on: the child never outlives this process

    if lint_written:
        os.environ["DB_MANAGE_LINT_WRITTEN"] = "1"
    code = children.run_module("db_manage_tool.flask_db", ["db", *args], cwd=ROOT)  # flask's CLI, errors in one line
    return code if code in (0, 1, 2) else 1


def lint_new_revisions(*args):
    """Run `flask db ARGS`, which lints the revision files it wrote (warnings only), one such command of the
    project at a time (two at once would write two revisions on one parent); return its exit code."""
    from db_manage_tool.children import one_at_a_time

    with one_at_a_time(ROOT, "Another migrate or revision of this project is writing a revision: waiting for it."):
        return flask_db(*args, lint_written=True)


def in_app(work, *args, announce=True, create_missing=False, **kwargs):
    """Run work(*args, **kwargs) in this process, inside the application context, and return its result.

    With create_missing, a missing database is created should the application's factory connect to it.
    """
    from db_manage_tool.application import application_engine, load_app
    from db_manage_tool.interrupts import cancel_statements_on_ctrl_c
    from db_manage_tool.lock_waits import reporting_lock_waits

    cancel_statements_on_ctrl_c(sigterm=True)

    os.chdir(ROOT)  # as `flask db` runs: a relative migrations folder is the project's
    with load_app(announce, create_missing).app_context(), reporting_lock_waits(application_engine().url):
        return work(*args, **kwargs)


def dotenv_value(name):
    """Return the variable `name` as the project's .flaskenv or .env sets it (.env wins, as with `flask`), else None."""
    named = [os.path.join(ROOT, ".flaskenv"), os.path.join(ROOT, ".env")]
    files = [path for path in named if os.path.isfile(path)]
    odd = [path for path in named if os.path.lexists(path) and not os.path.isfile(path)]
    if odd:
        from db_manage_tool.dotenv_files import refuse_non_file

        refuse_non_file(odd[0])
    if not files:
        return None
    from dotenv import dotenv_values  # python-dotenv: what `flask` reads these files with

    from db_manage_tool.dotenv_files import check  # a file python-dotenv cannot parse would be half read, silently

    for path in files:
        check(path)
    values = {key: value for path in files for key, value in dotenv_values(path).items()}
    return values.get(name) or None


def app_import_path(value, base):
    """Return FLASK_APP with a path to a file or folder made absolute from base (commands run in the project folder)."""
    path, colon, rest = value.partition(":")
    if path.endswith(".py") or os.sep in path or os.path.isdir(os.path.join(base, path)):
        path = os.path.normpath(os.path.join(base, path))
    return path + colon + rest


def require_words(message):
    """Refuse an empty or blank revision message, or one that is not text: it names the file and shows in history."""
    if not message.strip():
        raise click.UsageError("MESSAGE is empty: say what the migration does, e.g. \"Add phone to users\".")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, passed through by the shell
        raise click.UsageError("MESSAGE is not UTF-8 text: retype it.") from None


def revision_argument(ctx, param, value):
    """Refuse an empty REVISION (an unset shell variable would otherwise mean head, or one step down)
    and a FROM:TO range without --sql, which only offline SQL takes."""
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if item is not None and not item.strip():
            raise click.BadParameter("is empty: give a revision id, head, base or a step such as -1 (leave it "
                                     "out for the default).")
        if item and ":" in item and ctx.command.name == "lint":
            raise click.BadParameter(f"{item!r}: lint takes revisions, not a range; list the revisions, or give "
                                     "none for every one.")
        if item and ":" in item and ctx.command.name in ("upgrade", "downgrade", "stamp"):
            if not ctx.params.get("sql", False) or ctx.command.name == "stamp":
                raise click.BadParameter(f"{item!r}: a FROM:TO range is only for --sql (offline SQL); give one "
                                         "revision.")
        if item:
            refuse_impossible_step(ctx.command.name, item.strip())
    return value


def refuse_impossible_step(command, revision):
    """Refuse a step that cannot mean anything: zero steps, below base, above head, or a step for lint."""
    if re.fullmatch(r"[-+]0+", revision):
        raise click.BadParameter(f"{revision!r} is a step of zero, which moves nothing: give -1, +1 or more.")
    if re.fullmatch(r"base-\d+", revision):
        raise click.BadParameter(f"{revision!r} lies below base, where no revision is: give base, or base+N.")
    if re.fullmatch(r"heads?\+\d+", revision):
        raise click.BadParameter(f"{revision!r} lies above head, where no revision is: give head, or head-N.")
    if command == "upgrade" and re.fullmatch(r"-\d+", revision):
        raise click.BadParameter(f"{revision!r} is a step down: upgrade goes up (+1, a revision or head); "
                                 f"`{PROGRAM} downgrade {revision}` goes down.")
    if command == "lint" and re.fullmatch(r"[-+]\d+", revision):
        raise click.BadParameter(f"{revision!r} is a step, and lint takes revisions: give a revision id, head, or "
                                 "none for every revision.")


GLOBAL_OPTIONS = ("--verbose", "--config", "--app", "--directory", "-d")


class WorkflowGroup(click.Group):
    """A command group that lists its commands in the order they are defined: the workflow's order."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(cls=WorkflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--app", "app_path", metavar="IMPORT",
              help="The application, as `flask --app` takes it (a file, a module, or 'module:create_app()').  "
                   "[default: $FLASK_APP (environment, .env or .flaskenv), else run.py]")
@click.option("--config", metavar="NAME",
              help="The configuration to use: sets FLASK_CONFIG.  [default: $FLASK_CONFIG, else development]")
@click.option("-d", "--directory", metavar="PATH",
              help="The migrations folder, as `flask db -d` takes it.  [default: the folder the application gave "
                   "Migrate(), else migrations]")
@click.option("--verbose", is_flag=True, help="Show the full traceback when a command fails.  [default: off]")
def cli(app_path, config, directory, verbose):
    """Create, migrate and inspect this project's PostgreSQL database.

    With no DATABASE_URL (environment or .env) the commands use an embedded
    PostgreSQL kept in instance/pgdata, started on first use.
    """
    if importlib.util.find_spec("flask_migrate") is None:
        raise click.ClickException(NOT_INSTALLED.format(sys.executable))
    for option, value in (("--app", app_path), ("--config", config), ("--directory", directory)):
        if value is not None and not value.strip():
            raise click.UsageError(f"{option} needs a value: leave it out for the default.")
    if app_path or os.environ.get("FLASK_APP"):  # given here: relative to where the command is run
        os.environ["FLASK_APP"] = app_import_path(app_path or os.environ["FLASK_APP"], os.getcwd())
    elif dotenv_value("FLASK_APP") or os.path.isfile(os.path.join(ROOT, "run.py")):  # relative to the project
        os.environ["FLASK_APP"] = app_import_path(dotenv_value("FLASK_APP") or "run.py", ROOT)
    if directory:  # read by db_manage_tool.application when it loads the application
        os.environ["DB_MANAGE_DIRECTORY"] = os.path.abspath(directory)
    os.environ["DB_MANAGE_ANNOUNCE"] = "1"
    os.environ.setdefault("PGAPPNAME", f"db_manage.py {click.get_current_context().invoked_subcommand} "
                                       f"{os.getpid()}"[:63])  # names this run's sessions: see lock_waits.py
    given = [*(["--app", app_path] if app_path else []), *(["--config", config] if config else []),
             *(["--directory", directory] if directory else [])]
    os.environ["DB_MANAGE_INVOCATION"] = shlex.join([*PROGRAM.split(), *given])  # repeated in advice
    if config:
        os.environ["FLASK_CONFIG"] = config
    if verbose:
        os.environ["DB_MANAGE_VERBOSE"] = "1"


@cli.command()
def setup():
    """Create the database if missing and migrate it to head (first checkout).

    Writes an "Initial migration" only when there is no revision at all (a new
    project, or after deleting migrations/); on an existing history it only says
    how the models differ from it. Safe to run again.
    """
    from db_manage_tool.setup_database import setup_database

    in_app(setup_database, create_missing=True)


@cli.command()
@click.option("--yes", is_flag=True, help="Skip the confirmation.  [default: ask on a terminal, refuse elsewhere]")
@click.option("--seed", "then_seed", is_flag=True, help="Run the seed file afterwards.  [default: off]")
@click.option("--table", metavar="[SCHEMA.]NAME", help="Only empty this table (and those its foreign keys force).")
@click.option("--schema", metavar="NAME", help="Only empty every table of this schema.")
def reset(yes, then_seed, table, schema):
    """Drop everything and migrate to head again; or only empty a table or a schema."""
    if table is not None and schema is not None:
        raise click.UsageError("Give --table or --schema, not both.")
    from db_manage_tool.reset import reset

    in_app(reset, yes, table, schema, then_seed)


class FilePath(click.Path):
    """A file path that refuses an empty value (an unset shell variable), which click would call a folder."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("is empty: give a file name.", param, ctx)
        return super().convert(value, param, ctx)


def non_blank(ctx, param, value):
    """Refuse an empty or blank statement (an unset shell variable would run nothing and succeed)."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty: give a statement, or leave -c out for an interactive psql.")
    return value


def non_empty_paths(ctx, param, values):
    """Refuse an empty PATH (an unset shell variable), which would mean the project folder."""
    if any(not value.strip() for value in values):
        raise click.BadParameter("is empty: give a JSON or CSV file, or a folder of them.")
    return values


def row_requests(ctx, param, values):
    """Return --rows NAME=COUNT values as (name, count) pairs; refuse any other form."""
    from db_manage_tool.generate import MAX_ROWS

    requests = []
    for value in values:
        name, equals, count = value.rpartition("=")
        if not equals or not name.strip() or not re.fullmatch(r"[0-9]+", count.strip()):
            raise click.BadParameter(f"{value!r}: give MODEL=COUNT, e.g. --rows users=1000.")
        if not 1 <= int(count) <= MAX_ROWS:
            raise click.BadParameter(f"{value!r}: COUNT must be from 1 to {MAX_ROWS:,}.")
        requests.append((name.strip(), int(count)))
    return requests


@cli.command()
@click.option("--rows", multiple=True, metavar="MODEL=COUNT", callback=row_requests,
              help="Generate COUNT rows of MODEL (a model or [schema.]table name) from its columns; repeat for "
                   "several, parents are filled first.  [default: none: run the seed file]")
@click.option("--all", "every", type=click.IntRange(1, 100_000_000), metavar="N",
              help="Generate about N rows of every table (each model of an inheritance tree), parents first; a "
                   "table that cannot be generated is skipped, with the reason; --rows sets a table's own count.  "
                   "[default: none]")
@click.option("--fixture", "fixtures", multiple=True, metavar="PATH", callback=non_empty_paths,
              help="Add the rows of a JSON or CSV file (or of every such file in a folder) by natural key; "
                   "repeatable.  [default: none]")
def seed(rows, every, fixtures):
    """Add development data in one transaction: the seed file (app/seeds.py), fixtures, or generated rows.

    With no option, runs the application's seed file: its sample rows, added by
    natural key, so running it again adds only what is missing.
    """
    from db_manage_tool.seed import seed_database

    in_app(seed_database, rows=rows, every=every, fixtures=[os.path.abspath(path) for path in fixtures])  # in ROOT


@cli.command()
def init():
    """Create migrations/ from the tool's template (once per project)."""
    from db_manage_tool.setup_database import init_migrations

    in_app(init_migrations, announce=False)


@cli.command()
@click.option("--force", is_flag=True, help="Adopt even when your env.py does something the tool's would not "
                                            "(named first).  [default: refuse]")
def adopt(force):
    """Put the tool's env.py into an existing migrations folder, carrying over its settings (yours is kept)."""
    from db_manage_tool.adoption import adopt_migrations

    in_app(adopt_migrations, force, create_missing=True)  # a factory that connects needs its database


@cli.command()
@click.argument("message")
@click.option("--plain", is_flag=True, help="Write Alembic's own forms, not the zero-downtime ones for existing "
                                            "tables (CONCURRENTLY, NOT VALID then VALIDATE).  [default: off]")
def migrate(message, plain):
    """Write a migration from your model changes (autogenerate), in forms that keep live tables writable; lint it."""
    require_words(message)
    if plain:
        os.environ["DB_MANAGE_PLAIN"] = "1"  # read by db_manage_tool/safe_forms.py in the flask db child
    return lint_new_revisions("migrate", "--message", message)


@cli.command()
@click.argument("revision", required=False, callback=revision_argument)
@click.option("--sql", is_flag=True, is_eager=True, help="Print the SQL instead of running it.  [default: off]")
def upgrade(revision, sql):
    """Apply migrations up to REVISION  [default: head]."""
    return flask_db("upgrade", *([revision] if revision else []), *(["--sql"] if sql else []))


@cli.command(context_settings={"ignore_unknown_options": True})  # so that -1, -2 are revisions
@click.argument("revision", required=False, callback=revision_argument)
@click.option("--sql", is_flag=True, is_eager=True,
              help="Print the SQL instead of running it (from the database's revision, or give FROM:TO).  "
                   "[default: off]")
def downgrade(revision, sql):
    """Revert migrations down to REVISION  [default: -1; `base` reverts all]."""
    if revision and revision.startswith("--"):  # unknown options are let through only for -1, -2 ...
        raise click.UsageError(f"No such option: {revision} (downgrade takes a REVISION such as -1, head-2, base "
                               "or a revision id, and --sql).")
    return flask_db("downgrade", *(["--sql"] if sql else []), *(["--", revision] if revision else []))


@cli.command()
@click.argument("revisions", nargs=-1, callback=revision_argument)
@click.option("--exclude", multiple=True, metavar="RULE", help="A squawk rule to skip (repeatable).  [default: none]")
@click.option("--style", is_flag=True, help="Also report style-only rules (timestamptz, bigint, ...).  [default: off]")
def lint(revisions, exclude, style):
    """Flag migration operations unsafe on a live database (default: every revision)."""
    from db_manage_tool.lint import lint

    in_app(lint, revisions, exclude, style, announce=False)  # lint reads files only


@cli.command()
def history():
    """List the migrations, newest first (a model edit `migrate` wrote as two revisions is one line)."""
    from db_manage_tool.revisions import show_history

    in_app(show_history, announce=False)  # history reads files only


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
    require_words(message)
    return lint_new_revisions("revision", "--message", message)


@cli.command()
@click.argument("revision", callback=revision_argument)
@click.option("--purge", is_flag=True, help="First forget what the database records (a lost revision).  [default: off]")
def stamp(revision, purge):
    """Record REVISION as the database's revision; runs no migration."""
    return flask_db("stamp", *(["--purge"] if purge else []), revision)


@cli.command()
@click.option("-m", "--message", default="Merge heads", help="The merge revision's message.  [default: Merge heads]")
def merge(message):
    """Write a revision that joins every head (after two branches each added a migration)."""
    require_words(message)
    return flask_db("merge", "--message", message, "heads")  # refused there when there is one head


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.  [default: off]")
def status(as_json):
    """Show the server, the revision, pending migrations and every table's rows."""
    from db_manage_tool.status import show_status

    in_app(show_status, as_json, announce=False)  # status prints the database itself


@cli.command()
def check():
    """Exit 1, listing each difference, unless models, migrations and database agree (for CI)."""
    from db_manage_tool.check import check

    in_app(check)


@cli.command()
@click.option("--output", type=FilePath(dir_okay=False, resolve_path=True),
              help="Markdown file to write.  [default: print the diagram]")
def erd(output):
    """Draw the models as a Mermaid entity-relationship diagram (no database needed)."""
    from db_manage_tool.erd import erd

    in_app(erd, output, announce=False)


@cli.command()
@click.option("--output", type=FilePath(dir_okay=False, resolve_path=True),
              help="File to write.  [default: backups/backup_YYYYmmdd_HHMMSS.dump]")
@click.option("--force", is_flag=True, help="Replace the --output file if it exists.  [default: refuse]")
def backup(output, force):
    """Dump the database with pg_dump (custom format, verified, mode 0600)."""
    from db_manage_tool.backup import backup

    in_app(backup, output, force)


@cli.command()
@click.argument("path", type=FilePath(dir_okay=False, resolve_path=True))
@click.option("--yes", is_flag=True, help="Skip the confirmation.  [default: ask on a terminal, refuse elsewhere]")
@click.option("--any-revision", is_flag=True,
              help="Restore a backup whose revision no migration file has (--yes does not).  [default: ask]")
def restore(path, yes, any_revision):
    """Restore a backup file into the configured database (created if missing)."""
    from db_manage_tool.backup import restore

    in_app(restore, path, yes, any_revision, create_missing=True)


@cli.command()
def version():
    """Print the PostgreSQL server's version line."""
    from db_manage_tool.status import server_version

    click.echo(in_app(server_version))


@cli.command()
@click.option("-c", "--command", "sql", metavar="SQL", callback=non_blank,
              help="Run this one statement and exit.  [default: interactive]")
def shell(sql):
    """Open psql on the configured database (the password never on its command line)."""
    from db_manage_tool.pgtools import shell

    return in_app(shell, sql)


@cli.group(cls=WorkflowGroup)
def server():
    """Start, stop or describe the embedded PostgreSQL in instance/pgdata."""


@server.command("status")
def server_status():
    """Say whether the embedded server runs, where, which version, its size, and how to connect."""
    from db_manage_tool import embedded

    click.echo(embedded.describe(PGDATA, "app_development"))


@server.command("start")
def server_start():
    """Start the embedded server (every command also starts it on demand)."""
    from db_manage_tool import embedded

    embedded.embedded_url(PGDATA, "postgres")
    click.echo("The embedded PostgreSQL is running.")


@server.command("stop")
def server_stop():
    """Stop the embedded server; the next command starts it again."""
    from db_manage_tool import embedded

    sessions = embedded.open_sessions(PGDATA)
    if sessions:  # a fast shutdown, as `pg_ctl stop`: their transactions are rolled back
        click.echo(f"Note: stopping ends {len(sessions)} open session(s), whose transactions are rolled back: "
                   f"{'; '.join(sessions)}.", err=True)
    stopped = embedded.stop(PGDATA)
    click.echo("The embedded PostgreSQL is stopped." if stopped else "The embedded PostgreSQL was not running.")


@cli.command("help")
@click.argument("command", nargs=-1)
@click.pass_context
def help_command(ctx, command):
    """Show the list of commands, or the help of COMMAND (`help server start` for a server command)."""
    if not command:
        return click.echo(ctx.parent.get_help())
    target, parent = cli, ctx.parent
    for depth, name in enumerate(command, 1):
        target = target.get_command(ctx, name) if isinstance(target, click.Group) else None
        if target is None:
            raise click.UsageError(f"No such command {' '.join(command[:depth])!r}.", ctx)
        parent = click.Context(target, info_name=name, parent=parent)
    click.echo(target.get_help(parent))


def main():
    """Run the command line and exit with its code; the one place where a failure becomes an exit code."""
    from db_manage_tool.children import AdvisingStream, leave, open_missing_streams

    open_missing_streams()
    sys.stderr = AdvisingStream(sys.stderr)  # advice says `db-manage ...` when installed, with the global options
    try:
        code = cli.main(prog_name=PROGRAM.split()[-1], complete_var="_DB_MANAGE_COMPLETE", standalone_mode=False)
        sys.stdout.flush()  # output that cannot be written (a full disk) is a failure said here, not lost at exit
    except click.NoSuchOption as exc:
        if exc.option_name in GLOBAL_OPTIONS:  # `status --verbose`: said after the command
            exc.message += f" ({exc.option_name} is a global option: put it before the command, as in " \
                           f"`{PROGRAM} {exc.option_name} COMMAND`)"
        exc.show()
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.Abort as exc:
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)  # Ctrl-C, which click turns into Abort
        click.echo("Error: Interrupted (Ctrl-C): the command stopped; a transaction it had open was rolled back."
                   if interrupted else "Aborted.", err=True)
        code = 130 if interrupted else 1
    except Exception as exc:  # an expected failure of a command run in this process
        from db_manage_tool.errors import report

        code = report(exc)
    leave(code or 0)


if __name__ == "__main__":
    main()
