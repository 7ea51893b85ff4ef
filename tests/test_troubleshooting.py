"""The guide's troubleshooting, solved by the tool: each case as it happens, on a real database."""
import re

from conftest import versions

COMMENT_MODEL = '''
from app import db


class Comment(db.Model):
    __tablename__ = "comments"
    id = db.Column(db.Integer, primary_key=True)
    body = db.Column(db.Text, nullable=False)
'''


def new_files(project, before):
    """Return the texts of the migration files written since before."""
    return [(project / "migrations" / "versions" / n).read_text() for n in sorted(set(versions(project)) - set(before))]


def write_revision(cli, project, message):
    """Write an empty revision; return (id, path)."""
    before = versions(project)
    assert cli("revision", message).returncode == 0
    (name,) = set(versions(project)) - set(before)
    return name.split("_")[0], project / "migrations" / "versions" / name


def test_a_model_file_missing_from_the_imports_is_still_found(cli, project, database):
    (project / "app" / "models" / "comment.py").write_text(COMMENT_MODEL)  # no line in __init__.py
    before = versions(project)
    result = cli("migrate", "Add comments")
    assert result.returncode == 0, result.stderr
    (text,) = new_files(project, before)
    assert "op.create_table('comments'" in text


def test_no_change_names_the_model_modules_it_loaded(cli, project, database):
    before = versions(project)
    result = cli("migrate", "Nothing")
    assert result.returncode == 0 and versions(project) == before
    line = next(line for line in result.stderr.splitlines() if "No changes in schema detected" in line)
    assert "app.models.page_view, app.models.post" in line and "app.models.user" in line


def test_migrate_behind_head_names_the_pending_revisions(cli, project, database):
    pending, _ = write_revision(cli, project, "Not applied yet")
    user = project / "app" / "models" / "user.py"
    user.write_text(user.read_text().replace("    created_at = created_at_column()\n",
                                             "    created_at = created_at_column()\n    phone = db.Column(db.Text)\n"))
    before = versions(project)
    result = cli("migrate", "Add phone")
    assert result.returncode == 1
    assert f"{pending} (Not applied yet)" in result.stderr and "python db_manage.py upgrade" in result.stderr
    assert versions(project) == before


def test_a_lost_revision_is_explained_by_every_command(cli, database):
    database.execute("UPDATE alembic_version SET version_num = 'deadbeef0000'")
    for args in (("upgrade",), ("downgrade",), ("migrate", "x"), ("current",), ("status",), ("check",)):
        result = cli(*args)
        assert result.returncode == 1, args
        assert "records revision deadbeef0000, but no file in migrations/versions has it" in result.stderr, args
        assert "stamp --purge" in result.stderr and "Traceback" not in result.stderr, args
    assert database.revision() == "deadbeef0000"
    assert cli("stamp", "--purge", "head").returncode == 0
    assert cli("check").returncode == 0


def test_two_heads_then_merge_then_upgrade(cli, project, database, head_revision):
    first, _ = write_revision(cli, project, "Branch one")
    second, path = write_revision(cli, project, "Branch two")
    # As two branches of a team would: both revisions written from the same parent.
    path.write_text(path.read_text().replace(f"down_revision = '{first}'", f"down_revision = '{head_revision}'")
                    .replace(f"Revises: {first}", f"Revises: {head_revision}"))
    heads = cli("heads")
    assert first in heads.stdout and second in heads.stdout
    assert "Branch one" in heads.stdout and "Branch two" in heads.stdout and ".py" in heads.stdout
    upgrade = cli("upgrade")
    assert upgrade.returncode == 1
    assert "2 heads" in upgrade.stderr and "merge" in upgrade.stderr and "Traceback" not in upgrade.stderr
    assert database.revision() == head_revision
    check = cli("check")
    assert check.returncode == 1 and "heads" in check.stdout
    before = versions(project)
    assert cli("merge", "-m", "Join branches").returncode == 0
    (merge_text,) = new_files(project, before)
    merged = re.search(r"revision = '(\w+)'", merge_text).group(1)
    assert cli("upgrade").returncode == 0
    assert database.revision() == merged
    assert cli("check").returncode == 0


def test_type_and_server_default_changes_are_detected(cli, project, database):
    user, post = project / "app" / "models" / "user.py", project / "app" / "models" / "post.py"
    user.write_text(user.read_text().replace("db.String(80)", "db.String(100)"))
    post.write_text(post.read_text().replace("server_default=db.false()", "server_default=db.true()"))
    before = versions(project)
    assert cli("migrate", "Widen usernames, publish by default").returncode == 0
    (text,) = new_files(project, before)
    assert "type_=sa.String(length=100)" in text and "existing_type=sa.VARCHAR(length=80)" in text
    assert "server_default=sa.text('true')" in text
    assert cli("upgrade").returncode == 0
    assert database.columns("users")["username"]["type"].length == 100
    assert database.columns("posts")["published"]["default"] == "true"
