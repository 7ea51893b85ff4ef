"""seed --rows on an application that is not the skeleton (tests/apps/catalog): every column kind and constraint.

The catalog has a UUID key made in Python, JSONB, an ARRAY, an enum, a self-reference, an
association table, a composite unique constraint, CHECKs with a range, an IN list, a length
and a BETWEEN, a unique varchar(8), and one CHECK (a week at most between starts_at and
ends_at) the generator cannot read; it has no seed file. Its project (db_manage.py, db_manage_tool/, catalog.py, .flaskenv)
is made once per module with `setup`, which writes its initial migration; each test gets a
fresh database cloned from the one setup migrated.
"""
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import ROOT, Database, cli_env, sibling_url

from db_manage_tool import dbadmin

CATALOG = Path(__file__).resolve().parent / "apps" / "catalog" / "catalog.py"
TABLES = ("categories", "vendors", "tags", "products", "product_tags", "events")
ALL = ["--rows", "categories=60", "--rows", "Vendor=25", "--rows", "tags=40", "--rows", "products=600",
       "--rows", "product_tags=900"]
# Every column but those the server fills (created_at's now() differs between runs).
STATE = {
    "categories": "SELECT id, name, parent_id FROM categories ORDER BY id",
    "vendors": "SELECT * FROM vendors ORDER BY id",
    "tags": "SELECT * FROM tags ORDER BY id",
    "products": "SELECT id, vendor_id, category_id, sku, title, description, price, size, condition, keywords, "
                "attributes, released_on, opens_at, warranty, stock, rating, active, updated_at FROM products ORDER BY id",
    "product_tags": "SELECT * FROM product_tags ORDER BY product_id, tag_id",
}


class Catalog:
    """The catalog project and one database of it."""

    def __init__(self, root, url):
        self.root, self.url, self.db = root, url, Database(url)

    def run(self, *args, timeout=120):
        """Run db_manage.py ARGS in the project against this database."""
        return subprocess.run([sys.executable, "db_manage.py", *args], cwd=self.root, env=cli_env(self.url),
                              capture_output=True, text=True, timeout=timeout)

    def count(self, table):
        """Return the rows of table."""
        return self.db.scalar(f"SELECT count(*) FROM {table}")  # table: one of TABLES


@pytest.fixture(scope="module")
def catalog_template(tmp_path_factory, server_url):
    """The catalog project, set up once: its initial migration written and applied to a template database."""
    yield from app_template(tmp_path_factory, server_url, CATALOG)


def app_template(tmp_path_factory, server_url, source):
    """Yield (folder, template URL) of a one-module project made of source, set up once (its migration written)."""
    name = source.stem
    root = tmp_path_factory.mktemp(name)
    shutil.copy2(ROOT / "db_manage.py", root / "db_manage.py")
    shutil.copytree(ROOT / "db_manage_tool", root / "db_manage_tool", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(source, root / source.name)
    (root / ".flaskenv").write_text(f"FLASK_APP={name}:create_app()\n")
    url = sibling_url(server_url, f"{name}_{uuid.uuid4().hex[:8]}")
    result = subprocess.run([sys.executable, "db_manage.py", "setup"], cwd=root, env=cli_env(url),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    yield root, url
    dbadmin.drop_database(url)


def fresh_copy(template, server_url):
    """Yield a Catalog-like project on a fresh database cloned from template ((folder, URL)), dropped after."""
    root, template_url = template
    url = sibling_url(server_url, uuid.uuid4().hex[:12])
    dbadmin.create_database(url, template=make_url(template_url).database)
    yield Catalog(root, url)
    dbadmin.drop_database(url)


@pytest.fixture
def catalog(catalog_template, server_url):
    """The catalog project with a fresh database at head."""
    yield from fresh_copy(catalog_template, server_url)


def test_every_table_gets_rows_that_keep_its_constraints(catalog):
    result = catalog.run("seed", *ALL)
    assert result.returncode == 0, result.stderr
    assert "Generating 1,625 rows (categories 60, vendors 25, tags 40, products 600, product_tags 900)" in result.stderr
    db = catalog.db
    assert [catalog.count(t) for t in TABLES[:5]] == [60, 25, 40, 600, 900]
    # A self-reference: most categories have a parent among the others.
    assert 40 < db.scalar("SELECT count(parent_id) FROM categories") < 60
    # UUID keys made by the generator, unique; a varchar(8) unique column; realistic e-mails and phones.
    assert db.scalar("SELECT count(DISTINCT id) FROM vendors") == 25
    assert db.scalar("SELECT max(char_length(code)) FROM vendors") <= 8
    assert db.scalar("SELECT count(DISTINCT code) FROM vendors") == 25
    assert db.scalar("SELECT count(*) FROM vendors WHERE email !~ '^[a-z.]+[0-9]+@example\\.org$'") == 0
    assert db.scalar("SELECT count(*) FROM vendors WHERE char_length(country_code) <> 2") == 0
    assert db.scalar("SELECT bool_and(jsonb_typeof(settings) = 'object') FROM vendors")
    # The CHECKs: a range, an IN list, a length, a BETWEEN; a composite unique constraint.
    low, high = db.rows("SELECT min(price), max(price) FROM products")[0]
    assert 0 <= low and high <= 10000
    assert {row[0] for row in db.rows("SELECT DISTINCT size FROM products")} == {"S", "M", "L", "XL"}
    assert db.scalar("SELECT min(char_length(sku)) FROM products") >= 4
    assert db.scalar("SELECT min(stock) >= 0 AND max(stock) <= 500 FROM products")
    assert db.scalar("SELECT count(DISTINCT (vendor_id, sku)) FROM products") == 600
    # An enum, an ARRAY, JSONB, dates, times, intervals; nullable columns sometimes NULL, required ones never.
    assert {row[0] for row in db.rows("SELECT DISTINCT condition::text FROM products")} == {"new", "used",
                                                                                              "refurbished"}
    assert db.scalar("SELECT max(cardinality(keywords)) FROM products") <= 3
    assert db.scalar("SELECT count(*) FROM products WHERE keywords IS NOT NULL AND cardinality(keywords) > 0") > 100
    assert db.scalar("SELECT count(*) FROM products WHERE jsonb_typeof(attributes) = 'object'") > 400
    assert 20 < db.scalar("SELECT count(*) FROM products WHERE description IS NULL") < 120
    assert db.scalar("SELECT count(*) FROM products WHERE warranty > interval '0' AND opens_at IS NOT NULL") > 400
    assert db.scalar("SELECT count(DISTINCT released_on) FROM products") > 200
    assert db.scalar("SELECT count(DISTINCT vendor_id) FROM products") == 25, "foreign keys drawn from every vendor"
    # Server defaults are the server's: one transaction, one now().
    assert db.scalar("SELECT count(DISTINCT created_at) FROM products") == 1
    # The association table: distinct pairs of existing rows.
    assert db.scalar("SELECT count(DISTINCT (product_id, tag_id)) FROM product_tags") == 900
    # On top: a second run adds as many again, all still unique.
    again = catalog.run("seed", *ALL)
    assert again.returncode == 0, again.stderr
    assert [catalog.count(t) for t in TABLES[:5]] == [120, 50, 80, 1200, 1800]


def test_the_same_command_on_the_same_rows_writes_the_same_data(catalog, catalog_template, server_url):
    root, template = catalog_template
    other_url = sibling_url(server_url, uuid.uuid4().hex[:12])
    dbadmin.create_database(other_url, template=make_url(template).database)
    try:
        other = Catalog(root, other_url)
        for project in (catalog, other):
            result = project.run("seed", *ALL)
            assert result.returncode == 0, result.stderr
        for table, query in STATE.items():
            assert catalog.db.rows(query) == other.db.rows(query), table
    finally:
        dbadmin.drop_database(other_url)


def test_a_check_it_cannot_read_is_named_and_overrides_supply_the_columns(catalog, tmp_path):
    result = catalog.run("seed", "--rows", "events=5")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "The CHECK constraint ck_events_window on events (starts_at < ends_at AND ends_at - starts_at <= " \
           "interval '7 days')" in errors[0], errors
    assert 'OVERRIDES = {"events": {' in errors[0] and "Traceback" not in result.stderr
    assert "Generating" not in result.stderr, "refused before anything is written"
    assert catalog.count("events") == 0
    project = Catalog(tmp_path / "project", catalog.url)
    shutil.copytree(catalog.root, project.root, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copytree(catalog.root / "migrations", project.root / "migrations")
    (project.root / "seeds.py").write_text(
        "from datetime import datetime, timedelta, timezone\n\n"
        "T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)\n"
        "OVERRIDES = {\n"
        "    'events': {'starts_at': lambda n: T0 + timedelta(days=n),\n"
        "               'ends_at': lambda n: T0 + timedelta(days=n, hours=3), 'title': 'Spring sale'},\n"
        "}\n")
    result = project.run("seed", "--rows", "events=5")
    assert result.returncode == 0, result.stderr
    assert project.db.rows("SELECT title, ends_at - starts_at FROM events ORDER BY id")[0][0] == "Spring sale"
    assert project.db.scalar("SELECT count(*) FROM events WHERE ends_at - starts_at = interval '3 hours'") == 5


def test_an_association_table_cannot_have_more_pairs_than_exist(catalog):
    assert catalog.run("seed", "--rows", "vendors=2", "--rows", "products=3").returncode == 0
    result = catalog.run("seed", "--rows", "tags=2", "--rows", "product_tags=7")  # the tags asked for: 2
    assert result.returncode == 1
    assert "product_tags needs (product_id, tag_id) unique and has only 6 combinations" in result.stderr
    assert catalog.count("product_tags") == 0 and catalog.count("tags") == 0
    assert catalog.run("seed", "--rows", "tags=2", "--rows", "product_tags=6").returncode == 0
    assert catalog.count("product_tags") == 6
    result = catalog.run("seed", "--rows", "product_tags=8")  # not asked for: the parents too few get more rows
    assert result.returncode == 0, result.stderr
    assert "needs more, for distinct combinations" in result.stderr and "are generated too." in result.stderr
    assert catalog.count("product_tags") == 14 and catalog.count("tags") * catalog.count("products") >= 14
    assert catalog.db.scalar("SELECT count(DISTINCT (product_id, tag_id)) FROM product_tags") == 14


def test_a_table_the_server_fills_alone_gets_its_rows(catalog):
    result = catalog.run("seed", "--rows", "visits=25")
    assert result.returncode == 0, result.stderr
    assert catalog.db.rows("SELECT count(*), min(id), max(id) FROM visits") == [(25, 1, 25)]


def test_inheritance_cycles_and_shared_unique_columns(catalog):
    result = catalog.run("seed", "--rows", "Admin=1", "--rows", "admin=2")
    assert result.returncode == 2 and "Admin is asked for twice" in result.stderr, result.stderr  # one model, two names
    assert catalog.db.scalar("SELECT count(*) FROM accounts") == 0
    result = catalog.run("seed", "--rows", "Admin=41")
    assert result.returncode == 0, result.stderr
    assert catalog.db.rows("SELECT kind, count(*) FROM accounts GROUP BY kind ORDER BY kind") == [("admin", 41)]
    result = catalog.run("seed", "--rows", "Account=40")
    assert result.returncode == 0, result.stderr
    assert catalog.db.rows("SELECT kind, count(*) FROM accounts GROUP BY kind ORDER BY kind") == \
        [("account", 20), ("admin", 61)], "the identities of the models stored in the table, and no other"
    result = catalog.run("seed", "--rows", "accounts=10", "--rows", "Admin=1")  # the table, and one model more
    assert result.returncode == 0, result.stderr
    assert catalog.db.rows("SELECT kind, count(*) FROM accounts GROUP BY kind ORDER BY kind") == \
        [("account", 25), ("admin", 67)]
    result = catalog.run("seed", "--rows", "players=30", "--rows", "teams=5")
    assert result.returncode == 0, result.stderr
    assert "Generating 35 rows (teams 5, players 30)" in result.stderr, "the cycle's nullable side first"
    assert catalog.db.scalar("SELECT count(DISTINCT team_id) FROM players") == 5
    result = catalog.run("seed", "--rows", "vendors=3", "--rows", "tags=3", "--rows", "memberships=5")
    assert result.returncode == 0, result.stderr  # two unique pairs sharing team_id: the second kept by NULLs
    assert catalog.db.rows("SELECT count(*), count(DISTINCT (team_id, vendor_id)), count(tag_id) FROM memberships") \
        == [(5, 5, 0)]


def test_seed_without_a_seed_file_says_where_to_write_one(catalog):
    result = catalog.run("seed")
    assert result.returncode == 1
    assert "This application has no seed data: write seeds.py with a function seed(connection)" in result.stderr
    assert "seed --rows MODEL=N` needs no seed file" in result.stderr
    assert "    from db_manage_tool.seeding import add_all" in result.stderr
    assert not (catalog.root / "seeds.py").exists()
