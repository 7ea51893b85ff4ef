"""Safe on live databases: migration lock, lock timeout, atomic runs, protected production, secrets."""
import subprocess
import sys
import time

import pytest
from conftest import cli_env, fake_pg_programs, versions
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from db_manage_tool.migration_safety import MIGRATION_LOCK_KEY
from db_manage_tool.production_guard import OVERRIDE_VARIABLE

SAMPLE = (3, 5, 6)
PRODUCTION = {"FLASK_CONFIG": "production", "SECRET_KEY": "x" * 32}


def start(project, url, *args, env=None):
    """Start db_manage.py in the background; return the process."""
    return subprocess.Popen([sys.executable, "db_manage.py", *args], cwd=project, env=cli_env(url, env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def waiting_for_the_lock(connection, count, timeout=60):
    """Wait until count sessions wait for the migration lock; return True if they do within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = connection.execute(text(  # a run waits between transactions, under a name that says so
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE '%(waiting for the migration lock)'")).scalar()
        connection.commit()
        if waiting >= count:
            return True
        time.sleep(0.1)
    return False


def write_revision(cli, project, message, upgrade_body):
    """Write a hand-made revision whose upgrade() runs upgrade_body; return its id."""
    before = versions(project)
    assert cli("revision", message).returncode == 0
    (name,) = set(versions(project)) - set(before)
    path = project / "migrations" / "versions" / name
    path.write_text(path.read_text().replace("def upgrade():\n    pass", f"def upgrade():\n    {upgrade_body}"))
    return name.split("_")[0]


def test_two_upgrades_at_once_both_succeed_and_apply_once(cli, project, database, database_url, head_revision):
    assert cli("downgrade", "base").returncode == 0
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as holder:  # another "deploy" holds the migration lock for a moment
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        holder.commit()
        first, second = start(project, database_url, "upgrade"), start(project, database_url, "upgrade")
        assert waiting_for_the_lock(holder, 2), "both wait for the lock"
        assert first.poll() is None and second.poll() is None
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        holder.commit()
        outputs = [p.communicate(timeout=60) for p in (first, second)]
    engine.dispose()
    assert [first.returncode, second.returncode] == [0, 0], outputs
    errs = [err for _, err in outputs]
    assert all("Waiting for another migration" in err for err in errs)
    assert sum("Running upgrade  -> " in err for err in errs) == 1, "the first revision applied exactly once"
    assert sum(f"-> {head_revision}," in err for err in errs) == 1, "the last one too"
    assert database.revision() == head_revision


def test_a_migration_blocked_by_a_table_lock_fails_fast_then_succeeds(cli, project, database, database_url,
                                                                      head_revision):
    revision = write_revision(cli, project, "Add nickname", "op.add_column('users', sa.Column('nickname', sa.Text()))")
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as reader:  # a long transaction that read users
        reader.execute(text("LOCK TABLE users IN ACCESS SHARE MODE"))
        began = time.monotonic()
        result = cli("upgrade", env={"MIGRATION_LOCK_TIMEOUT": "1"})
        elapsed = time.monotonic() - began
        reader.rollback()
    engine.dispose()
    assert result.returncode == 1
    assert elapsed < 15
    assert "could not get its lock within 1 s" in result.stderr
    assert "ALTER TABLE users ADD COLUMN nickname TEXT" in result.stderr
    assert f"still at {head_revision}" in result.stderr and "MIGRATION_LOCK_TIMEOUT" in result.stderr
    assert "Traceback" not in result.stderr
    assert database.revision() == head_revision and "nickname" not in database.columns("users")
    again = cli("upgrade", env={"MIGRATION_LOCK_TIMEOUT": "1"})
    assert again.returncode == 0, again.stderr
    assert database.revision() == revision and "nickname" in database.columns("users")


def test_the_migration_lock_wait_is_not_cut_by_the_lock_timeout(cli, project, database, database_url):
    revision = write_revision(cli, project, "Harmless", "op.execute('SELECT 1')")
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        holder.commit()
        waiting = start(project, database_url, "upgrade", env={"MIGRATION_LOCK_TIMEOUT": "1"})
        assert waiting_for_the_lock(holder, 1)
        time.sleep(3)
        assert waiting.poll() is None, "still waiting after three times the lock timeout"
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        holder.commit()
        _, err = waiting.communicate(timeout=60)
    engine.dispose()
    assert waiting.returncode == 0, err
    assert database.revision() == revision


def test_a_failing_run_of_several_revisions_leaves_nothing(cli, project, database, head_revision):
    first = write_revision(cli, project, "Create t1", "op.create_table('t1', sa.Column('id', sa.Integer))")
    second = write_revision(cli, project, "Broken", "op.execute('SELECT 1/0')")
    result = cli("upgrade")
    assert result.returncode == 1
    assert f"Migration upgrade {first} -> {second}, Broken failed: division by zero" in result.stderr
    assert f"still at {head_revision}" in result.stderr and "Traceback" not in result.stderr
    assert "public.t1" not in database.tables(), "the first revision's table is rolled back too"
    assert database.revision() == head_revision


def test_the_database_records_which_configuration_migrated_it(cli, database, database_url):
    assert database.scalar("SELECT value FROM db_manage_metadata WHERE key = 'environment'") == "testing"
    assert cli("stamp", "head", env=PRODUCTION).returncode == 0
    assert database.scalar("SELECT value FROM db_manage_metadata WHERE key = 'environment'") == "production"
    assert cli("check").returncode == 0, "the tool's table is not a model difference"
    assert "db_manage_metadata" not in cli("status").stdout


@pytest.mark.parametrize("config_env", [{}, PRODUCTION], ids=["development-config", "production-config"])
def test_destructive_commands_refuse_a_production_database(cli, tmp_path, database, head_revision, config_env):
    assert cli("seed").returncode == 0
    dump = tmp_path / "sample.dump"
    assert cli("backup", "--output", str(dump)).returncode == 0
    assert cli("upgrade", env=PRODUCTION).returncode == 0  # a production deploy migrated it
    for args in (("reset", "--yes"), ("reset", "--table", "users", "--yes"), ("reset", "--schema", "analytics", "--yes"),
                 ("seed",), ("restore", str(dump), "--yes"), ("downgrade", "base"), ("downgrade", "-2")):
        result = cli(*args, env=config_env)
        assert result.returncode == 1, args
        assert "Refusing to" in result.stderr and OVERRIDE_VARIABLE in result.stderr, args
    assert database.counts() == SAMPLE and database.revision() == head_revision


def test_plain_flask_db_downgrade_to_base_is_refused_on_production_too(cli, project, database, database_url,
                                                                       head_revision):
    assert cli("upgrade", env=PRODUCTION).returncode == 0
    assert cli("downgrade").returncode == 0, "one step down does not reach base"
    assert database.scalar("SELECT value FROM db_manage_metadata") == "production", "the mark stays"
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "run.py", "db", "downgrade", "base"],
                            cwd=project, env=cli_env(database_url), capture_output=True, text=True)
    assert result.returncode == 1
    assert "Refusing to downgrade to base" in result.stderr and "Traceback" not in result.stderr
    assert "public.users" in database.tables()


def test_the_production_configuration_is_refused_even_on_a_development_database(cli, database):
    assert cli("seed").returncode == 0
    result = cli("reset", "--yes", env=PRODUCTION)
    assert result.returncode == 1 and "the production configuration is in use" in result.stderr
    assert database.counts() == SAMPLE


def test_the_override_lifts_the_guard(cli, database):
    assert cli("seed").returncode == 0
    assert cli("upgrade", env=PRODUCTION).returncode == 0
    result = cli("reset", "--yes", env={OVERRIDE_VARIABLE: "1"})
    assert result.returncode == 0, result.stderr
    assert database.counts() == (0, 0, 0)


def test_no_command_prints_the_password(cli, project, tmp_path, database_url):
    from sqlalchemy.engine import make_url

    secret = "Sup3r-S3cret-pw"
    url = make_url(database_url).set(password=secret).render_as_string(hide_password=False)  # trust auth ignores it
    outputs = []
    for args in (("setup",), ("status",), ("status", "--json"), ("check",), ("current",), ("seed",),
                 ("backup", "--output", str(tmp_path / "s.dump")), ("upgrade", "--sql"), ("reset", "--table", "nope")):
        result = cli(*args, url=url)
        outputs.append(result.stdout + result.stderr)
    closed = make_url(url).set(host="127.0.0.1", port=1, query={}).render_as_string(hide_password=False)
    for args in (("--verbose", "upgrade"), ("--verbose", "status"), ("backup",)):
        result = cli(*args, url=closed)
        assert result.returncode == 1
        outputs.append(result.stdout + result.stderr)
    assert all(secret not in out for out in outputs)
    assert any("***" in out for out in outputs)


def test_pg_dump_gets_the_password_from_its_environment_not_argv(cli, tmp_path, database_url):
    from sqlalchemy.engine import make_url

    secret = "Sup3r-S3cret-pw"
    url = make_url(database_url).set(password=secret).render_as_string(hide_password=False)
    record = tmp_path / "record"
    body = (f'echo "$@" >> {record}.argv\necho "$PGPASSWORD" >> {record}.env\n'
            'for a in "$@"; do case $a in --file=*) echo PGDMP > "${a#--file=}";; esac; done')
    bindir = fake_pg_programs(tmp_path / "bin", "99", lambda name: body)
    result = cli("backup", "--output", str(tmp_path / "x.dump"), url=url, env={"PG_BINDIR": str(bindir)})
    assert result.returncode == 0, result.stderr
    assert secret not in (tmp_path / "record.argv").read_text()
    assert (tmp_path / "record.env").read_text().split() == [secret, secret]
