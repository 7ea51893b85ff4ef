"""status and version: the real server, revisions, pending migrations and row counts."""
import json

from sqlalchemy import text

from app import db
from db_manage_tool.status import table_rows


def status_json(cli):
    """Run `status --json` and return the parsed object."""
    result = cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_at_head_with_exact_counts(cli, database, head_revision):
    assert cli("seed").returncode == 0
    state = status_json(cli)
    assert state["current"] == [head_revision] and state["heads"] == [head_revision]
    assert state["pending"] == []
    assert state["server_version"] == database.scalar("SHOW server_version")
    rows = {(t["schema"], t["name"]): (t["rows"], t["estimated"]) for t in state["tables"]}
    assert rows == {("public", "users"): (3, False), ("public", "posts"): (5, False),
                    ("analytics", "page_views"): (6, False)}
    text_output = cli("status").stdout
    assert f"Revision:   {head_revision} (head)" in text_output
    assert "public.posts" in text_output and "Pending:    none" in text_output


def test_status_lists_pending_migrations_in_order(cli, database, all_revisions):
    assert len(all_revisions) >= 2
    assert cli("downgrade", "base").returncode == 0
    state = status_json(cli)
    assert state["current"] == []
    assert state["pending"] == all_revisions
    assert state["tables"] == []
    text_output = cli("status").stdout
    positions = [text_output.index(f"  {r['revision']}  {r['message']}") for r in all_revisions]
    assert positions == sorted(positions)


def test_status_on_an_empty_database(cli, missing_database_url, all_revisions):
    from db_manage_tool import dbadmin

    dbadmin.create_database(missing_database_url)
    result = cli("status", "--json", url=missing_database_url)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert (state["current"], state["tables"], state["pending"]) == ([], [], all_revisions)


def test_large_tables_use_the_planners_estimate(app):
    with app.app_context():
        db.session.execute(text("INSERT INTO users (username, email) VALUES ('a', 'a@example.com')"))
        db.session.execute(text("""INSERT INTO posts (title, content, slug, author_id)
                                   SELECT 't', 'c', 's' || g, 1 FROM generate_series(1, 20000) g"""))
        db.session.commit()
        with db.engine.connect() as connection:
            connection.execute(text("ANALYZE posts"))
            estimated = {t["name"]: t for t in table_rows(connection, exact_limit=8192)}
            exact = {t["name"]: t for t in table_rows(connection, exact_limit=10**12)}
        db.engine.dispose()
    assert estimated["posts"]["estimated"] is True
    assert abs(estimated["posts"]["rows"] - 20000) < 2000
    assert estimated["users"] == {"schema": "public", "name": "users", "rows": 1, "estimated": False}
    assert exact["posts"] == {"schema": "public", "name": "posts", "rows": 20000, "estimated": False}


def test_status_when_the_database_cannot_be_reached(cli):
    result = cli("status", url="postgresql://app:pw-secret@127.0.0.1:1/app")
    assert result.returncode == 1
    assert "Cannot connect to PostgreSQL" in result.stderr and "pw-secret" not in result.stderr
    assert result.stdout == ""


def test_version_prints_the_servers_version_line(cli, database):
    result = cli("version")
    assert result.returncode == 0
    assert result.stdout.strip() == database.scalar("SELECT version()")
