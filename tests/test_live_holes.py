"""Safe on live databases with no holes (issue 13): names and URLs, lock timeout values, the guard by meaning."""
from sqlalchemy.engine import make_url

from conftest import Database

from db_manage_tool import dbadmin


def test_a_database_named_with_equals_quotes_and_spaces_round_trips(cli, server_url, tmp_path):
    name = f"{server_url.database}_a=b it's"
    url = server_url.set(database=name).render_as_string(hide_password=False)
    dbadmin.drop_database(url)
    try:
        assert cli("setup", url=url).returncode == 0
        assert cli("seed", url=url).returncode == 0
        dump = tmp_path / "named.dump"
        result = cli("backup", "--output", str(dump), url=url)
        assert result.returncode == 0, result.stderr
        database = Database(url)
        database.execute("DELETE FROM posts")
        result = cli("restore", str(dump), "--yes", url=url)
        assert result.returncode == 0, result.stderr
        assert database.counts() == (3, 5, 6), "restored into the database that was named, not another"
        shown = cli("shell", "-c", "SELECT current_database()", url=url)
        assert shown.returncode == 0 and name in shown.stdout, shown.stdout + shown.stderr
        dbadmin.drop_database(url)
        result = cli("restore", str(dump), "--yes", url=url)
        assert result.returncode == 0, result.stderr
        assert Database(url).counts() == (3, 5, 6) and make_url(url).database == name
    finally:
        dbadmin.drop_database(url)
