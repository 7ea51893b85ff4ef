"""seed: the sample set is idempotent, the generated one deterministic and all-or-nothing."""
from conftest import Database

from app.seeds import post_lines

SAMPLE = (3, 5, 6)
POSTS_SQL = """SELECT p.id, p.title, p.content, p.slug, p.published, p.created_at, p.updated_at, u.username
               FROM posts p JOIN users u ON u.id = p.author_id ORDER BY p.id"""


def test_seed_twice_adds_nothing_and_keeps_hand_edits(cli, database):
    assert cli("seed").returncode == 0
    assert database.counts() == SAMPLE
    database.execute("UPDATE users SET email = 'ada@lovelace.dev' WHERE username = 'ada'")
    database.execute("DELETE FROM posts WHERE slug = 'draft-ideas'")
    again = cli("seed")
    assert again.returncode == 0, again.stderr
    assert database.scalar("SELECT email FROM users WHERE username = 'ada'") == "ada@lovelace.dev"
    assert database.counts() == SAMPLE, "a missing sample row comes back, nothing is duplicated"
    assert cli("seed").returncode == 0 and database.counts() == SAMPLE


def test_generated_rows_counts_and_spread(cli, database):
    result = cli("seed", "--users", "50", "--posts", "2000")
    assert result.returncode == 0, result.stderr
    assert database.counts() == (53, 2005, 6)
    assert database.scalar("SELECT count(DISTINCT author_id) FROM posts") > 40
    assert database.scalar("SELECT count(DISTINCT slug) FROM posts") == 2005
    assert database.scalar("SELECT count(DISTINCT email) FROM users") == 53
    days = database.scalar("SELECT extract(day FROM max(created_at) - min(created_at)) FROM posts")
    assert days > 300, "timestamps are spread over time"
    assert "Seeding" not in result.stderr, "no progress bar when the output is not a terminal"
    # On top: a second run adds as many again, still unique.
    assert cli("seed", "--users", "10", "--posts", "100").returncode == 0
    assert database.counts() == (63, 2105, 6)


def test_generated_rows_are_deterministic(cli, database, database_url, server_url, template_url):
    from conftest import sibling_url

    from db_manage_tool import dbadmin
    from sqlalchemy.engine import make_url

    other_url = sibling_url(server_url, "determinism")
    dbadmin.drop_database(other_url)
    dbadmin.create_database(other_url, template=make_url(template_url).database)
    try:
        for url in (database_url, other_url):
            assert cli("seed", "--users", "20", "--posts", "300", url=url).returncode == 0
        other = Database(other_url)
        assert database.rows("SELECT * FROM users ORDER BY id") == other.rows("SELECT * FROM users ORDER BY id")
        assert database.rows(POSTS_SQL) == other.rows(POSTS_SQL)
        assert len(database.rows(POSTS_SQL)) == 305
    finally:
        dbadmin.drop_database(other_url)


def test_a_seed_that_fails_halfway_writes_nothing(cli, database):
    assert cli("seed").returncode == 0
    author_ids = [row[0] for row in database.rows("SELECT id FROM users ORDER BY id")]
    # Take the slug the 20th generated post will have: numbered after 6 posts (5 sample, 1 by hand),
    # authors drawn from the 3 sample users and 10 generated ones.
    ids_after_users = author_ids + list(range(author_ids[-1] + 1, author_ids[-1] + 11))
    slug = list(post_lines(6, 20, ids_after_users))[-1].split("\t")[2]
    database.execute("INSERT INTO posts (title, content, slug, author_id) VALUES ('x', 'x', :slug, :a)",
                     slug=slug, a=author_ids[0])
    before = database.counts()
    result = cli("seed", "--users", "10", "--posts", "50")
    assert result.returncode == 1
    assert "uq_posts_slug" in result.stderr and "Traceback" not in result.stderr
    assert database.counts() == before, "neither the users nor the first posts stay behind"


def test_progress_bar_on_a_terminal(tty_cli, database):
    code, output = tty_cli("seed", "--users", "10", "--posts", "20000", answer="")
    assert code == 0, output
    assert "Seeding" in output and "100%" in output
    assert database.counts() == (13, 20005, 6)
