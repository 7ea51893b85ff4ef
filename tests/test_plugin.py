"""The pytest plugin (db_manage_tool/pytest_plugin.py): a database per test, cloned from a template kept across runs.

This suite itself runs on it (conftest.py). Here: the application fixture on the skeleton, whose run.py
makes one application when it is imported, and a team's application (tests/apps/ledger, a factory named
in .flaskenv) whose conftest.py is one line, run with the installed package.
"""
import os
import subprocess
import time
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from conftest import Database
from db_manage_tool import dbadmin
from db_manage_tool.pytest_plugin import APPLICATION_NAME, MARK, TEMPLATE_LOCK, lock_key
from test_installed import copy_app, installed  # noqa: F401  (the fixture)

TEAM_TESTS = '''
import os
import signal

from sqlalchemy import text

from ledger import Account, db

SEEN = set()


def test_a_row_written_and_committed(db_manage_app):
    with db_manage_app.app_context():
        assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
        assert db.session.scalar(text("SELECT count(*) FROM accounts")) == 0
        db.session.add(Account(email="a@example.com", currency="EUR"))
        db.session.commit()
        SEEN.add(db.session.scalar(text("SELECT current_database()")))


def test_the_next_test_starts_empty(db_manage_app, db_manage_url):
    with db_manage_app.app_context():
        assert db.session.scalar(text("SELECT count(*) FROM accounts")) == 0
        name = db.session.scalar(text("SELECT current_database()"))
        assert name == db_manage_url.rsplit("/", 1)[1].split("?")[0] and name not in SEEN
    if os.environ.get("KILL_RUN"):
        os.kill(os.getpid(), signal.SIGKILL)
'''


def databases(url, prefix, made_by_plugin=True):
    """Return {name: oid} of the databases whose names start with prefix on url's server (by default only those the
    plugin made, which it marks with a comment)."""
    with dbadmin.server_connection(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname, oid FROM pg_database WHERE left(datname, %s) = %s "
                    "AND (NOT %s OR shobj_description(oid, 'pg_database') = %s)",
                    (len(prefix), prefix, made_by_plugin, MARK))
        return dict(cur.fetchall())


def wait_for_sessions_to_end(url, run):
    """Wait until the server has ended the sessions of the killed run (they hold its lock until then)."""
    deadline = time.monotonic() + 120
    with dbadmin.server_connection(url) as conn, conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                        (f"{APPLICATION_NAME} {run}",))
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("the killed run's sessions did not end")


@pytest.mark.parametrize("turn", [1, 2])
def test_the_application_fixture_is_bound_to_the_tests_own_database(db_manage_app, db_manage_url, template_url,
                                                                   head_revision, turn):
    """run.py's one application is bound again for each test: a committed row stays in this test's database."""
    from app import db
    from app.models import User

    with db_manage_app.app_context():
        assert db.session.scalar(text("SELECT current_database()")) == make_url(db_manage_url).database
        assert db.session.scalar(text("SELECT count(*) FROM users")) == 0
        db.session.add(User(username=f"turn{turn}", email=f"turn{turn}@example.com"))
        db.session.commit()
    assert Database(db_manage_url).scalar("SELECT count(*) FROM users") == 1
    assert Database(db_manage_url).revision() == head_revision
    assert Database(template_url).scalar("SELECT count(*) FROM users") == 0


def test_a_teams_application_with_a_one_line_conftest(installed, tmp_path, server_url,  # noqa: F811
                                                      missing_database_url):
    """ledger's tests, once it is adopted: a database each, the template kept across runs, rebuilt once its history
    changes, and the clones of a killed run dropped by the next run."""
    base = f"{server_url.database}_team{uuid.uuid4().hex[:6]}"
    url = server_url.set(database=base).render_as_string(hide_password=False)
    ledger = copy_app("ledger", tmp_path, missing_database_url, installed)
    ledger.ok("adopt")  # its first revisions replay with their own constraint names under the tool's env.py
    root = ledger.root
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text('pytest_plugins = ["db_manage_tool.pytest_plugin"]\n')
    (root / "tests" / "test_accounts.py").write_text(f'HEAD = "0003"\n{TEAM_TESTS}')

    def run(*options, **env):
        environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FLASK_APP")}
        return subprocess.run([str(installed / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *options,
                               "tests"],
                              cwd=root, env={**environment, "TEST_DATABASE_URL": url, **env}, capture_output=True,
                              text=True, timeout=300)

    keepers = {f"{base}_clone_keepme", f"{base}_tpl_backup"}  # a team's own databases, named like the plugin's
    for name in keepers:
        dbadmin.create_database(server_url.set(database=name).render_as_string(hide_password=False))
    try:
        first = run()
        assert first.returncode == 0, first.stdout + first.stderr
        templates = databases(url, f"{base}_tpl_")
        assert len(templates) == 1 and not databases(url, f"{base}_clone_"), "one template; every clone dropped"
        (template, oid), = templates.items()
        assert Database(server_url.set(database=template).render_as_string(hide_password=False)).revision() == "0003"

        second = run()
        assert second.returncode == 0, second.stdout + second.stderr
        assert databases(url, f"{base}_tpl_") == {template: oid}, "an unchanged history keeps its template"

        with dbadmin.server_connection(url) as another_run, another_run.cursor() as cur:  # holds it, as a live run does
            cur.execute("SELECT pg_advisory_lock_shared(%s, %s)", (TEMPLATE_LOCK, lock_key(template)))
            refused = run("--db-manage-rebuild")
        assert refused.returncode != 0 and "another test run is using the template" in refused.stdout, refused.stdout
        assert databases(url, f"{base}_tpl_") == {template: oid}, "a template in use is never dropped"
        assert "Traceback" not in refused.stdout
        rebuilt_once = run("--db-manage-rebuild")
        assert rebuilt_once.returncode == 0, rebuilt_once.stdout + rebuilt_once.stderr
        (template, oid), = databases(url, f"{base}_tpl_").items()

        killed = run(KILL_RUN="1")
        left = databases(url, f"{base}_clone_")
        assert killed.returncode != 0 and left, "the killed run's clone is left"
        wait_for_sessions_to_end(url, next(iter(left))[len(base) + len("_clone_"):].split("_")[0])

        revision = (root / "migrations" / "versions" / "0003_conventional_names.py").read_text()
        (root / "migrations" / "versions" / "0004_nothing.py").write_text(
            '"""Nothing."""\nrevision = "0004"\ndown_revision = "0003"\nbranch_labels = None\ndepends_on = None\n\n\n'
            'def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n')
        assert "0003" in revision
        (root / "tests" / "test_accounts.py").write_text(f'HEAD = "0004"\n{TEAM_TESTS}')
        third = run()
        assert third.returncode == 0, third.stdout + third.stderr
        rebuilt = databases(url, f"{base}_tpl_")
        assert len(rebuilt) == 1 and template not in rebuilt, "a changed history gets a new template, the old dropped"
        assert not databases(url, f"{base}_clone_"), "the killed run's clone was dropped by the next run"
        assert keepers <= set(databases(url, f"{base}_", made_by_plugin=False)), "databases it did not make are kept"
    finally:
        for name in databases(url, f"{base}_", made_by_plugin=False):
            dbadmin.drop_database(server_url.set(database=name).render_as_string(hide_password=False))
        dbadmin.drop_database(url)
