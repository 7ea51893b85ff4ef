"""The tool apart from the demo app (issue 11): an existing application adopts db_manage.py, as the README says.

tests/apps/storefront is another project, laid out as tutorial Flask apps are: a package
`storefront/` with an application factory, an `errors/` blueprint package, no naming convention,
and a migrations folder made by Flask-Migrate's `flask db init` with a hand-written history
(batch_alter_table, raw SQL: a function and a functional unique index). Each test works on a
temporary copy of it, adopted as the README's steps say:

  (a) copy db_manage.py and db_manage_tool/ into the project's root (beside migrations/);
  (b) say where the application is: FLASK_APP=storefront:create_app() in .flaskenv
      (or --app on every command);
  (c) `python db_manage.py adopt` (the tests before (c) run the application's own env.py).

Every command then runs against a fresh database of the real PostgreSQL server, and the tests
assert on that database's state.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TOOL_TABLES, Database, cli_env
from db_manage_tool import dbadmin

STOREFRONT = Path(__file__).resolve().parent / "apps" / "storefront"
APP = "storefront:create_app()"
REVISIONS = [  # oldest first: (revision, message)
    ("1a2b3c4d5e6f", "customers and products"),
    ("2b3c4d5e6f70", "orders"),
    ("3c4d5e6f7081", "customer name and sku index"),
    ("4d5e6f708192", "product active flag"),
]
HEAD = REVISIONS[-1][0]
APP_TABLES = {"public.customers", "public.products", "public.orders"}
FUNCTION = "customer_order_count(integer)"
INDEXES = {"customers_pkey", "uq_customers_email_lower", "products_pkey", "products_sku_key", "ix_products_sku",
           "orders_pkey"}
TOOL_MARKER = "db_manage_tool.environment"

# Flask-Migrate 2.x's env.py (flask db init of 2.5-2.7), as many older projects still have it.
FLASK_MIGRATE_2_ENV = '''from __future__ import with_statement

import logging
from logging.config import fileConfig

from sqlalchemy import engine_from_config
from sqlalchemy import pool

from alembic import context

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
fileConfig(config.config_file_name)
logger = logging.getLogger('alembic.env')

# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
from flask import current_app
config.set_main_option(
    'sqlalchemy.url',
    current_app.config.get('SQLALCHEMY_DATABASE_URI').replace('%', '%%'))
target_metadata = current_app.extensions['migrate'].db.metadata


def run_migrations_offline():
    """Run migrations in 'offline' mode."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode."""

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    connectable = engine_from_config(
        config.get_section(config.config_ini_section),
        prefix='sqlalchemy.',
        poolclass=pool.NullPool,
    )

    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            process_revision_directives=process_revision_directives,
            **current_app.extensions['migrate'].configure_args
        )

        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''


class Storefront:
    """A temporary copy of the storefront project after steps (a) and (b), and its database."""

    def __init__(self, root, url):
        self.root, self.url, self.db = root, url, Database(url)
        self.env_py = root / "migrations" / "env.py"

    def run(self, *args, timeout=120, env=None):
        """Run `python db_manage.py ARGS` in the copy; check that it failed (if at all) in one sentence."""
        command = [sys.executable, "db_manage.py", *args]
        result = subprocess.run(command, cwd=self.root, env=cli_env(self.url, env), capture_output=True, text=True,
                                timeout=timeout)
        output = result.stdout + result.stderr
        assert "Traceback" not in output and "Unexpected" not in output, output
        database_lines = [line for line in output.splitlines() if line.startswith("Database:")]
        assert len(database_lines) <= 1, output
        return result

    def ok(self, *args, **kwargs):
        """Run a command that must succeed; return its result."""
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result

    def versions(self):
        """Return the names of the revision files."""
        return sorted(p.name for p in (self.root / "migrations" / "versions").glob("*.py"))

    def indexes(self):
        """Return the names of the indexes of the app's tables."""
        return {name for (name,) in self.db.rows(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename IN ('customers', 'products', 'orders')")}

    def has_function(self):
        """Return True when the migrations' SQL function exists."""
        return self.db.scalar("SELECT to_regprocedure(:signature) IS NOT NULL", signature=FUNCTION)

    def add_rows(self):
        """Insert two customers, a product and an order."""
        self.db.execute("INSERT INTO customers (email, name) VALUES ('ada@example.com', 'Ada'), "
                        "('bob@example.com', 'Bob')")
        self.db.execute("INSERT INTO products (sku, name, price) VALUES ('MUG-1', 'Mug', 7.50)")
        self.db.execute("INSERT INTO orders (customer_id, placed_at) "
                        "SELECT id, now() FROM customers WHERE email = 'ada@example.com'")

    def counts(self):
        """Return {table: rows} of the app's tables."""
        return {t: self.db.scalar(f"SELECT count(*) FROM {t.split('.')[1]}")  # names: this file's constants
                for t in sorted(APP_TABLES)}

    def assert_at_head(self):
        """Assert that the database holds the app's schema at head: tables, columns, function and indexes."""
        assert self.db.revision() == HEAD
        assert APP_TABLES <= self.db.tables()
        assert set(self.db.columns("customers")) == {"id", "email", "name", "created_at"}
        assert set(self.db.columns("products")) == {"id", "sku", "name", "price", "active"}
        assert set(self.db.columns("orders")) == {"id", "customer_id", "placed_at"}
        assert self.has_function()
        assert INDEXES <= self.indexes()
        assert self.db.scalar("SELECT count(*) FROM pg_constraint WHERE conname = 'products_price_check'") == 1

    def assert_email_unique_whatever_its_case(self):
        """Assert that the functional unique index refuses a second e-mail differing only in case."""
        self.db.execute("INSERT INTO customers (email) VALUES ('Case@Example.com')")
        with pytest.raises(Exception, match="uq_customers_email_lower"):
            self.db.execute("INSERT INTO customers (email) VALUES ('case@example.COM')")
        self.db.execute("DELETE FROM customers WHERE lower(email) = 'case@example.com'")


@pytest.fixture
def storefront(tmp_path, missing_database_url):
    """A copy of tests/apps/storefront after adoption steps (a) and (b); its database does not exist yet."""
    root = tmp_path / "storefront"
    shutil.copytree(STOREFRONT, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert not (root / "app").exists() and not (root / "run.py").exists()
    # (a) the tool beside migrations/
    shutil.copy2(ROOT / "db_manage.py", root / "db_manage.py")
    shutil.copytree(ROOT / "db_manage_tool", root / "db_manage_tool", ignore=shutil.ignore_patterns("__pycache__"))
    # (b) where the application is
    (root / ".flaskenv").write_text(f"FLASK_APP={APP}\n")
    return Storefront(root, missing_database_url)


@pytest.fixture
def adopted(storefront):
    """The copy after step (c): `adopt` put the tool's env.py in place."""
    storefront.ok("adopt")
    assert TOOL_MARKER in storefront.env_py.read_text()
    return storefront


def test_flaskenv_says_where_the_application_is(storefront):
    result = storefront.run("setup")
    assert result.returncode == 0, result.stderr
    assert storefront.db.revision() == HEAD


def test_stock_env_before_adopt(storefront):
    """Flask-Migrate's own env.py (flask db init of 4.x): setup, upgrade, downgrade and reset work, with a note."""
    before = storefront.versions()
    result = storefront.ok("setup")
    assert storefront.versions() == before, "setup must not write a revision on top of a history"
    storefront.assert_at_head()
    assert "public.db_manage_metadata" not in storefront.db.tables(), "the stock env.py records nothing"
    storefront.assert_email_unique_whatever_its_case()
    assert "Warning" not in result.stderr, result.stderr

    result = storefront.ok("downgrade", "-1")
    assert "adopt" in result.stderr
    assert storefront.db.revision() == REVISIONS[-2][0]
    assert "active" not in storefront.db.columns("products")
    storefront.ok("upgrade")
    storefront.assert_at_head()

    storefront.add_rows()
    result = storefront.ok("reset", "--yes", timeout=60)
    assert "adopt" in result.stderr
    storefront.assert_at_head()
    assert storefront.counts() == {t: 0 for t in APP_TABLES}
    storefront.assert_email_unique_whatever_its_case()
    assert storefront.versions() == before


def test_flask_migrate_2_env_before_adopt(storefront):
    """An env.py of Flask-Migrate 2.x (its own engine, process_revision_directives passed beside configure_args)."""
    storefront.env_py.write_text(FLASK_MIGRATE_2_ENV)
    before = storefront.versions()
    storefront.ok("setup")
    storefront.assert_at_head()

    storefront.ok("downgrade")
    assert storefront.db.revision() == REVISIONS[-2][0]
    assert "active" not in storefront.db.columns("products")
    storefront.ok("upgrade")
    storefront.assert_at_head()

    result = storefront.ok("migrate", "nothing changed")
    assert "TypeError" not in result.stderr
    assert "No changes in schema detected" in result.stderr
    assert storefront.versions() == before

    storefront.add_rows()
    result = storefront.ok("reset", "--yes", timeout=60)
    assert "adopt" in result.stderr
    storefront.assert_at_head()
    assert storefront.counts() == {t: 0 for t in APP_TABLES}
    assert storefront.env_py.read_text() == FLASK_MIGRATE_2_ENV, "nothing of the application is edited"


def test_adopt_keeps_the_old_env_and_is_idempotent(storefront):
    original = storefront.env_py.read_bytes()
    kept = storefront.env_py.with_name("env.py.orig")
    result = storefront.ok("adopt")
    assert TOOL_MARKER in storefront.env_py.read_text()
    assert kept.read_bytes() == original
    assert "env.py.orig" in result.stderr

    files = {p.name: p.read_bytes() for p in storefront.env_py.parent.iterdir() if p.is_file()}
    result = storefront.ok("adopt")
    assert "nothing to do" in result.stderr
    assert {p.name: p.read_bytes() for p in storefront.env_py.parent.iterdir() if p.is_file()} == files
    assert (storefront.root / "storefront" / "models.py").read_text() == \
        (STOREFRONT / "storefront" / "models.py").read_text()


def test_adopt_carries_over_settings_and_refuses_code_it_would_lose(storefront):
    """An env.py with per-migration transactions, a plug-in import, a self-contained include_name and an
    include_object that uses a module-level name: adopt names the last and changes nothing; with --force it
    adopts, carrying the rest over."""
    source = storefront.env_py.read_text().replace(
        "def run_migrations_online():",
        "LEGACY = {'legacy_audit'}\n\n\ndef include_object(object, name, type_, reflected, compare_to):\n"
        "    return name not in LEGACY\n\n\ndef include_name(name, type_, parent_names):\n"
        "    return not (type_ == 'table' and name.startswith('tmp_'))\n\n\ndef run_migrations_online():").replace(
        "            **conf_args", "            include_object=include_object,\n            include_name=include_name,"
        "\n            transaction_per_migration=True,\n            **conf_args").replace(
        "import logging\n", "import logging\nimport json  # noqa: F401 (stands for a plug-in imported for its effect)\n")
    assert "include_object=include_object" in source and "import json" in source
    storefront.env_py.write_text(source)
    refused = storefront.run("adopt")
    assert refused.returncode == 1 and "include_object=include_object" in refused.stderr, refused.stderr
    assert "include_name" not in refused.stderr, "a self-contained function is carried over, not refused"
    assert "--force" in refused.stderr and len(refused.stderr.strip().splitlines()) == 2  # the database line, then it
    assert storefront.env_py.read_text() == source and not storefront.env_py.with_name("env.py.orig").exists()

    forced = storefront.ok("adopt", "--force")
    written = storefront.env_py.read_text()
    assert "run(include_name=include_name, transaction_per_migration=True)" in written
    assert "\nimport json  # carried over from your env.py\n" in written
    assert "def include_name(name, type_, parent_names):" in written and "LEGACY" not in written
    assert "Not carried over" in forced.stderr and "include_object" in forced.stderr
    assert storefront.env_py.with_name("env.py.orig").read_text() == source
    storefront.ok("setup")
    storefront.assert_at_head()


def test_an_older_stack_is_refused_before_anything_changes(storefront, tmp_path):
    """An environment whose SQLAlchemy and Flask-SQLAlchemy are older than the tool supports (as an application
    pinned to SQLAlchemy 1.4 would install them): every command refuses in one sentence, adopt included; no
    file is written and no database created."""
    older = tmp_path / "older"  # found before site-packages, as the installed releases would be
    for name, version in (("SQLAlchemy", "1.4.54"), ("Flask-SQLAlchemy", "2.5.1")):
        info = older / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    files = {p: p.read_bytes() for p in storefront.root.rglob("*") if p.is_file()}
    for command in (("adopt",), ("setup",), ("status",), ("upgrade",)):
        result = storefront.run(*command, env={"PYTHONPATH": str(older)})
        assert result.returncode == 1, (command, result.stderr)
        assert [line for line in result.stderr.splitlines() if not line.startswith("$ flask db")] == [
            "Error: This environment has SQLAlchemy 1.4.54, Flask-SQLAlchemy 2.5.1, older than db-manage supports "
            "(SQLAlchemy 2.0.20, Flask-SQLAlchemy 3.0.5, Flask-Migrate 4.0, alembic 1.12 or newer): upgrade the "
            "application's pins to use the tool; nothing was changed."], result.stderr
    assert {p: p.read_bytes() for p in storefront.root.rglob("*") if p.is_file()} == files
    assert not dbadmin.database_exists(storefront.url)


def test_setup_and_inspection_after_adopt(adopted):
    """setup on a missing database, then check, history, current, heads and status."""
    before = adopted.versions()
    result = adopted.ok("setup")
    assert "created" in result.stderr
    assert adopted.versions() == before
    adopted.assert_at_head()
    assert TOOL_TABLES <= adopted.db.tables()
    adopted.assert_email_unique_whatever_its_case()
    assert adopted.ok("check").stdout.strip() == "The models, the migrations and the database agree."

    history = adopted.ok("history").stdout.splitlines()
    assert len(history) == len(REVISIONS)
    for (revision, message), line in zip(reversed(REVISIONS), history):
        assert re.fullmatch(rf"\S+ -> {revision}( \(head\))?, {message}", line), history

    assert adopted.ok("current").stdout.split() == [HEAD, "(head)"]
    heads = adopted.ok("heads").stdout
    assert f"Rev: {HEAD} (head)" in heads
    assert f"migrations/versions/{HEAD}_product_active_flag.py" in heads

    adopted.add_rows()
    status = adopted.ok("status").stdout
    assert f"Revision:   {HEAD} (head)" in status
    assert "Pending:    none" in status
    rows = dict(re.findall(r"^  (public\.\w+)\s+([\d,]+)$", status, re.MULTILINE))
    assert rows == {"public.customers": "2", "public.orders": "1", "public.products": "1"}


def test_lint_and_erd_after_adopt(adopted):
    result = adopted.run("lint")
    assert result.returncode in (0, 1), result.stderr
    lines = result.stdout.splitlines()
    findings = [line for line in lines if not line.startswith("No finding in")]
    assert findings or lines == [f"No finding in {len(REVISIONS)} revision(s)."]
    for finding in findings:
        match = re.match(r"(migrations/versions/\w+\.py):(\d+): [\w-]+: ", finding)
        assert match, finding
        source = (adopted.root / match.group(1)).read_text().splitlines()
        line = int(match.group(2))
        assert 1 <= line <= len(source), finding
        assert source[line - 1].strip() and not source[line - 1].strip().startswith("#"), (finding, source[line - 1])

    erd = adopted.ok("erd").stdout
    assert erd.startswith("erDiagram")
    for table in ("customers", "products", "orders"):
        assert f'"{table}" {{' in erd
    assert '"customers" |o--o{ "orders" : customer_id' in erd


def test_migrate_upgrade_downgrade_after_adopt(adopted):
    adopted.ok("setup")
    before = adopted.versions()
    models = adopted.root / "storefront" / "models.py"
    text = models.read_text()
    placed_at = "    placed_at = db.Column(db.DateTime)\n"
    assert placed_at in text
    models.write_text(text.replace(placed_at, placed_at + "    note = db.Column(db.String(200))\n"))

    adopted.ok("migrate", "order note")
    (written,) = set(adopted.versions()) - set(before)
    source = (adopted.root / "migrations" / "versions" / written).read_text()
    # Flask-Migrate's default render_as_batch=True, which the application did not change: kept, as plain
    # `flask db migrate` would write it (PostgreSQL alters the table in place either way).
    assert "with op.batch_alter_table('orders', schema=None) as batch_op:" in source
    assert "batch_op.add_column(sa.Column('note', sa.String(length=200)" in source
    assert "batch_op.drop_column('note')" in source
    assert "note" not in adopted.db.columns("orders"), "migrate must not change the database"

    adopted.ok("upgrade")
    assert adopted.db.columns("orders")["note"]["type"].length == 200
    assert adopted.db.revision() == written.split("_")[0]
    adopted.ok("check")

    adopted.ok("downgrade")
    assert "note" not in adopted.db.columns("orders")
    assert adopted.db.revision() == HEAD


def test_generated_rows_fill_every_table_with_no_seed_file(adopted):
    adopted.ok("adopt")
    adopted.ok("setup")
    result = adopted.ok("seed", "--rows", "Customer=1500", "--rows", "products=800", "--rows", "orders=3000")
    assert "Seeded: 1,500 customers, 800 products, 3,000 orders added." in result.stderr
    assert adopted.counts() == {"public.customers": 1500, "public.products": 800, "public.orders": 3000}
    db = adopted.db
    assert db.scalar("SELECT count(DISTINCT lower(email)) FROM customers") == 1500, "its functional unique index"
    assert db.scalar("SELECT count(DISTINCT sku) FROM products") == db.scalar("SELECT count(sku) FROM products")
    assert db.scalar("SELECT min(price) FROM products") >= 0, "its unnamed CHECK (price >= 0)"
    assert db.scalar("SELECT count(DISTINCT customer_id) FROM orders") > 1000
    adopted.assert_at_head()


def test_reset_and_seed_after_adopt(adopted):
    adopted.ok("setup")
    adopted.add_rows()
    result = adopted.ok("reset", "--yes", timeout=60)
    assert "adopt" not in result.stderr
    adopted.assert_at_head()
    assert adopted.counts() == {t: 0 for t in APP_TABLES}
    adopted.assert_email_unique_whatever_its_case()

    adopted.add_rows()
    state = (adopted.db.tables(), adopted.counts(), adopted.db.revision())
    result = adopted.run("seed")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "write storefront/seeds.py" in errors[0], result.stderr
    assert not (adopted.root / "storefront" / "seeds.py").exists()
    assert (adopted.db.tables(), adopted.counts(), adopted.db.revision()) == state


def test_backup_restore_shell_and_downgrade_to_base_after_adopt(adopted, tmp_path):
    adopted.ok("setup")
    adopted.add_rows()
    dump = tmp_path / "storefront.dump"
    adopted.ok("backup", "--output", str(dump))
    assert dump.stat().st_size > 0

    adopted.db.execute("DELETE FROM orders")
    adopted.db.execute("DELETE FROM customers")
    adopted.ok("restore", str(dump), "--yes")
    assert adopted.db.rows("SELECT email, name FROM customers ORDER BY email") == [
        ("ada@example.com", "Ada"), ("bob@example.com", "Bob")]
    assert adopted.counts() == {"public.customers": 2, "public.orders": 1, "public.products": 1}
    adopted.assert_at_head()

    result = adopted.ok("shell", "-c", "SELECT count(*) FROM customers")
    assert re.search(r"^\s*2\s*$", result.stdout, re.MULTILINE), result.stdout

    adopted.ok("downgrade", "base")
    assert adopted.db.tables() == TOOL_TABLES
    assert adopted.db.revision() is None
    assert not adopted.has_function()
    adopted.ok("upgrade")
    adopted.assert_at_head()
    adopted.ok("check")


def test_a_sqlite_url_is_refused_in_one_sentence(storefront):
    storefront.url = "sqlite:///" + str(storefront.root / "app.db")
    for command in (("setup",), ("upgrade",), ("status",), ("reset", "--yes")):
        result = storefront.run(*command)
        assert result.returncode == 1, (command, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "manages PostgreSQL only" in errors[0], (command, result.stderr)
    assert not (storefront.root / "app.db").exists() or (storefront.root / "app.db").stat().st_size == 0


def test_an_application_that_fails_to_import_is_named_with_its_cause(storefront):
    package = storefront.root / "storefront" / "__init__.py"
    package.write_text("import no_such_dependency  # noqa: F401\n" + package.read_text())
    for command in ("upgrade", "status", "history"):
        result = storefront.run(command)
        assert result.returncode == 1, result.stderr
        assert "No module named 'no_such_dependency'" in result.stderr, result.stderr
        assert "No such command" not in result.stderr


def test_the_flaskenv_path_is_the_projects_wherever_the_command_runs(storefront, tmp_path):
    (storefront.root / ".flaskenv").write_text("FLASK_APP=storefront\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "storefront").mkdir(parents=True)  # a folder of the same name where the command is run
    (elsewhere / "storefront" / "__init__.py").write_text("raise RuntimeError('the wrong application')\n")
    result = subprocess.run([sys.executable, str(storefront.root / "db_manage.py"), "setup"], cwd=elsewhere,
                            env=cli_env(storefront.url), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    storefront.assert_at_head()


def test_a_history_without_env_py_gets_the_tools(storefront):
    storefront.env_py.unlink()
    result = storefront.run("current")
    assert result.returncode == 1 and "python db_manage.py adopt" in result.stderr
    storefront.ok("setup")
    assert TOOL_MARKER in storefront.env_py.read_text()
    assert not (storefront.root / "migrations" / "env.py.orig").exists()
    storefront.assert_at_head()


def test_lint_skips_a_revision_that_reads_rows_and_lints_the_others(adopted):
    path = adopted.root / "migrations" / "versions" / f"{HEAD}_product_active_flag.py"
    source = path.read_text()
    path.write_text(source.replace("def upgrade():\n", "def upgrade():\n    op.get_bind().execute("
                                   "sa.text('SELECT id FROM products')).fetchall()\n", 1))
    result = adopted.run("lint")
    assert f"{HEAD}_product_active_flag.py: not linted: its upgrade() cannot run without a database" in result.stderr
    assert "uq_customers_email_lower" in result.stdout or "2b3c4d5e6f70_orders.py" in result.stdout, result.stdout
    assert result.returncode == 1, "the other revisions' findings still count"


def test_a_python_error_in_a_revision_names_it_and_reset_says_it_was_undone(adopted):
    adopted.ok("setup")
    adopted.add_rows()
    path = adopted.root / "migrations" / "versions" / f"{HEAD}_product_active_flag.py"
    path.write_text(path.read_text().replace("def upgrade():\n", "def upgrade():\n    {}['missing']\n", 1))
    adopted.ok("downgrade")
    upgrade = adopted.run("upgrade")
    assert upgrade.returncode == 1
    assert f"Migration upgrade 3c4d5e6f7081 -> {HEAD}, product active flag failed: KeyError" in upgrade.stderr
    assert "still at 3c4d5e6f7081" in upgrade.stderr
    reset = adopted.run("reset", "--yes")
    assert reset.returncode == 1
    assert "The reset was undone" in reset.stderr and "still at base" not in reset.stderr, reset.stderr
    assert adopted.db.revision() == "3c4d5e6f7081"
    assert adopted.counts() == {"public.customers": 2, "public.orders": 1, "public.products": 1}


def test_a_seed_file_that_fails_is_one_sentence_and_changes_nothing(adopted):
    adopted.ok("setup")
    (adopted.root / "storefront" / "seeds.py").write_text(
        "import sqlalchemy as sa\n\n\ndef seed(connection):\n"
        "    connection.execute(sa.text(\"INSERT INTO products (sku, name, price) VALUES ('X', 'x', 1)\"))\n"
        "    raise RuntimeError('boom in seed')\n")
    result = adopted.run("seed")
    assert result.returncode == 1
    assert "The seed function storefront.seeds.seed failed: RuntimeError: boom in seed" in result.stderr
    assert adopted.counts()["public.products"] == 0
    (adopted.root / "storefront" / "seeds.py").write_text(
        "import sqlalchemy as sa\n\n\ndef seed(connection):\n"
        "    connection.execute(sa.text(\"INSERT INTO products (sku, name, price) VALUES ('X', 'x', 1)\"))\n"
        "    return 1\n")
    assert adopted.ok("seed").returncode == 0
    assert adopted.counts()["public.products"] == 1
