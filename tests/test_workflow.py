"""The guide's workflow: edit models, migrate, review, upgrade, downgrade, on a real database."""
from conftest import TOOL_TABLES, add_model, versions

NOTE_MODEL = '''
from app import db
from app.models.timestamps import created_at_column, updated_at_column


class Note(db.Model):
    """A note by a user, shaped like the guide's Post example."""

    __tablename__ = "notes"

    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    body = db.Column(db.Text, nullable=False)
    slug = db.Column(db.String(200), unique=True, nullable=False)
    created_at = created_at_column()
    updated_at = updated_at_column()
    author_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False)
    author = db.relationship("User", backref=db.backref("notes", lazy="dynamic"))
'''

AUDIT_MODEL = '''
from app import db


class AuditLog(db.Model):
    """An entry in a schema that the database does not have yet."""

    __tablename__ = "logs"
    __table_args__ = {"schema": "audit"}

    id = db.Column(db.Integer, primary_key=True)
    action = db.Column(db.String(50), nullable=False)
'''


def new_file(project, before):
    """Return the text of the one migration file written since before."""
    (name,) = set(versions(project)) - set(before)
    return (project / "migrations" / "versions" / name).read_text()


def test_new_model_migrate_upgrade_downgrade(cli, project, database, head_revision):
    before = versions(project)
    add_model(project, "note", NOTE_MODEL)
    result = cli("migrate", "Add notes table")
    assert result.returncode == 0, result.stderr
    assert "op.create_table('notes'" in new_file(project, before)
    assert "Running upgrade" not in result.stderr, "the lint's rendering reads as if the revision had been applied"
    assert "public.notes" not in database.tables(), "migrate must not change the database"

    upgraded = cli("upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    columns = database.columns("notes")
    assert set(columns) == {"id", "title", "body", "slug", "created_at", "updated_at", "author_id"}
    assert columns["created_at"]["type"].timezone is True
    new = database.revision()
    assert new != head_revision
    assert f"Upgrade complete: the database is at revision {new} (head)." in upgraded.stderr

    downgraded = cli("downgrade")
    assert downgraded.returncode == 0, downgraded.stderr
    assert "public.notes" not in database.tables()
    assert database.revision() == head_revision
    assert f"Downgrade complete: the database is at revision {head_revision} (head is {new})." in downgraded.stderr
    stamped = cli("stamp", "head")
    assert stamped.returncode == 0 and database.revision() == new
    assert f"Stamped: the database is at revision {new} (head)." in stamped.stderr
    assert cli("stamp", head_revision).returncode == 0 and database.revision() == head_revision


def test_add_a_column_up_and_down(cli, project, database):
    before = versions(project)
    user = project / "app" / "models" / "user.py"
    user.write_text(user.read_text().replace(
        "    created_at = created_at_column()\n",
        "    created_at = created_at_column()\n    phone = db.Column(db.String(20))\n",
    ))
    assert cli("migrate", "Add phone column to users").returncode == 0
    source = new_file(project, before)
    assert "op.add_column('users', sa.Column('phone', sa.String(length=20), nullable=True))" in source
    assert "op.drop_column('users', 'phone')" in source
    assert cli("upgrade").returncode == 0
    assert database.columns("users")["phone"]["nullable"] is True
    assert cli("downgrade").returncode == 0
    assert "phone" not in database.columns("users")


def test_model_in_a_new_schema_up_and_down(cli, project, database, head_revision):
    before = versions(project)
    add_model(project, "audit_log", AUDIT_MODEL)
    assert cli("migrate", "Add audit log").returncode == 0
    source = new_file(project, before)
    assert source.index("CREATE SCHEMA IF NOT EXISTS audit") < source.index("op.create_table('logs'")
    assert "DROP SCHEMA IF EXISTS audit" in source

    assert cli("upgrade").returncode == 0
    assert "audit.logs" in database.tables()
    # include_schemas: the table in the custom schema is not detected again.
    again = cli("migrate", "Nothing new")
    assert again.returncode == 0
    assert len(versions(project)) == len(before) + 1
    assert "No changes in schema detected" in again.stderr

    assert cli("downgrade").returncode == 0
    assert "audit.logs" not in database.tables()
    assert "audit" not in database.schemas()
    assert database.revision() == head_revision


def test_migrate_without_changes_writes_nothing(cli, project, database, head_revision):
    before = versions(project)
    result = cli("migrate", "Nothing changed")
    assert result.returncode == 0
    assert versions(project) == before
    assert "No changes in schema detected" in result.stderr
    assert database.revision() == head_revision


def test_relative_downgrade(cli, database, all_revisions):
    result = cli("downgrade", "-1")
    assert result.returncode == 0, result.stderr
    assert database.revision() == all_revisions[-2]["revision"]
    assert cli("upgrade").returncode == 0
    assert cli("downgrade", "-2").returncode == 0 and database.revision() is None


def test_downgrade_base_and_upgrade_again(cli, database, head_revision):
    assert cli("downgrade", "base").returncode == 0
    assert database.tables() == TOOL_TABLES
    assert "analytics" not in database.schemas()
    assert database.revision() is None
    assert cli("upgrade").returncode == 0
    assert {"public.users", "public.posts", "analytics.page_views"} <= database.tables()
    assert database.revision() == head_revision


def test_upgrade_sql_prints_sql_and_changes_nothing(cli, database, head_revision):
    assert cli("downgrade", "base").returncode == 0
    result = cli("upgrade", "--sql")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE users" in result.stdout
    assert "CREATE SCHEMA IF NOT EXISTS analytics" in result.stdout
    assert "$ flask db" not in result.stdout, "chatter goes to stderr so that stdout is pure SQL"
    assert database.revision() is None and "public.users" not in database.tables()


def test_empty_revision_then_stamp(cli, project, database, head_revision):
    before = versions(project)
    assert cli("revision", "Backfill by hand").returncode == 0
    source = new_file(project, before)
    assert "def upgrade():\n    pass" in source
    new_revision = source.split("revision = '")[1].split("'")[0]
    assert cli("stamp", new_revision).returncode == 0
    assert database.revision() == new_revision
    heads = cli("heads")
    assert new_revision in heads.stdout
    history = cli("history")
    assert new_revision in history.stdout and head_revision in history.stdout
    current = cli("current")
    assert new_revision in current.stdout
