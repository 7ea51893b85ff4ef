"""The guide's troubleshooting, solved by the tool: each case as it happens, on a real database."""
import re

from conftest import add_model, versions

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


def test_no_change_counts_the_model_modules_when_there_are_many(cli, project, database):
    for number in range(8):  # 3 demo modules + 8: more than the message lists one by one
        add_model(project, f"extra{number}", f"""from app import db


class Extra{number}(db.Model):
    __tablename__ = "extra{number}"
    id = db.Column(db.Integer, primary_key=True)
""")
    assert cli("migrate", "Extras").returncode == 0 and cli("upgrade").returncode == 0
    result = cli("migrate", "Nothing")
    line = next(line for line in result.stderr.splitlines() if "No changes in schema detected" in line)
    assert "model modules loaded: 11 modules under app.models)" in line and "extra3" not in line
    assert "public.extra7" in database.tables()


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


def test_a_column_or_table_rename_is_warned_with_the_edit_that_keeps_the_data(cli, project, database):
    user, views = project / "app" / "models" / "user.py", project / "app" / "models" / "page_view.py"
    user.write_text(user.read_text().replace("    email = db.Column(", "    email_address = db.Column("))
    views.write_text(views.read_text().replace('__tablename__ = "page_views"', '__tablename__ = "visits"'))
    result = cli("migrate", "Renames")
    assert result.returncode == 0, result.stderr
    assert "column 'email' is dropped and 'email_address' added with the same type (VARCHAR(120))" in result.stderr
    assert "op.alter_column('users', 'email', new_column_name='email_address')" in result.stderr
    assert "table 'page_views' is dropped and 'visits' created with the same columns" in result.stderr
    assert "op.rename_table('page_views', 'visits', schema='analytics')" in result.stderr


ENUMS_SQL = """SELECT n.nspname || '.' || t.typname || '=' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
               GROUP BY n.nspname, t.typname ORDER BY 1"""


def enums(database):
    """Return {'schema.type=value,value'} for every enum type of the database."""
    return {row[0] for row in database.rows(ENUMS_SQL)}


def test_enum_cycle_add_value_migrate_upgrade_downgrade_and_nothing_left(cli, project, database):
    assert enums(database) == {"public.post_status=draft,published,archived"}
    post, views = project / "app" / "models" / "post.py", project / "app" / "models" / "page_view.py"
    post.write_text(post.read_text().replace('("draft", "published", "archived")',
                                             '("draft", "published", "archived", "scheduled")'))
    views.write_text(views.read_text().replace(
        "    created_at = created_at_column()\n",
        '    created_at = created_at_column()\n'
        '    source = db.Column(db.Enum("web", "api", name="view_source", inherit_schema=True))\n'))
    before = versions(project)
    written = cli("migrate", "Scheduled posts, view sources")
    assert written.returncode == 0 and "Warning" not in written.stderr, written.stderr
    (text,) = new_files(project, before)
    assert "scheduled" in text and "view_source" in text
    assert "ADD VALUE 'scheduled' AFTER 'archived'" in text, "the value's place is named: lint accepts it"
    assert cli("lint").returncode == 0, "lint finds nothing in what migrate wrote"
    assert cli("upgrade").returncode == 0
    assert enums(database) == {"public.post_status=draft,published,archived,scheduled",
                               "analytics.view_source=web,api"}, "the enum lands beside its table"
    assert cli("downgrade").returncode == 0
    assert enums(database) == {"public.post_status=draft,published,archived"}
    assert cli("downgrade", "base").returncode == 0
    assert enums(database) == set(), "no type left behind in any schema"


def test_values_added_amid_and_around_an_enum_land_in_the_models_order_and_lint_clean(cli, project, database):
    post = project / "app" / "models" / "post.py"
    post.write_text(post.read_text().replace('("draft", "published", "archived")',
                                             '("idea", "draft", "in:review", "published", "archived", "it\'s gone")'))
    differences = cli("check")
    assert differences.returncode == 1 and "Unexpected" not in differences.stderr, differences.stderr
    assert "- enum values of public.posts.status: draft, published, archived in the database, idea, draft, " \
           "in:review, published, archived, it's gone in the models" in differences.stdout
    before = versions(project)
    written = cli("migrate", "More states")
    assert written.returncode == 0 and "Warning" not in written.stderr, written.stderr
    assert cli("lint").returncode == 0
    assert cli("upgrade").returncode == 0
    assert enums(database) == {"public.post_status=idea,draft,in:review,published,archived,it's gone"}
    assert cli("check").returncode == 0
    assert cli("downgrade").returncode == 0
    assert enums(database) == {"public.post_status=draft,published,archived"}
    assert len(new_files(project, before)) == 1


def test_removing_an_enum_value_says_what_it_costs_and_lint_accepts_it(cli, project, database, head_revision):
    post = project / "app" / "models" / "post.py"
    post.write_text(post.read_text().replace('("draft", "published", "archived")', '("draft", "published")'))
    before = versions(project)
    written = cli("migrate", "No more archive")
    assert written.returncode == 0
    assert "Warning: This recreates the enum type post_status and converts posts.status" in written.stderr
    (text,) = new_files(project, before)
    assert "ACCESS EXCLUSIVE" in text and "# lint: ignore" in text
    assert cli("lint").returncode == 0
    assert cli("upgrade").returncode == 0
    assert enums(database) == {"public.post_status=draft,published"}
    assert cli("check").returncode == 0


def test_removing_an_enum_value_still_in_use_says_which_and_how_to_map_it(cli, project, database, head_revision):
    assert cli("seed").returncode == 0
    database.execute("UPDATE posts SET status = 'archived' WHERE slug = 'draft-ideas'")
    post = project / "app" / "models" / "post.py"
    post.write_text(post.read_text().replace('("draft", "published", "archived")', '("draft", "published")'))
    assert cli("migrate", "No more archive").returncode == 0
    result = cli("upgrade")
    assert result.returncode == 1
    assert "archived" in result.stderr and "enum_values_to_rename" in result.stderr
    assert "Traceback" not in result.stderr
    assert database.revision() == head_revision


def test_merge_with_a_single_head_writes_nothing(cli, project, database):
    before = versions(project)
    result = cli("merge")
    assert result.returncode == 1 and "Nothing to merge" in result.stderr
    assert versions(project) == before
