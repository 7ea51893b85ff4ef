"""The tool as a package: installed with pip into a fresh virtualenv, run as `db-manage` in applications
that contain none of it (nothing copied, no line of theirs edited).

tests/apps/inventory keeps its history inside its package (`-d inventory/migrations`), connects to its
database when it starts, prints while it loads, and its env.py runs the revisions in AUTOCOMMIT (one
of them relies on it); tests/apps/ledger has a naming convention that its
first revisions were written without (they drop PostgreSQL's default names). Under .ci/run's
second pass, DB_MANAGE_TEST_PREFIX names a virtualenv holding the lowest versions the package declares.
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import ROOT, Database, cli_env

APPS = Path(__file__).resolve().parent / "apps"
PACKAGE_FILES = ("pyproject.toml", "README.md", "db_manage.py", "db_manage_tool")
TOOL_MARKER = "db_manage_tool.environment"
HEAD = "d4e5f6a7b8c9"  # inventory's


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """The bin folder of a virtualenv into which `pip install` put the package (built once for all workers)."""
    if os.environ.get("DB_MANAGE_TEST_PREFIX"):
        return Path(os.environ["DB_MANAGE_TEST_PREFIX"]) / "bin"
    base = tmp_path_factory.getbasetemp()  # under xdist, popen-gwN: its parent is this run's, shared by the workers
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    venv = shared / "installed-venv"
    with open(shared / "installed-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "bin" / "db-manage").exists():
            source = shared / "package-source"  # a copy: the build writes beside its sources
            shutil.rmtree(source, ignore_errors=True)
            source.mkdir()
            for name in PACKAGE_FILES:
                copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
                copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                     if (ROOT / name).is_dir() else {}))
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                                  f"{source}[all]", "psycopg2-binary", "pytest>=8,<9.2"], capture_output=True, text=True, timeout=600)
            assert pip.returncode == 0, pip.stdout + pip.stderr
    return venv / "bin"


class InstalledApp:
    """A copy of one of tests/apps, run with the installed `db-manage` against its own database."""

    def __init__(self, root, url, bin_folder, options=()):
        self.root, self.url, self.bin, self.options = root, url, bin_folder, list(options)
        self.db = Database(url)

    def run(self, *args, timeout=180):
        """Run `db-manage OPTIONS ARGS` in the application's folder."""
        env = cli_env(self.url, {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"})
        env.pop("FLASK_CONFIG")
        return subprocess.run([str(self.bin / "db-manage"), *self.options, *args], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, timeout=180):
        """Run db-manage ARGS and assert that it succeeded; return the result."""
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def constraints(self, table):
        """Return the names of table's constraints."""
        return {row[0] for row in self.db.rows(
            "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:table AS regclass) AND contype <> 'n'",
            table=table)}

    def files(self):
        """Return every file of the application's folder, relative, without caches."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)


def copy_app(name, tmp_path, missing_database_url, bin_folder, options=()):
    """Copy tests/apps/NAME; its database (a psycopg2 URL, as the application reads it) does not exist yet."""
    root = tmp_path / name
    shutil.copytree(APPS / name, root, ignore=shutil.ignore_patterns("__pycache__"))
    url = make_url(missing_database_url).set(drivername="postgresql+psycopg2")
    return InstalledApp(root, url.render_as_string(hide_password=False), bin_folder, options)


def test_the_package_holds_the_tool_and_the_map_of_commands(installed):
    """The console command is the module db_manage (the map), with the package beside it, and not app/."""
    python = installed / "python"
    found = subprocess.run([str(python), "-c", "import db_manage, db_manage_tool, importlib.util; "
                            "print(db_manage.main.__module__, importlib.util.find_spec('app'))"],
                           capture_output=True, text=True, cwd="/", check=True)
    assert found.stdout.split() == ["db_manage", "None"]
    helped = subprocess.run([str(installed / "db-manage"), "--help"], capture_output=True, text=True, check=True)
    commands = subprocess.run([sys.executable, "db_manage.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                              check=True)
    assert helped.stdout.replace("db-manage", "db_manage.py") == commands.stdout


def test_a_history_inside_the_package_and_a_factory_that_connects(installed, tmp_path, missing_database_url):
    """Every command on an application with its history in inventory/migrations, run as `flask db -d` runs it."""
    app = copy_app("inventory", tmp_path, missing_database_url, installed)
    before = app.files()

    refused = app.run("setup")  # without -d: the history elsewhere is named, no second migrations/ is created
    assert refused.returncode == 1 and "`db-manage -d inventory/migrations COMMAND`" in refused.stderr, refused.stderr
    assert "python db_manage.py" not in refused.stderr  # advice names the command as it was run
    assert app.files() == before and not (app.root / "migrations").exists()

    app.options = ["-d", "inventory/migrations"]
    adopted = app.ok("adopt")
    env_py = (app.root / "inventory" / "migrations" / "env.py").read_text()
    assert TOOL_MARKER in env_py and "run(isolation_level='AUTOCOMMIT', transaction_per_migration=True)" in env_py
    assert "Carried over from your env.py" in adopted.stderr
    app.ok("setup")  # the factory connects at start-up: the database is created first
    assert app.db.revision() == HEAD
    assert {"public.suppliers", "public.items"} <= app.db.tables()

    status = app.ok("status", "--json")  # the application prints while it loads: stdout stays JSON
    assert json.loads(status.stdout)["current"] == [HEAD]
    assert "inventory: ready" in status.stderr
    sql = app.ok("upgrade", "--sql", "base:head")
    assert sql.stdout.lstrip().startswith("BEGIN;") and "inventory:" not in sql.stdout
    app.ok("check")  # the history's server default (now()) is not a difference: the app did not ask to compare them

    history = app.ok("history")
    assert "b2c3d4e5f6a7 -> c3d4e5f6a7b8, item created_at" in history.stdout
    app.ok("downgrade", "b2c3d4e5f6a7")
    assert app.db.revision() == "b2c3d4e5f6a7" and "created_at" not in app.db.columns("items")
    app.ok("upgrade")
    assert app.db.revision() == HEAD and "created_at" in app.db.columns("items")

    models = app.root / "inventory" / "models.py"
    models.write_text(models.read_text().replace(
        '    name = db.Column(db.String(120), nullable=False, unique=True)\n',
        '    name = db.Column(db.String(120), nullable=False, unique=True)\n'
        '    phone = db.Column(db.String(40))\n'))
    app.ok("migrate", "Add supplier phone")
    written = [p for p in (app.root / "inventory" / "migrations" / "versions").glob("*.py")
               if "supplier_phone" in p.name]
    assert len(written) == 1 and "server_default" not in written[0].read_text()
    app.ok("upgrade")
    assert "phone" in app.db.columns("suppliers")
    app.ok("check")
    findings = app.run("lint")  # the AUTOCOMMIT revision's plain CREATE INDEX is a real finding
    assert findings.returncode == 1 and "d4e5f6a7b8c9_item_name_index.py:21: require-concurrent-index-creation" \
        in findings.stdout, findings.stdout + findings.stderr
    app.ok("lint", written[0].name[:12])
    assert '"items"' in app.ok("erd").stdout

    app.ok("seed", "--rows", "Supplier=3", "--rows", "Item=25")
    assert app.db.scalar("SELECT count(*) FROM items") == 25 and app.db.scalar("SELECT count(*) FROM suppliers") == 3
    dump = tmp_path / "inventory.dump"
    app.ok("backup", "--output", str(dump))
    app.ok("reset", "--yes")
    assert app.db.scalar("SELECT count(*) FROM items") == 0 and app.db.revision() == written[0].name[:12]
    app.ok("restore", "--yes", str(dump))
    assert app.db.scalar("SELECT count(*) FROM items") == 25
    shell = app.ok("shell", "-c", "SELECT count(*) AS n FROM items")
    assert "25" in shell.stdout
    assert not (app.root / "migrations").exists()


def test_a_history_without_the_convention_replays_with_its_own_names(installed, tmp_path, missing_database_url):
    """ledger's first revisions were written without a naming convention, which its metadata has now."""
    app = copy_app("ledger", tmp_path, missing_database_url, installed)
    app.ok("adopt")
    app.ok("setup")  # 0002 drops accounts_email_key: PostgreSQL's name, which the revision was written with
    assert app.db.revision() == "0003"
    assert app.constraints("accounts") == {"accounts_pkey", "uq_accounts_email"}
    assert app.constraints("entries") == {"entries_pkey", "entries_account_id_fkey"}
    app.ok("check")

    app.ok("downgrade", "0001")
    assert app.constraints("accounts") == {"accounts_pkey", "accounts_email_key"}
    app.ok("downgrade", "base")
    assert app.db.tables() & {"public.accounts", "public.entries"} == set()
    app.ok("upgrade")
    assert app.constraints("accounts") == {"accounts_pkey", "uq_accounts_email"}
    app.ok("reset", "--yes")
    assert app.db.revision() == "0003" and app.constraints("entries") == {"entries_pkey", "entries_account_id_fkey"}

    source = app.root / "ledger.py"  # a new revision gets the convention's names
    source.write_text(source.read_text().replace(
        '    amount = db.Column(db.Numeric(12, 2), nullable=False)\n',
        '    amount = db.Column(db.Numeric(12, 2), nullable=False)\n'
        '    reference = db.Column(db.String(40), nullable=False, unique=True)\n'))
    app.ok("migrate", "Entry reference")
    app.ok("upgrade")
    assert "uq_entries_reference" in app.constraints("entries")
    app.ok("downgrade")
    app.ok("upgrade")
    assert "uq_entries_reference" in app.constraints("entries")
