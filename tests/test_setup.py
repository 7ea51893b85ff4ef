"""setup: a missing database, a second run, the guide's nuclear option, and the embedded default."""
import shutil

from conftest import TOOL_TABLES, Database, versions

from db_manage_tool import dbadmin, embedded

APP_TABLES = {"public.users", "public.posts", "analytics.page_views"} | TOOL_TABLES


def test_setup_creates_a_missing_database_and_migrates_it(cli, project, missing_database_url, head_revision):
    before = versions(project)
    result = cli("setup", url=missing_database_url)
    assert result.returncode == 0, result.stderr
    database = Database(missing_database_url)
    assert APP_TABLES <= database.tables()
    assert database.revision() == head_revision
    assert versions(project) == before, "a fresh checkout must not write a migration"
    assert "created" in result.stderr


def test_setup_quotes_the_database_name(cli, server_url):
    url = server_url.set(database=f"{server_url.database} Odd-Name\"; x").render_as_string(hide_password=False)
    try:
        result = cli("setup", url=url)
        assert result.returncode == 0, result.stderr
        assert "public.users" in Database(url).tables()
    finally:
        dbadmin.drop_database(url)


def test_second_setup_changes_nothing(cli, project, missing_database_url, head_revision):
    assert cli("setup", url=missing_database_url).returncode == 0
    database = Database(missing_database_url)
    tables, files = database.tables(), versions(project)
    second = cli("setup", url=missing_database_url)
    assert second.returncode == 0, second.stderr
    assert "exists" in second.stderr
    assert (database.tables(), versions(project), database.revision()) == (tables, files, head_revision)


def test_nuclear_option_rebuilds_one_initial_revision(cli, project, missing_database_url):
    shutil.rmtree(project / "migrations")
    result = cli("setup", url=missing_database_url)
    assert result.returncode == 0, result.stderr
    files = versions(project)
    assert len(files) == 1 and files[0].endswith("_initial_migration.py")
    source = (project / "migrations" / "versions" / files[0]).read_text()
    assert "CREATE SCHEMA IF NOT EXISTS analytics" in source
    database = Database(missing_database_url)
    assert APP_TABLES <= database.tables()
    assert database.revision() == files[0].split("_")[0]
    # The rebuilt revision goes down cleanly too, schema included.
    assert cli("downgrade", "base", url=missing_database_url).returncode == 0
    assert database.tables() == TOOL_TABLES
    assert "analytics" not in database.schemas()


def test_setup_with_no_url_uses_the_embedded_server(cli, project, head_revision):
    pgdata = project / "instance" / "pgdata"
    try:
        result = cli("setup", url=None)
        assert result.returncode == 0, result.stderr
        assert "embedded PostgreSQL" in result.stderr
        assert (pgdata / "PG_VERSION").read_text().strip() == "18"
        url = embedded.embedded_url(pgdata, "app_development")
        database = Database(url)
        assert APP_TABLES <= database.tables()
        assert database.revision() == head_revision
        # A later command attaches to the running server.
        again = cli("current", url=None)
        assert again.returncode == 0 and head_revision in again.stdout
    finally:
        embedded.stop(pgdata)
    assert not embedded.is_running(pgdata)
