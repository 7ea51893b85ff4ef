"""The tool apart from the demo app: the skeleton's application may be rewritten without breaking a command."""
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, TOOL_TABLES, Database, add_model, cli_env, versions

PRODUCT_MODEL = '''
from app import db


class Product(db.Model):
    """A model with an unnamed CHECK constraint, beside the demo models."""

    __tablename__ = "products"
    __table_args__ = (db.CheckConstraint("price >= 0"), db.CheckConstraint("stock >= 0 AND stock < 1000000"))
    id = db.Column(db.Integer, primary_key=True)
    price = db.Column(db.Numeric(10, 2), nullable=False)
    stock = db.Column(db.Integer, nullable=False, server_default="0")
'''
BOOK_MODELS = '''"""A team's own models, replacing the demo's."""
from app import db


class Author(db.Model):
    __tablename__ = "authors"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(100), nullable=False, unique=True)


class Book(db.Model):
    __tablename__ = "books"
    __table_args__ = (db.CheckConstraint("pages > 0"),)
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    pages = db.Column(db.Integer, nullable=False)
    author_id = db.Column(db.Integer, db.ForeignKey("authors.id"), nullable=False)
'''
ERRORS_PACKAGE = '''"""The application's own error handlers: a common blueprint layout, named like the tool's old module."""
from flask import Blueprint

bp = Blueprint("errors", __name__)
'''


def constraint_names(database, table):
    """Return the names of table's CHECK constraints."""
    return set(database.scalar("SELECT array_agg(conname) FROM pg_constraint "
                               "WHERE contype = 'c' AND conrelid = CAST(:t AS regclass)", t=table) or [])


def test_an_app_errors_package_does_not_collide_with_the_tool(cli, project, database):
    (project / "app" / "errors").mkdir()
    (project / "app" / "errors" / "__init__.py").write_text(ERRORS_PACKAGE)
    for command in ("upgrade", "status"):
        result = cli(command, url="postgresql://app:pw@127.0.0.1:1/app")
        assert result.returncode == 1
        assert "Connection refused" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert cli("status").returncode == 0


def test_an_unnamed_check_constraint_migrates_and_every_command_loads(cli, project, database):
    add_model(project, "product", PRODUCT_MODEL)
    for command in ("history", "erd", "heads"):
        result = cli(command)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    before = versions(project)
    assert cli("migrate", "Add products").returncode == 0
    assert len(versions(project)) == len(before) + 1
    assert cli("upgrade").returncode == 0
    names = constraint_names(database, "products")
    assert len(names) == 2 and all(name.startswith("ck_products_") for name in names), names
    assert any("_price_" in name for name in names) and any("_stock_" in name for name in names)
    assert cli("check").returncode == 0
    assert cli("downgrade").returncode == 0
    assert "public.products" not in database.tables()


def test_replacing_the_demo_models_leaves_every_command_working(cli, project, missing_database_url):
    models = project / "app" / "models"
    for path in models.glob("*.py"):
        path.unlink()
    (models / "__init__.py").write_text(BOOK_MODELS)
    shutil.rmtree(project / "migrations" / "versions")
    (project / "migrations" / "versions").mkdir()
    database = Database(missing_database_url)
    # The seed file and the views still name the demo models: seed says so, nothing else minds.
    seed = cli("seed", url=missing_database_url)
    assert seed.returncode == 1 and "app.seeds does not import" in seed.stderr and "Traceback" not in seed.stderr
    assert cli("setup", url=missing_database_url).returncode == 0
    assert {"public.authors", "public.books"} | TOOL_TABLES == database.tables()
    assert len(versions(project)) == 1
    (project / "app" / "seeds.py").unlink()
    (project / "app" / "views.py").unlink()
    for command in (("status",), ("check",), ("history",), ("current",), ("erd",), ("lint",), ("reset", "--yes"),
                    ("downgrade", "base"), ("upgrade",)):
        result = cli(*command, url=missing_database_url)
        assert result.returncode == 0, (command, result.stderr)
        assert "Traceback" not in result.stderr and "Unexpected" not in result.stderr, (command, result.stderr)
    assert {"public.authors", "public.books"} <= database.tables()
    seed = cli("seed", url=missing_database_url)
    assert seed.returncode == 1
    assert "no seed data: write app/seeds.py with a function seed(connection)" in seed.stderr
    assert database.scalar("SELECT count(*) FROM books") == 0


def test_setup_never_writes_a_migration_on_top_of_a_history(cli, project, missing_database_url, head_revision):
    user = project / "app" / "models" / "user.py"
    user.write_text(user.read_text().replace(
        "    created_at = created_at_column()\n", "    created_at = created_at_column()\n    phone = db.Column(db.String(20))\n"))
    before = versions(project)
    result = cli("setup", url=missing_database_url)
    assert result.returncode == 0, result.stderr
    assert versions(project) == before, "setup must not write a revision on a history"
    database = Database(missing_database_url)
    assert database.revision() == head_revision
    assert "phone" not in database.columns("users")
    assert "column users.phone is in the models, not in the database" in result.stderr
    assert 'db_manage.py migrate "MESSAGE"' in result.stderr


def test_reset_with_flask_migrates_stock_env_py_does_not_hang(cli, project, database, head_revision):
    import flask_migrate

    stock = Path(flask_migrate.__file__).parent / "templates" / "flask" / "env.py"
    shutil.copy(stock, project / "migrations" / "env.py")
    database.execute("INSERT INTO users (username, email) VALUES ('x', 'x@example.com')")
    result = cli("reset", "--yes", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "adopt" in result.stderr
    assert database.revision() == head_revision
    assert database.scalar("SELECT count(*) FROM users") == 0
    upgrade = cli("upgrade")
    assert upgrade.returncode == 0 and "python db_manage.py adopt" in upgrade.stderr
    adopt = cli("adopt")
    assert adopt.returncode == 0, adopt.stderr
    assert (project / "migrations" / "env.py.orig").read_text() == stock.read_text()
    assert "db_manage_tool.environment" in (project / "migrations" / "env.py").read_text()
    assert "adopt" not in cli("upgrade").stderr


def test_revision_messages_are_the_first_non_blank_docstring_line(cli, project, database, head_revision):
    before = versions(project)
    assert cli("revision", "placeholder").returncode == 0
    (name,) = set(versions(project)) - set(before)
    path = project / "migrations" / "versions" / name
    source = path.read_text()
    header = source[source.index("Revision ID:"):source.index('"""', 3)]
    indented = "\n".join("    " + line for line in header.splitlines())
    path.write_text('"""\n    Add the archive\n    \n' + indented + '\n"""' + source[source.index('"""', 3) + 3:])
    history = cli("history")
    assert history.returncode == 0
    line = next(line for line in history.stdout.splitlines() if line.startswith(head_revision))
    assert line.endswith(", Add the archive"), line
    status = cli("status")
    assert "Add the archive" in status.stdout and "Revision ID" not in status.stdout


def test_the_database_line_is_printed_once_per_command(cli, project, database):
    add_model(project, "product", PRODUCT_MODEL)
    for command in (("reset", "--yes"), ("migrate", "Add products"), ("revision", "Empty"), ("status",),
                    ("upgrade",), ("seed",), ("check",)):
        result = cli(*command)
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Database:")]
        assert len(lines) == (0 if command[0] == "revision" else 1), (command, result.stdout + result.stderr)


def test_the_app_option_and_flask_app_point_at_the_application(cli, project, database):
    (project / "run.py").rename(project / "serve.py")
    found = cli("status")  # no run.py: Flask's own search, which finds the factory of the package app/
    assert found.returncode == 0 and "public.users" in found.stdout, found.stderr
    missing = cli("status", env={"FLASK_APP": "nothere"})
    assert missing.returncode == 1 and "FLASK_APP" in missing.stderr and "Traceback" not in missing.stderr
    assert cli("--app", "serve.py", "status").returncode == 0
    assert cli("status", env={"FLASK_APP": "app:create_app()"}).returncode == 0
    assert cli("current", env={"FLASK_APP": "serve.py"}).returncode == 0


def test_a_version_table_of_the_applications_choice_is_read_everywhere(cli, project, missing_database_url,
                                                                     head_revision):
    init = project / "app" / "__init__.py"
    init.write_text(init.read_text().replace("migrate = Migrate(", 'migrate = Migrate(version_table="schema_history", '))
    assert cli("setup", url=missing_database_url).returncode == 0
    database = Database(missing_database_url)
    assert database.scalar("SELECT version_num FROM schema_history") == head_revision
    assert "public.alembic_version" not in database.tables()
    status = cli("status", "--json", url=missing_database_url)
    assert status.returncode == 0 and f'"current": [\n    "{head_revision}"' in status.stdout
    assert cli("check", url=missing_database_url).returncode == 0


def test_hostile_inputs_get_one_sentence_and_change_nothing(cli, project, database, head_revision, tmp_path):
    """Inputs nobody lists: each is one sentence, exit 1 (2 for usage), and the database stays as it was."""
    database.execute("INSERT INTO users (username, email) VALUES ('keep', 'keep@example.com')")
    precious = tmp_path / "precious.txt"
    precious.write_text("not a dump")
    cases = [
        (("backup", "--output", str(precious)), 1, "already exists"),
        (("backup", "--output", str(tmp_path / "no" / "such" / "x.dump")), 1, "There is no folder"),
        (("reset", "--table", ".users", "--yes"), 1, "Unknown table '.users'"),
        (("reset", "--table", "public.", "--yes"), 1, "Unknown table 'public.'"),
        (("upgrade", "@"), 1, "Alembic cannot resolve the revision given"),
        (("migrate", "   "), 2, "MESSAGE is empty"),
        (("revision", ""), 2, "MESSAGE is empty"),
        (("--app", "", "status"), 2, "--app needs a value"),
        (("--config", " ", "status"), 2, "--config needs a value"),
        (("upgrade",), 1, "MIGRATION_LOCK_TIMEOUT must be a number of seconds"),
    ]
    for args, code, words in cases:
        env = {"MIGRATION_LOCK_TIMEOUT": "1e9"} if args == ("upgrade",) else None
        result = cli(*args, env=env)
        assert result.returncode == code, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and "Unexpected" not in result.stderr, (args, result.stderr)
    assert precious.read_text() == "not a dump"
    assert not (tmp_path / "no").exists()
    assert database.scalar("SELECT count(*) FROM users") == 1 and database.revision() == head_revision
    assert len(list((project / "migrations" / "versions").glob("*.py"))) == 2


def test_broken_migration_files_are_named(cli, project, database, head_revision):
    broken = project / "migrations" / "versions" / "0000_broken.py"
    broken.write_text("revision = '0000'\ndown_revision = None\ndef upgrade(:\n")
    for command in ("upgrade", "status", "history"):
        result = cli(command)
        assert result.returncode == 1, result.stderr
        assert "0000_broken.py line 3 does not compile" in result.stderr, result.stderr
    broken.unlink()
    ini = project / "migrations" / "alembic.ini"
    ini.write_text("this is not an ini file\n")
    result = cli("upgrade")
    assert result.returncode == 1 and "Alembic configuration file cannot be read" in result.stderr, result.stderr
    ini.write_text("[alembic]\n")
    result = cli("upgrade")
    assert result.returncode == 1 and "logging sections" in result.stderr, result.stderr
    assert database.revision() == head_revision


def test_a_seed_module_setting_that_names_nothing_says_so(cli, project, database):
    config = project / "app" / "config.py"
    config.write_text(config.read_text().replace(
        '    SECRET_KEY_REQUIRED = False\n', '    SECRET_KEY_REQUIRED = False\n    SEED_MODULE = "app.nope"\n'))
    result = cli("seed")
    assert result.returncode == 1
    assert "SEED_MODULE names 'app.nope', which does not exist" in result.stderr, result.stderr
    assert database.scalar("SELECT count(*) FROM users") == 0


def test_the_tool_imported_from_a_source_tree_serves_the_folder_it_runs_in(tmp_path, missing_database_url):
    """As `pip install -e` runs it: db_manage imported from this checkout, the command run in another application."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    shutil.copy2(Path(__file__).parent / "apps" / "catalog" / "catalog.py", folder / "catalog.py")
    (folder / ".flaskenv").write_text("FLASK_APP=catalog:create_app()\n")
    entry = f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv[0] = 'db-manage'; import db_manage; db_manage.main()"
    before = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    result = subprocess.run([sys.executable, "-c", entry, "setup"], cwd=folder, env=cli_env(missing_database_url),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    tables = Database(missing_database_url).tables()
    assert "public.vendors" in tables and "public.posts" not in tables, "the catalog's tables, not the skeleton's"
    assert list((folder / "migrations" / "versions").glob("*.py")), "its history is written in its own folder"
    assert sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py")) == before
