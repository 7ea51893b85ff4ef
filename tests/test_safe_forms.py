"""`migrate` writes the zero-downtime form for tables that exist: concurrent indexes, NOT VALID then VALIDATE,
NOT NULL through a validated CHECK, unique constraints from a concurrent index; `--plain` keeps Alembic's."""
import re
import subprocess
import sys

from benchmarks.generated_app import write_project
from conftest import Database, cli_env

EDITS = {  # file of the project copy: (text, replacement), the model edits a team makes every week
    "app/models/post.py": [
        ("title = db.Column(db.String(200), nullable=False)",
         "title = db.Column(db.String(200), nullable=False, index=True)"),
        ('    author_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False, index=True)\n',
         '    author_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False, index=True)\n'
         '    reviewer_id = db.Column(db.Integer, db.ForeignKey("users.id"))\n')],
    "app/models/page_view.py": [
        ("url = db.Column(db.String(500), nullable=False)", "url = db.Column(db.String(500), nullable=False, "
                                                            "unique=True)"),
        ("user_agent = db.Column(db.String(500))", "user_agent = db.Column(db.String(500), nullable=False)")],
}


def edit_models(project):
    for relative, changes in EDITS.items():
        path = project / relative
        text = path.read_text()
        for old, new in changes:
            assert old in text, (relative, old)
            text = text.replace(old, new)
        path.write_text(text)


def written(project, result):
    """Return the texts of the revisions the command wrote, oldest first (its first, then the steps one)."""
    assert result.returncode == 0, result.stderr
    files = [p for p in (project / "migrations" / "versions").glob("*.py") if "live_edits" in p.name]
    assert files, result.stderr
    texts = {p.read_text() for p in files}
    return sorted(texts, key=lambda text: "steps that keep" in text)


def upgrades(texts):
    """Return the upgrade() parts of texts, joined."""
    return "".join(text.split("def downgrade")[0] for text in texts)


def catalog(database):
    """Return what the edits changed in the catalog: the index, the constraints (validated?), NOT NULL."""
    return {
        "index": database.rows("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_posts_title')"),
        "constraints": dict(database.rows(
            "SELECT conname, convalidated FROM pg_constraint WHERE conname IN ('fk_posts_reviewer_id_users', "
            "'uq_page_views_url', 'page_views_user_agent_not_null')")),
        "not_null": database.scalar("SELECT attnotnull FROM pg_attribute WHERE attname = 'user_agent' "
                                    "AND attrelid = 'analytics.page_views'::regclass"),
    }


def test_migrate_writes_the_safe_forms_and_they_upgrade_downgrade_and_lint_clean(cli, project, database,
                                                                                head_revision):
    database.execute("INSERT INTO analytics.page_views (url, user_agent) VALUES ('/a', 'curl'), ('/b', 'curl')")
    before = catalog(database)
    edit_models(project)
    first, steps = written(project, cli("migrate", "Live edits"))
    assert "op.add_column('posts', sa.Column('reviewer_id'" in first and "autocommit_block" not in first, \
        "what is not a step stays one transaction, in a revision of its own"
    first_id = re.search(r"^revision = '(\w+)'", first, re.MULTILINE).group(1)
    assert "steps that keep posts, page_views writable" in steps and f"down_revision = '{first_id}'" in steps
    text = first + steps
    upgrade = upgrades([steps])
    assert "op.create_index(op.f('ix_posts_title'), 'posts', ['title'], unique=False, postgresql_concurrently=True)" \
        in upgrade
    assert ("op.drop_index(op.f('ix_posts_title'), table_name='posts', postgresql_concurrently=True, if_exists=True)"
            in upgrade or "op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_posts_title')" in upgrade), \
        "an invalid index a failed build left is dropped first (Alembic's form from 1.13.3, the SQL before)"
    assert "postgresql_not_valid=True" in upgrade.split("create_foreign_key")[1].splitlines()[0]
    assert "VALIDATE CONSTRAINT fk_posts_reviewer_id_users" in upgrade
    assert "'user_agent IS NOT NULL', schema='analytics', postgresql_not_valid=True" in upgrade
    assert upgrade.index("VALIDATE CONSTRAINT page_views_user_agent_not_null") < upgrade.index("nullable=False")
    assert "UNIQUE USING INDEX uq_page_views_url" in upgrade and "create_unique_constraint" not in upgrade
    assert upgrade.count("autocommit_block()") == 4
    assert all(len(line) <= 120 or not line.strip().startswith("#") for line in text.splitlines())
    assert "postgresql_concurrently=True" in text.split("def downgrade")[1], "the downgrade drops it concurrently"

    result = cli("upgrade")
    assert result.returncode == 0, result.stderr
    after = catalog(database)
    assert after["index"] == [(True,)] and after["not_null"] is True
    assert after["constraints"] == {"fk_posts_reviewer_id_users": True, "uq_page_views_url": True}, \
        "validated, and the temporary check dropped"
    lint = cli("lint")
    assert lint.returncode == 0 and "No finding" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    assert cli("check").returncode == 0

    result = cli("downgrade", head_revision)
    assert result.returncode == 0, result.stderr
    assert catalog(database) == before


def test_plain_writes_alembics_own_forms(cli, project, database):
    edit_models(project)
    texts = written(project, cli("migrate", "--plain", "Live edits"))
    assert len(texts) == 1
    text = texts[0]
    assert "autocommit_block" not in text and "postgresql_concurrently" not in text and "NOT VALID" not in text
    assert "op.create_unique_constraint(op.f('uq_page_views_url')" in text
    assert "op.create_index(op.f('ix_posts_title'), 'posts', ['title'], unique=False)" in text


def test_a_table_the_revision_creates_keeps_the_plain_form(cli, project, database):
    models = project / "app" / "models" / "tag.py"
    models.write_text('from app import db\n\n\nclass Tag(db.Model):\n    __tablename__ = "tags"\n'
                      '    id = db.Column(db.Integer, primary_key=True)\n'
                      '    name = db.Column(db.String(40), nullable=False, index=True)\n'
                      '    post_id = db.Column(db.Integer, db.ForeignKey("posts.id"))\n')
    texts = written(project, cli("migrate", "Live edits"))
    assert len(texts) == 1
    text = texts[0]
    assert "op.create_table('tags'" in text and "autocommit_block" not in text and "NOT VALID" not in text
    assert "op.create_index(op.f('ix_tags_name'), 'tags', ['name'], unique=False)" in text


def test_an_interrupted_unique_build_is_rerun_to_success(cli, project, database):
    """Duplicates make the concurrent build fail, leaving an invalid index; once they are gone, upgrade succeeds."""
    database.execute("INSERT INTO analytics.page_views (url, user_agent) VALUES ('/same', 'a'), ('/same', 'b')")
    edit_models(project)
    assert written(project, cli("migrate", "Live edits"))
    failed = cli("upgrade")
    assert failed.returncode == 1
    first_revision = failed.stderr.split("Running upgrade 3e1dd673592b -> ")[1][:12]
    assert database.revision() == first_revision, "the transactional revision is recorded; the steps are not"
    assert "invalid index uq_page_views_url" in failed.stderr or "analytics.uq_page_views_url" in failed.stderr, \
        failed.stderr
    assert database.rows("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                         "to_regclass('analytics.uq_page_views_url')") == [(False,)]
    database.execute("DELETE FROM analytics.page_views WHERE user_agent = 'b'")
    again = cli("upgrade")
    assert again.returncode == 0, again.stderr
    assert catalog(database)["constraints"] == {"fk_posts_reviewer_id_users": True, "uq_page_views_url": True}
    assert database.rows("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                         "to_regclass('analytics.uq_page_views_url')") == [(True,)]


def test_two_deploys_at_once_apply_the_safe_revision_once(cli, project, database):
    edit_models(project)
    assert written(project, cli("migrate", "Live edits"))
    runs = [subprocess.Popen([sys.executable, "db_manage.py", "upgrade"], cwd=project, env=cli_env(database.url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum("Running upgrade 3e1dd673592b" in output for output in outputs) == 1, outputs
    assert catalog(database)["index"] == [(True,)]


def test_without_a_naming_convention_the_constraints_get_postgresqls_names(tmp_path, missing_database_url):
    """An application with plain SQLAlchemy() (no naming convention): the NOT VALID foreign key is named as
    PostgreSQL would, so that the downgrade can drop it."""
    project = write_project(tmp_path / "project", 2)
    env = {**cli_env(missing_database_url), "FLASK_APP": "genapp:create_app()"}
    run = lambda *args: subprocess.run([sys.executable, "db_manage.py", *args], cwd=project, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    assert run("setup").returncode == 0
    base = run("current").stdout.split()[0]
    models = project / "genapp" / "models" / "m000.py"
    models.write_text(models.read_text().replace(
        '    parent_id = db.Column(db.Integer, db.ForeignKey("table_0001.id"), index=True)\n',
        '    parent_id = db.Column(db.Integer, db.ForeignKey("table_0001.id"), index=True)\n'
        '    other_id = db.Column(db.Integer, db.ForeignKey("table_0001.id"))\n'))
    result = run("migrate", "Live edits")
    assert result.returncode == 0, result.stderr
    texts = written(project, result)
    assert "op.create_foreign_key('table_0002_other_id_fkey', 'table_0002', 'table_0001', ['other_id'], ['id'], " \
           "postgresql_not_valid=True)" in texts[1]
    assert "op.drop_constraint('table_0002_other_id_fkey', 'table_0002', type_='foreignkey')" in texts[1]
    assert run("upgrade").returncode == 0
    database = Database(missing_database_url)
    assert database.rows("SELECT convalidated FROM pg_constraint WHERE conname = 'table_0002_other_id_fkey'") == \
        [(True,)]
    down = run("downgrade", base)
    assert down.returncode == 0, down.stderr
    assert database.rows("SELECT 1 FROM pg_constraint WHERE conname = 'table_0002_other_id_fkey'") == []
    assert "other_id" not in database.columns("table_0002")


def test_one_migrate_is_one_step_for_downgrade_upgrade_history_and_status(cli, project, database, head_revision):
    edit_models(project)
    first, steps = written(project, cli("migrate", "Live edits"))
    first_id, steps_id = (re.search(r"^revision = '(\w+)'", text, re.MULTILINE).group(1) for text in (first, steps))
    history = cli("history")
    assert history.returncode == 0, history.stderr
    assert history.stdout.splitlines()[0] == f"{head_revision} -> {first_id} -> {steps_id} (head), Live edits"
    assert len(history.stdout.splitlines()) == len(list((project / "migrations" / "versions").glob("*.py"))) - 1
    status = cli("status").stdout
    assert "Pending:    1\n" in status and f"  {first_id} -> {steps_id}  Live edits" in status, status

    assert cli("upgrade", "+1").returncode == 0
    assert database.revision() == steps_id and catalog(database)["index"] == [(True,)]
    result = cli("downgrade")
    assert result.returncode == 0, result.stderr
    assert database.revision() == head_revision and catalog(database)["index"] == []
    assert "reviewer_id" not in database.columns("posts")

    assert cli("upgrade").returncode == 0
    too_far = cli("downgrade", f"-{len(history.stdout.splitlines()) + 1}")
    assert too_far.returncode == 1 and "fewer than" in too_far.stderr, too_far.stderr
    assert database.revision() == steps_id
    assert cli("downgrade", "-2").returncode == 0
    assert database.revision() != first_id and "reviewer_id" not in database.columns("posts")
    assert cli("upgrade", first_id).returncode == 0 and database.revision() == first_id, "a revision named: exactly"
    assert cli("downgrade").returncode == 0, "from the first half, one step down is its parent"
    assert database.revision() == head_revision


def test_reset_runs_every_safe_form_inside_its_one_transaction(cli, project, database):
    edit_models(project)
    first, steps = written(project, cli("migrate", "Live edits"))
    steps_id = re.search(r"^revision = '(\w+)'", steps, re.MULTILINE).group(1)
    assert cli("upgrade").returncode == 0
    database.execute("INSERT INTO users (username, email) VALUES ('gone', 'gone@example.com')")
    result = cli("reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert "two steps" not in result.stderr and result.stderr.count("DROP everything below") == 1, result.stderr
    assert database.revision() == steps_id and database.scalar("SELECT count(*) FROM users") == 0
    after = catalog(database)
    assert after["index"] == [(True,)] and after["not_null"] is True
    assert after["constraints"] == {"fk_posts_reviewer_id_users": True, "uq_page_views_url": True}
