"""seed --rows and seed --all on model shapes taken from real applications (tests/apps/arena).

Explicit Sequence keys, identity keys, nullable unique integers, unique numerics and bigints,
single- and joined-table inheritance three levels deep, a cycle of foreign keys, a composite
unique pair of foreign keys, an association table, CHECKs; a trigger that refuses rows and a
column type the generator does not know; a seed file that no longer imports.
"""
from pathlib import Path

import pytest

from test_seed_generic import app_template, fresh_copy

ARENA = Path(__file__).resolve().parent / "apps" / "arena" / "arena.py"
TABLES = ("teams", "users", "challenges", "dynamic_challenge", "timed_challenge", "challenge_tags", "tags",
          "solves", "pages", "tokens", "events", "tracking")


@pytest.fixture(scope="module")
def arena_template(tmp_path_factory, server_url):
    """The arena project, set up once."""
    yield from app_template(tmp_path_factory, server_url, ARENA)


@pytest.fixture
def arena(arena_template, server_url):
    """The arena project with a fresh database at head."""
    yield from fresh_copy(arena_template, server_url)


def counts(arena):
    """Return {table: rows} for every arena table."""
    return {table: arena.count(table) for table in TABLES}


def assert_whole_objects(db):
    """Every challenge row of a joined subclass has its rows down the chain, and no child row sits under another type."""
    assert db.scalar("SELECT count(*) FROM dynamic_challenge d JOIN challenges c USING (id) "
                     "WHERE c.type NOT IN ('dynamic', 'timed')") == 0
    assert db.scalar("SELECT count(*) FROM timed_challenge t JOIN challenges c USING (id) WHERE c.type <> 'timed'") == 0
    assert db.scalar("SELECT count(*) FROM challenges c WHERE c.type IN ('dynamic', 'timed') "
                     "AND NOT EXISTS (SELECT 1 FROM dynamic_challenge d WHERE d.id = c.id)") == 0
    assert db.scalar("SELECT count(*) FROM challenges c WHERE c.type = 'timed' "
                     "AND NOT EXISTS (SELECT 1 FROM timed_challenge t WHERE t.id = c.id)") == 0


def test_seed_all_fills_every_table_with_whole_objects(arena):
    result = arena.run("seed", "--all", "40")
    assert result.returncode == 0, result.stderr
    assert "Skipped" not in result.stderr and "Traceback" not in result.stderr
    db = arena.db
    assert counts(arena) == {"teams": 40, "users": 80, "challenges": 120, "dynamic_challenge": 80,
                             "timed_challenge": 40, "challenge_tags": 40, "tags": 40, "solves": 40, "pages": 40,
                             "tokens": 40, "events": 40, "tracking": 40}
    assert db.rows("SELECT type, count(*) FROM users GROUP BY type ORDER BY type") == [("admin", 40), ("user", 40)]
    assert db.rows("SELECT type, count(*) FROM challenges GROUP BY type ORDER BY type") == \
        [("dynamic", 40), ("standard", 40), ("timed", 40)]
    assert_whole_objects(db)
    # Explicit Sequence keys come from their sequences, which now stand past them: the application's next insert fits.
    assert db.scalar("SELECT max(id) FROM teams") == db.scalar("SELECT last_value FROM teams_id_seq")
    assert db.scalar("SELECT max(id) FROM challenges") == db.scalar("SELECT last_value FROM challenges_id_seq")
    db.execute("INSERT INTO teams (id, name) VALUES (nextval('teams_id_seq'), 'late')")
    # Unique integers, numerics and text that are not keys; the CHECKs.
    assert db.scalar("SELECT count(oauth_id) = count(DISTINCT oauth_id) FROM users")
    assert db.scalar("SELECT count(rank) = count(DISTINCT rank) FROM teams")
    assert db.scalar("SELECT count(DISTINCT position) FROM pages") == 40
    assert db.scalar("SELECT min(role) >= 1 AND max(role) <= 4 FROM users")
    assert {r[0] for r in db.rows("SELECT DISTINCT status FROM users")} <= {"active", "banned", "hidden"}
    assert {r[0] for r in db.rows("SELECT DISTINCT state FROM challenges")} == {"visible", "hidden"}
    assert db.scalar("SELECT count(DISTINCT (challenge_id, user_id)) FROM solves") == 40
    assert db.scalar("SELECT count(parent_id) FROM pages") > 20, "the self-reference points at earlier pages"
    # Two unique pairs sharing challenge_id (CTFd's solves): the second kept unique by a NULL team_id.
    assert db.scalar("SELECT count(team_id) FROM solves") == 0
    assert db.scalar("SELECT count(DISTINCT user_id) FROM tokens") == 40, "a partial unique index kept"
    # A UUIDType key (BINARY declared, uuid stored), a pair unique per team and day, CHECKs ordering two columns.
    assert db.scalar("SELECT count(DISTINCT id) FROM events") == 40
    assert db.scalar("SELECT count(DISTINCT (team_id, starts_on)) FROM events") == 40
    assert db.scalar("SELECT bool_and(starts_on <= ends_on AND opens_at < closes_at) FROM events")
    assert db.scalar("SELECT count(*) FROM events WHERE seats > capacity") == 0
    assert db.scalar("SELECT count(DISTINCT ends_on - starts_on) FROM events") > 5, "spans vary"


def test_a_joined_subclass_asked_for_gets_whole_objects_of_its_own_type(arena):
    assert arena.run("seed", "--rows", "Challenge=4").returncode == 0  # earlier challenges of every type
    result = arena.run("seed", "--rows", "DynamicChallenge=10")
    assert result.returncode == 0, result.stderr
    db = arena.db
    assert db.rows("SELECT type, count(*) FROM challenges GROUP BY type ORDER BY type") == \
        [("dynamic", 6), ("standard", 2), ("timed", 6)], "each asked model spread over itself and its subclasses"
    assert (arena.count("dynamic_challenge"), arena.count("timed_challenge")) == (12, 6)
    assert_whole_objects(db)
    result = arena.run("seed", "--rows", "timed_challenge=5")  # a subclass's own table means its objects
    assert result.returncode == 0, result.stderr
    assert (arena.count("challenges"), arena.count("dynamic_challenge"), arena.count("timed_challenge")) == (19, 17, 11)
    assert_whole_objects(db)


def test_a_trigger_that_refuses_rows_is_named_and_seed_all_goes_on_without_its_table(arena):
    arena.db.execute("CREATE FUNCTION no_tokens() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$BEGIN RAISE EXCEPTION 'tokens are issued by the application'; END$$")
    arena.db.execute("CREATE TRIGGER no_tokens BEFORE INSERT ON tokens FOR EACH ROW EXECUTE FUNCTION no_tokens()")
    result = arena.run("seed", "--rows", "users=5", "--rows", "tokens=5")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "The rows generated for tokens were refused by the database" in message, result.stderr
    assert "tokens are issued by the application" in message and "OVERRIDES" in message
    assert "Traceback" not in result.stderr and "Unexpected" not in result.stderr
    assert arena.count("users") == 0, "one transaction: nothing was written"
    result = arena.run("seed", "--all", "10")
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("Skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("Skipped tokens: The rows generated for tokens were refused"), \
        result.stderr
    assert arena.count("tokens") == 0 and arena.count("users") == 20 and arena.count("solves") == 10


def test_a_type_it_cannot_generate_names_the_override_and_seed_all_skips_its_dependants(arena, tmp_path):
    arena.db.execute("ALTER TABLE teams ADD COLUMN area point")
    project = copy_with(arena, tmp_path, "    captain_id = sa.Column(sa.Integer, sa.ForeignKey(",
                        "    area = sa.Column(sa.types.NullType(), nullable=False)\n")
    result = project.run("seed", "--rows", "teams=3")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "teams.area has type NULL, which seed --rows cannot generate" in message, result.stderr
    assert 'OVERRIDES = {"teams": {"area": lambda n: ...}}' in message
    result = project.run("seed", "--all", "5")
    assert result.returncode == 0, result.stderr
    assert "Skipped teams: teams.area has type NULL" in result.stderr
    assert project.count("teams") == 0 and project.count("users") == 10, "users.team_id may be NULL"
    (project.root / "seeds.py").write_text("OVERRIDES = {'teams': {'area': '(1,2)'}}\n")
    result = project.run("seed", "--rows", "teams=3")
    assert result.returncode == 0, result.stderr
    assert project.db.scalar("SELECT count(*) FROM teams WHERE area ~= point '(1,2)'") == 3


def test_a_seed_file_that_no_longer_imports_is_named_and_rows_are_generated_without_it(arena):
    (arena.root / "seeds.py").write_text("from arena import Player\n\nOVERRIDES = {'users': {'name': 'x'}}\n")
    try:
        result = arena.run("seed", "--rows", "users=6")
    finally:
        (arena.root / "seeds.py").unlink()
    assert result.returncode == 0, result.stderr
    assert "Note: the seed file seeds.py does not import (ImportError: cannot import name 'Player'" in result.stderr
    assert "Unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert arena.count("users") == 6 and arena.db.scalar("SELECT count(*) FROM users WHERE name = 'x'") == 0


def copy_with(arena, tmp_path, anchor, insert):
    """Return the arena project copied into tmp_path with insert placed before anchor in its models."""
    import shutil

    from test_seed_generic import Catalog

    root = tmp_path / "project"
    shutil.copytree(arena.root, root, ignore=shutil.ignore_patterns("__pycache__"))
    source = (root / "arena.py").read_text()
    (root / "arena.py").write_text(source.replace(anchor, insert + anchor, 1))
    return Catalog(root, arena.url)


def test_a_revision_naming_an_application_type_imports_its_module(arena_template, arena):
    """Alembic writes arena.UUIDType() without importing arena: the revision the tool writes imports it, and runs."""
    root, _ = arena_template
    revision = next((root / "migrations" / "versions").glob("*.py")).read_text()
    assert "import arena\n" in revision and "arena.UUIDType(" in revision
    assert arena.db.scalar("SELECT data_type FROM information_schema.columns "
                           "WHERE table_name = 'events' AND column_name = 'id'") == "uuid"


def test_a_parent_of_a_key_unique_per_row_gets_one_row_each(arena):
    """tokens.user_id is unique through a partial index (one live token per user): each token needs its own user."""
    result = arena.run("seed", "--rows", "tokens=5")
    assert result.returncode == 0, result.stderr
    assert "users has no rows and tokens.user_id needs one per row: 5 are generated too." in result.stderr
    assert arena.count("users") == 5 and arena.db.scalar("SELECT count(DISTINCT user_id) FROM tokens") == 5


def test_fixture_rows_of_a_table_with_a_partial_unique_index_are_added_by_their_natural_key(arena, tmp_path):
    """The natural key skips a partial unique index (its WHERE is an expression, not a key) instead of failing on it."""
    import json

    assert arena.run("seed", "--rows", "users=2").returncode == 0
    fixture = tmp_path / "tokens.json"
    fixture.write_text(json.dumps([{"user_id": 1, "value": "first"}, {"user_id": 2, "value": "second"}]))
    for _ in range(2):  # the second run finds both by their unique value and adds nothing
        result = arena.run("seed", "--fixture", str(fixture))
        assert result.returncode == 0, result.stderr
    assert arena.db.rows("SELECT user_id, value FROM tokens ORDER BY user_id") == [(1, "first"), (2, "second")]
