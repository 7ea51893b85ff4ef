"""seed on the skeleton: its seed file (idempotent sample), generated rows (--rows), fixtures, locks and Ctrl-C."""
import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from conftest import Database, cli_env

from db_manage_tool.seed import SEED_LOCK

SAMPLE = (3, 5, 6)
POSTS_SQL = """SELECT p.id, p.title, p.content, p.slug, p.published, p.status, u.username, u.email
               FROM posts p JOIN users u ON u.id = p.author_id ORDER BY p.id"""
INDEXES_SQL = "SELECT indexname FROM pg_indexes WHERE tablename = 'posts' ORDER BY 1"
CONSTRAINTS_SQL = "SELECT conname FROM pg_constraint WHERE conrelid = 'posts'::regclass ORDER BY 1"


def test_seed_twice_adds_nothing_and_keeps_hand_edits(cli, database):
    first = cli("seed")
    assert first.returncode == 0, first.stderr
    assert database.counts() == SAMPLE
    assert "Seeded: 3 users, 5 posts, 6 analytics.page_views added." in first.stderr
    database.execute("UPDATE users SET email = 'ada@lovelace.dev' WHERE username = 'ada'")
    database.execute("DELETE FROM posts WHERE slug = 'draft-ideas'")
    again = cli("seed")
    assert again.returncode == 0, again.stderr
    assert "Seeded: 0 users, 1 posts, 0 analytics.page_views added." in again.stderr
    assert database.scalar("SELECT email FROM users WHERE username = 'ada'") == "ada@lovelace.dev"
    assert database.counts() == SAMPLE, "a missing sample row comes back, nothing is duplicated"
    assert database.scalar("SELECT u.username FROM posts p JOIN users u ON u.id = p.author_id "
                           "WHERE p.slug = 'draft-ideas'") == "grace", "its author found by natural key"
    assert cli("seed").returncode == 0 and database.counts() == SAMPLE


def test_generated_rows_for_the_skeleton_models(cli, database):
    assert cli("seed").returncode == 0
    result = cli("seed", "--rows", "users=50", "--rows", "Post=2000", "--rows", "analytics.page_views=300")
    assert result.returncode == 0, result.stderr
    assert "Generating 2,350 rows (users 50, posts 2,000, analytics.page_views 300): about" in result.stderr
    assert database.counts() == (53, 2005, 306)
    assert database.scalar("SELECT count(DISTINCT author_id) FROM posts") > 40, "authors drawn from all users"
    assert database.scalar("SELECT count(DISTINCT slug) FROM posts") == 2005
    assert database.scalar("SELECT count(DISTINCT email) FROM users") == 53
    assert database.scalar("SELECT count(*) FROM users WHERE email !~ '^[a-z.]+[0-9]+@example\\.org$' "
                           "AND id > 3") == 0, "realistic e-mails, by column name"
    published = database.scalar("SELECT count(*) FROM posts WHERE published AND status = 'published' AND id > 5")
    assert 1200 < published < 1600, "OVERRIDES of app/seeds.py: 7 in 10 published, status to match"
    assert database.scalar("SELECT count(*) FROM posts WHERE NOT published AND status = 'draft'") > 400
    assert "Seeding" not in result.stderr, "no progress bar when the output is not a terminal"
    assert set(database.rows(INDEXES_SQL)) == {("ix_posts_author_id",), ("pk_posts",), ("uq_posts_slug",)}
    # On top: a second run numbers its rows after the first, still unique.
    assert cli("seed", "--rows", "users=10", "--rows", "posts=100").returncode == 0
    assert database.counts() == (63, 2105, 306)
    assert database.scalar("SELECT count(DISTINCT slug) FROM posts") == 2105


def test_large_runs_set_indexes_aside_and_rebuild_them(cli, database):
    database.execute("COMMENT ON INDEX ix_posts_author_id IS 'kept through a large seed'")
    before = database.rows(INDEXES_SQL), database.rows(CONSTRAINTS_SQL)
    result = cli("seed", "--rows", "users=200", "--rows", "posts=12000")
    assert result.returncode == 0, result.stderr
    assert (database.rows(INDEXES_SQL), database.rows(CONSTRAINTS_SQL)) == before
    assert database.scalar("SELECT obj_description('ix_posts_author_id'::regclass, 'pg_class')") == \
        "kept through a large seed"
    assert database.scalar("SELECT bool_and(convalidated) FROM pg_constraint WHERE conrelid = 'posts'::regclass")
    assert database.scalar("SELECT count(*) FROM posts") == 12000


def test_generated_rows_are_deterministic(cli, database, server_url, template_url):
    from conftest import sibling_url

    from db_manage_tool import dbadmin
    from sqlalchemy.engine import make_url

    other_url = sibling_url(server_url, "determinism")
    dbadmin.drop_database(other_url)
    dbadmin.create_database(other_url, template=make_url(template_url).database)
    try:
        for url in (database.url, other_url):
            assert cli("seed", url=url).returncode == 0
            assert cli("seed", "--rows", "users=20", "--rows", "posts=300", url=url).returncode == 0
        other = Database(other_url)
        users = "SELECT id, username, email FROM users ORDER BY id"
        assert database.rows(users) == other.rows(users)
        assert database.rows(POSTS_SQL) == other.rows(POSTS_SQL)
        assert len(database.rows(POSTS_SQL)) == 305
    finally:
        dbadmin.drop_database(other_url)


def test_a_seed_that_fails_halfway_writes_nothing(cli, database):
    assert cli("seed").returncode == 0
    database.execute("ALTER TABLE posts ADD CONSTRAINT short_content CHECK (length(content) < 300)")
    before = database.counts()
    result = cli("seed", "--rows", "users=10", "--rows", "posts=500")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "short_content" in errors[0] and "Traceback" not in result.stderr, result.stderr
    assert database.counts() == before, "neither the users nor the first posts stay behind"


def test_a_required_parent_with_no_rows_gets_a_few_and_says_so(cli, database):
    result = cli("seed", "--rows", "posts=100")
    assert result.returncode == 0, result.stderr
    assert "users has no rows and posts.author_id needs one: 11 are generated too." in result.stderr
    assert database.scalar("SELECT count(*) FROM users") == 11 and database.scalar("SELECT count(*) FROM posts") == 100
    assert database.scalar("SELECT count(DISTINCT author_id) FROM posts") > 5
    again = cli("seed", "--rows", "posts=10")  # users has rows now: none added
    assert again.returncode == 0 and "generated too" not in again.stderr
    assert database.scalar("SELECT count(*) FROM users") == 11


@pytest.mark.parametrize("argument, message", [
    ("users", "give MODEL=COUNT"), ("users=0", "COUNT must be from 1"), ("users=1.5", "give MODEL=COUNT"),
    ("users=99999999999999999999", "COUNT must be from 1"), ("nothing=5", "No model or table named 'nothing'"),
])
def test_bad_rows_are_usage_errors(cli, database, argument, message):
    result = cli("seed", "--rows", argument)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert database.counts() == (0, 0, 0)


def test_fixture_files_are_added_by_natural_key(cli, database, tmp_path):
    folder = tmp_path / "fixtures"
    folder.mkdir()
    (folder / "users.json").write_text(json.dumps([
        {"username": "ada", "email": "ada@example.com"}, {"username": "mary", "email": "mary@example.com"}]))
    (folder / "more.json").write_text(json.dumps({"posts": [
        {"slug": "fixture-post", "title": "From a fixture", "content": "Loaded twice, added once.",
         "author_id": {"username": "mary"}, "published": True, "status": "published"}]}))
    (folder / "analytics.page_views.csv").write_text(
        "url,user_agent,created_at\n/fixtures,curl/8.5.0,2025-02-01T10:00:00+00:00\n/empty-agent,,2025-02-01T11:00:00+00:00\n")
    first = cli("seed", "--fixture", str(folder))
    assert first.returncode == 0, first.stderr
    assert database.counts() == (2, 1, 2)
    assert database.scalar("SELECT u.username FROM posts p JOIN users u ON u.id = p.author_id") == "mary"
    assert database.scalar("SELECT user_agent IS NULL FROM analytics.page_views WHERE url = '/empty-agent'")
    database.execute("UPDATE users SET email = 'mary@elsewhere.org' WHERE username = 'mary'")
    again = cli("seed", "--fixture", str(folder))
    assert again.returncode == 0, again.stderr
    assert database.counts() == (2, 1, 2), "nothing added twice"
    assert database.scalar("SELECT email FROM users WHERE username = 'mary'") == "mary@elsewhere.org"
    # The sample seed file then adds what it has that the fixtures did not.
    assert cli("seed").returncode == 0
    assert database.counts() == (4, 6, 8)
    # A new user inserted by the application after fixtures with explicit ids takes the next free id.
    (folder / "users.json").write_text(json.dumps([{"id": 50, "username": "zed", "email": "zed@example.com"}]))
    assert cli("seed", "--fixture", str(folder / "users.json")).returncode == 0
    database.execute("INSERT INTO users (username, email) VALUES ('next', 'next@example.com')")
    assert database.scalar("SELECT id FROM users WHERE username = 'next'") == 51


def test_a_bad_fixture_is_one_sentence_and_changes_nothing(cli, database, tmp_path):
    good, bad = tmp_path / "users.json", tmp_path / "posts.json"
    good.write_text(json.dumps([{"username": "ada", "email": "ada@example.com"}]))
    bad.write_text('[{"slug": "x",}]')
    result = cli("seed", "--fixture", str(good), "--fixture", str(bad))
    assert result.returncode == 1
    assert f"The fixture {bad} is not valid JSON (line 1" in result.stderr and "Traceback" not in result.stderr
    assert database.counts() == (0, 0, 0)
    clash = tmp_path / "users.json"
    assert cli("seed").returncode == 0
    clash.write_text(json.dumps([{"username": "newguy", "email": "grace@example.com"}]))
    result = cli("seed", "--fixture", str(clash))
    assert result.returncode == 1
    assert "A row for users clashes with an existing one on uq_users_email" in result.stderr
    assert database.scalar("SELECT count(*) FROM users WHERE username = 'newguy'") == 0
    twice = tmp_path / "users.json"  # two rows with one key: the second would have been dropped unseen
    twice.write_text(json.dumps([{"username": "eve", "email": "eve@example.com"},
                                 {"username": "eve", "email": "eve2@example.com"}]))
    result = cli("seed", "--fixture", str(twice))
    assert result.returncode == 1
    assert "Two rows given for users have the same username (username='eve')" in result.stderr, result.stderr
    assert database.scalar("SELECT count(*) FROM users WHERE username = 'eve'") == 0
    unknown = tmp_path / "customers.json"
    unknown.write_text("[]")
    result = cli("seed", "--fixture", str(unknown))
    assert result.returncode == 1 and "names 'customers': No model or table named 'customers'" in result.stderr


def test_a_seed_function_returning_nonsense_writes_nothing(cli, project, database):
    seeds = project / "app" / "seeds.py"
    seeds.write_text(seeds.read_text() + "\n\n_sample = seed\n\n\ndef seed(connection):\n"
                     "    _sample(connection)\n    return {'users': 'three'}\n")
    result = cli("seed")
    assert result.returncode == 1
    assert "returned {'users': 'three'}: return {what: count} with whole numbers" in result.stderr
    assert "Unexpected" not in result.stderr and database.counts() == (0, 0, 0)


def test_progress_bar_with_rate_on_a_terminal(tty_cli, database):
    code, output = tty_cli("seed", "--rows", "users=10", "--rows", "posts=20000", answer="")
    assert code == 0, output
    assert "Seeding" in output and "100%" in output and "rows/s" in output
    assert database.counts() == (10, 20000, 0)


def test_a_second_seed_waits_for_the_first(project, database):
    engine = create_engine(database.url, poolclass=NullPool)
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEED_LOCK})  # a seed in progress
        waiting = subprocess.Popen([sys.executable, "db_manage.py", "seed", "--rows", "users=30"], cwd=project,
                                   env=cli_env(database.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not database.scalar(  # the seed asks for the lock again and again
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'db_manage.py seed %' AND query LIKE '%pg_try_advisory_xact_lock%'"):
            time.sleep(0.2)
        assert time.monotonic() < deadline, "the second seed never asked for the lock"
        assert waiting.poll() is None, "the second seed waits"
        assert database.counts() == (0, 0, 0)
        holder.rollback()
    engine.dispose()
    _, stderr = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, stderr
    assert "Another seed is running on this database: waiting for it to finish." in stderr
    assert database.counts() == (30, 0, 0)


def test_two_seeds_at_once_both_add_their_rows(project, database):
    assert subprocess.run([sys.executable, "db_manage.py", "seed"], cwd=project, env=cli_env(database.url),
                          capture_output=True).returncode == 0
    runs = [subprocess.Popen([sys.executable, "db_manage.py", "seed", "--rows", "users=300", "--rows", "posts=3000"],
                             cwd=project, env=cli_env(database.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert all(code == 0 for code, _ in results), results
    assert database.counts() == (603, 6005, 6)
    assert database.scalar("SELECT count(DISTINCT slug) FROM posts") == 6005


def test_ctrl_c_mid_run_writes_nothing(project, database):
    def controlling_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    indexes, constraints = database.rows(INDEXES_SQL), database.rows(CONSTRAINTS_SQL)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "db_manage.py", "seed", "--rows", "users=1000", "--rows",
                             "posts=5000000"], cwd=project, env=cli_env(database.url), stdin=slave, stdout=slave,
                            stderr=slave, preexec_fn=controlling_terminal)
    os.close(slave)
    output, deadline, sent = b"", time.monotonic() + 90, False
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                output += os.read(master, 4096)
            except OSError:
                break
        if not sent and output.count(b"rows/s") >= 3:
            os.write(master, b"\x03")  # Ctrl-C, as typed: SIGINT to the terminal's foreground process group
            sent = True
        if proc.poll() is not None:
            break
    os.close(master)
    if proc.poll() is None:
        proc.kill()
    text_output = output.decode(errors="replace")
    assert sent, text_output
    assert proc.wait() == 130, text_output
    assert "Interrupted: the seed was rolled back, nothing was written." in text_output
    assert "Traceback" not in text_output and "Unexpected" not in text_output
    assert database.counts() == (0, 0, 0)
    assert (database.rows(INDEXES_SQL), database.rows(CONSTRAINTS_SQL)) == (indexes, constraints)


def test_a_fixture_given_twice_is_read_once_and_generated_rows_count_beside_it(project, database):
    fixture = project / "fx" / "users.json"
    fixture.parent.mkdir()
    fixture.write_text('[{"username": "twice", "email": "twice@example.com"}]')
    result = subprocess.run([sys.executable, "db_manage.py", "seed", "--fixture", "fx/users.json", "--fixture",
                             "fx", "--rows", "users=2"], cwd=project, env=cli_env(database.url),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Seeded: 3 users added." in result.stderr, result.stderr
    assert database.counts() == (3, 0, 0)
    assert database.scalar("SELECT count(*) FROM users WHERE username = 'twice'") == 1


def test_sigterm_mid_seed_is_one_sentence_and_writes_nothing(project, database):
    seed = subprocess.Popen([sys.executable, "db_manage.py", "seed", "--rows", "users=3000000"], cwd=project,
                            env=cli_env(database.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    copying = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY%users%' "
               "AND state = 'active'")
    deadline = time.monotonic() + 120
    while not database.scalar(copying) and seed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seed.poll() is None, seed.communicate()
    seed.send_signal(signal.SIGTERM)
    _, stderr = seed.communicate(timeout=120)
    assert seed.returncode == 143, stderr
    assert "Error: Stopped by SIGTERM: the command stopped; a transaction it had open was rolled back." in stderr
    assert "Traceback" not in stderr
    assert database.counts() == (0, 0, 0)
