"""Bad input: one sentence on stderr, the right exit code, nothing changed, no password shown."""
import pytest
from conftest import versions

SECRET = "s3cr3t-pw"


def test_unknown_revision_fails_and_changes_nothing(cli, database, head_revision):
    result = cli("upgrade", "zzz")
    assert result.returncode == 1
    assert "No migration file has the revision 'zzz': `python db_manage.py history` lists them" in result.stderr
    assert "Traceback" not in result.stderr
    assert database.revision() == head_revision


def test_unknown_command_is_a_usage_error(cli, database):
    result = cli("frobnicate")
    assert result.returncode == 2
    assert "No such command 'frobnicate'" in result.stderr


def test_missing_argument_is_a_usage_error(cli):
    result = cli("migrate")
    assert result.returncode == 2
    assert "Missing argument 'MESSAGE'" in result.stderr


@pytest.mark.parametrize("args", [("help",), ("-h",), ("--help",)])
def test_help_lists_every_command(cli, args):
    result = cli(*args)
    assert result.returncode == 0
    for command in ("setup", "reset", "seed", "init", "migrate", "upgrade", "downgrade", "history", "current",
                    "heads", "revision", "stamp", "merge", "lint", "status", "check", "version", "erd", "backup",
                    "restore", "shell", "server", "help"):
        assert f"  {command}" in result.stdout


def test_help_of_one_command(cli):
    result = cli("help", "upgrade")
    assert result.returncode == 0
    assert "Usage: db_manage.py upgrade [OPTIONS] [REVISION]" in result.stdout
    assert "--sql" in result.stdout
    assert cli("help", "nope").returncode == 2


def test_shell_syntax_in_a_message_is_stored_literally(cli, project, database, tmp_path):
    before = versions(project)
    marker = tmp_path / "pwned"
    message = f'Add "x"; $(touch {marker}) `touch {marker}` \\N\\U and """triple"""'
    result = cli("revision", message)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    (name,) = set(versions(project)) - set(before)
    namespace = {}
    exec(compile((project / "migrations" / "versions" / name).read_text(), name, "exec"), namespace)
    assert namespace["__doc__"].splitlines()[0] == message
    assert message in cli("history").stdout


@pytest.mark.parametrize(
    "url, expected",
    [
        (f"postgresql://app:{SECRET}@127.0.0.1:1/app", "Connection refused"),
        (f"postgresql://app:{SECRET}@no-such-host.invalid:5432/app", "unknown host"),
        (f"postgresql://app:{SECRET}@127.0.0.1:notaport/app", "not a valid database URL"),
        (f"mysql://app:{SECRET}@127.0.0.1:3306/app", "PostgreSQL only"),
        (f"postgresql://app@127.0.0.1:1/app?password={SECRET}", "Connection refused"),
        (f"postgresql://app:{SECRET}@x@127.0.0.1:1/app", "write each @ of the password as %40"),
    ],
    ids=["closed-port", "unknown-host", "malformed", "not-postgresql", "query-password", "unencoded-at"],
)
@pytest.mark.parametrize("command", ["upgrade", "setup"])
def test_connection_errors_are_one_sentence_without_password(cli, url, expected, command):
    result = cli(command, url=url)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1


def test_verbose_shows_the_traceback_still_without_password(cli):
    result = cli("--verbose", "upgrade", url=f"postgresql://app:{SECRET}@127.0.0.1:1/app")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_pass_through_commands_import_nothing_heavy_before_handing_off(cli):
    """The hand-off is forked after the `$ flask db` line: what the wrapper imported before it, the child inherits."""
    result = cli("heads", python_options=("-X", "importtime"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    handoff = lines.index("$ flask db heads --verbose")
    imported = [{line.rsplit("|", 1)[1].strip() for line in part if "import time:" in line}
                for part in (lines[:handoff], lines[handoff:])]
    assert "click" in imported[0] and "flask_migrate" in imported[1]
    assert not imported[0] & {"flask", "sqlalchemy", "alembic", "flask_migrate", "app"}


def test_a_profiler_gets_the_normal_exit(cli, tmp_path):
    """The wrapper leaves without the interpreter's teardown, except under a profiler, whose file is written then."""
    import pstats

    output = tmp_path / "heads.prof"
    result = cli("current", python_options=("-m", "cProfile", "-o", str(output)))
    assert result.returncode == 0, result.stderr
    functions = {name for _, _, name in pstats.Stats(str(output)).stats}
    assert "main" in functions and "run_module" in functions
