"""reset: drop everything and migrate to head, or empty a table or schema; always confirmed."""
from conftest import TOOL_TABLES, versions

SAMPLE = (3, 5, 6)


def test_reset_empties_everything_and_stays_at_head(cli, database, head_revision):
    assert cli("seed").returncode == 0
    database.execute("CREATE SCHEMA scratch")
    database.execute("CREATE TABLE scratch.leftover (id int)")
    database.execute("CREATE TABLE stray (id serial primary key)")
    database.execute("CREATE TYPE mood AS ENUM ('ok', 'meh')")
    database.execute("CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42'")
    result = cli("reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert "schema scratch (dropped): leftover" in result.stderr, "--yes still lists what it drops"
    assert database.counts() == (0, 0, 0)
    assert database.revision() == head_revision
    assert database.tables() == {"public.users", "public.posts", "analytics.page_views"} | TOOL_TABLES
    assert "scratch" not in database.schemas()
    assert database.scalar("SELECT count(*) FROM pg_type WHERE typname = 'mood'") == 0
    assert database.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'answer'") == 0


def test_migrate_after_reset_finds_nothing(cli, project, database):
    assert cli("reset", "--yes").returncode == 0
    before = versions(project)
    result = cli("migrate", "Anything?")
    assert result.returncode == 0
    assert versions(project) == before
    assert "No changes in schema detected" in result.stderr


def test_reset_seed(cli, database, head_revision):
    database.execute("INSERT INTO users (username, email) VALUES ('temp', 'temp@example.com')")
    assert cli("reset", "--yes", "--seed").returncode == 0
    assert database.counts() == SAMPLE
    assert database.scalar("SELECT count(*) FROM users WHERE username = 'temp'") == 0
    assert database.revision() == head_revision


def test_a_failing_migration_undoes_the_whole_reset(cli, project, database, head_revision):
    assert cli("seed").returncode == 0
    assert cli("revision", "Broken").returncode == 0
    (broken,) = [p for p in (project / "migrations" / "versions").glob("*_broken.py")]
    broken.write_text(broken.read_text().replace("def upgrade():\n    pass", "def upgrade():\n    op.execute('SELECT 1/0')"))
    result = cli("reset", "--yes")
    assert result.returncode == 1
    assert "division by zero" in result.stderr
    assert database.counts() == SAMPLE and database.revision() == head_revision


def test_reset_table_names_and_empties_the_tables_its_foreign_keys_force(cli, database, head_revision):
    assert cli("seed").returncode == 0
    result = cli("reset", "--table", "users", "--yes")
    assert result.returncode == 0, result.stderr
    assert "public.posts" in result.stderr
    assert database.counts() == (0, 0, 6)
    assert database.revision() == head_revision
    database.execute("INSERT INTO users (username, email) VALUES ('new', 'new@example.com')")
    assert database.scalar("SELECT id FROM users") == 1, "identities restart"


def test_reset_table_without_cascade_and_qualified(cli, database):
    assert cli("seed").returncode == 0
    assert cli("reset", "--table", "posts", "--yes").returncode == 0
    assert database.counts() == (3, 0, 6)
    assert cli("reset", "--table", "analytics.page_views", "--yes").returncode == 0
    assert database.counts() == (3, 0, 0)


def test_reset_table_named_as_sql_quotes_it(cli, database):
    database.execute('CREATE TABLE "Users" (id int); INSERT INTO "Users" VALUES (1), (2)')
    assert cli("seed").returncode == 0
    result = cli("reset", "--table", '"Users"', "--yes")
    assert result.returncode == 0, result.stderr
    assert database.scalar('SELECT count(*) FROM "Users"') == 0 and database.counts() == (3, 5, 6)
    database.execute('INSERT INTO "Users" VALUES (3)')
    assert cli("reset", "--table", '"public"."Users"', "--yes").returncode == 0
    assert database.scalar('SELECT count(*) FROM "Users"') == 0


def test_reset_schema(cli, database, head_revision):
    assert cli("seed").returncode == 0
    assert cli("reset", "--schema", "analytics", "--yes").returncode == 0
    assert database.counts() == (3, 5, 0)
    assert cli("reset", "--schema", "public", "--yes").returncode == 0
    assert database.counts() == (0, 0, 0)
    assert database.revision() == head_revision, "the migration history is never emptied"


def test_unknown_table_or_schema_touches_nothing(cli, database):
    assert cli("seed").returncode == 0
    for args, message in ((("--table", "nope"), "Unknown table 'nope'"),
                          (("--table", "analytics.users"), "Unknown table 'analytics.users'"),
                          (("--schema", "nope"), "Unknown schema 'nope'")):
        result = cli("reset", *args, "--yes")
        assert result.returncode == 1
        assert message in result.stderr
    assert database.counts() == SAMPLE


def test_refuses_without_a_terminal_and_without_yes(cli, database, head_revision):
    assert cli("seed").returncode == 0
    for args in ((), ("--table", "users"), ("--schema", "analytics")):
        result = cli("reset", *args)
        assert result.returncode == 1
        assert "Pass --yes" in result.stderr
    assert database.counts() == SAMPLE and database.revision() == head_revision


def test_prompt_on_a_terminal_answered_yes_and_no(cli, tty_cli, database):
    assert cli("seed").returncode == 0
    code, output = tty_cli("reset", "--table", "users", answer="no")
    assert code == 1 and "Cancelled" in output
    assert "public.users" in output and "public.posts" in output
    assert database.counts() == SAMPLE
    code, output = tty_cli("reset", answer="yes")
    assert code == 0, output
    assert "analytics (dropped): page_views" in output
    assert database.counts() == (0, 0, 0)


def test_table_and_schema_together_is_a_usage_error(cli, database):
    assert cli("seed").returncode == 0
    result = cli("reset", "--table", "users", "--schema", "analytics", "--yes")
    assert result.returncode == 2 and "not both" in result.stderr
    assert database.counts() == SAMPLE


def test_an_empty_name_is_unknown_never_everything(cli, database, head_revision):
    assert cli("seed").returncode == 0
    for option in ("--table", "--schema"):
        result = cli("reset", option, "", "--yes")
        assert result.returncode == 1, result.stderr
        assert "Unknown" in result.stderr
    assert database.counts() == SAMPLE and database.revision() == head_revision
