"""lint: operations unsafe on a live database are flagged at their line, with a fix; safe forms are not."""
from conftest import versions

RISKY = {  # operation -> the rule it must raise
    "op.create_index('ix_users_email', 'users', ['email'])": "require-concurrent-index-creation",
    "op.add_column('users', sa.Column('age', sa.Integer(), nullable=False))": "adding-required-field",
    "op.alter_column('posts', 'author_id', type_=sa.BigInteger(), existing_type=sa.Integer())": "changing-column-type",
    "op.alter_column('users', 'email', new_column_name='mail')": "renaming-column",
    "op.rename_table('posts', 'articles')": "renaming-table",
    "op.drop_column('posts', 'content')": "ban-drop-column",
    "op.drop_table('page_views', schema='analytics')": "ban-drop-table",
    "op.create_foreign_key('fk_x', 'posts', 'users', ['author_id'], ['id'])": "adding-foreign-key-constraint",
    "op.create_check_constraint('ck_posts_title', 'posts', 'length(title) > 0')": "constraint-missing-not-valid",
    "op.create_unique_constraint('uq_x', 'users', ['username', 'email'])": "disallowed-unique-constraint",
    "op.execute('CREATE INDEX ix_raw ON users (email)')": "require-concurrent-index-creation",
    "op.execute('ALTER TABLE posts DROP COLUMN slug')": "ban-drop-column",
}
SAFE = [
    "with op.get_context().autocommit_block():",
    "    op.create_index('ix_users_c', 'users', ['email'], postgresql_concurrently=True)",
    "op.add_column('users', sa.Column('age', sa.Integer(), nullable=False, server_default='0'))",
    "op.add_column('users', sa.Column('nick', sa.Text(), nullable=True))",
    "op.create_foreign_key('fk_y', 'posts', 'users', ['author_id'], ['id'], postgresql_not_valid=True)",
    "op.create_check_constraint('ck_t', 'posts', 'length(title) > 0', postgresql_not_valid=True)",
    "op.drop_column('posts', 'content')  # lint: ignore[ban-drop-column]",
    "# lint: ignore",
    "op.drop_table('page_views', schema='analytics')",
    # A longer varchar does not rewrite the table.
    "op.alter_column('posts', 'title', type_=sa.String(300), existing_type=sa.String(200))",
    # Operations on a table created in the same revision are not findings.
    "op.create_table('t', sa.Column('id', sa.Integer, primary_key=True), sa.Column('n', sa.Text))",
    "op.create_index('ix_t', 't', ['id'])",
    "op.add_column('t', sa.Column('x', sa.Integer(), nullable=False))",
    "op.alter_column('t', 'x', type_=sa.BigInteger())",
    "op.alter_column('t', 'n', new_column_name='m')",
    "op.create_unique_constraint('uq_t', 't', ['x'])",
    "op.drop_column('t', 'm')",
    "op.rename_table('t', 't2')",
    "op.execute('CREATE INDEX ix_t2 ON t2 (id)')",
]


def write_revision(cli, project, message, lines):
    """Write a revision whose upgrade() is lines; return (revision id, path, first line number of upgrade's body)."""
    before = versions(project)
    assert cli("revision", message).returncode == 0
    (name,) = set(versions(project)) - set(before)
    path = project / "migrations" / "versions" / name
    text = path.read_text()
    body = "\n".join(f"    {line}" for line in lines)
    path.write_text(text.replace("def upgrade():\n    pass", f"def upgrade():\n{body}"))
    first = text.splitlines().index("def upgrade():") + 2
    return name.split("_")[0], path, first


def test_each_risky_operation_is_flagged_at_its_line_with_a_fix(cli, project, database):
    revision, path, first = write_revision(cli, project, "Risky", list(RISKY))
    result = cli("lint", revision)
    assert result.returncode == 1
    findings = [line for line in result.stdout.splitlines() if line.startswith("migrations/versions/")]
    for offset, (operation, rule) in enumerate(RISKY.items()):
        expected = f"migrations/versions/{path.name}:{first + offset}: {rule}: "
        matches = [f for f in findings if f.startswith(expected)]
        assert matches, f"{operation} should raise {rule}"
        assert " Fix: " in matches[0] and not matches[0].endswith("Fix: ")
    assert "migration finding(s)" in result.stderr


def test_safe_forms_and_accepted_findings_are_not_flagged(cli, project, database):
    revision, _, _ = write_revision(cli, project, "Safe", SAFE)
    result = cli("lint", revision)
    assert result.returncode == 0, result.stdout
    assert "No finding in 1 revision(s)" in result.stdout


def test_batch_operations_are_flagged_at_the_batch_op_line(cli, project, database):
    lines = [
        "with op.batch_alter_table('users') as batch_op:",
        "    batch_op.add_column(sa.Column('age', sa.Integer(), nullable=False))",
        "    batch_op.alter_column('username', type_=sa.String(20), existing_type=sa.String(80))",
        "    batch_op.drop_column('email')",
        "    batch_op.create_index('ix_users_username', ['username'])",
        "    batch_op.drop_column('created_at')  # lint: ignore[ban-drop-column]",
        "    # lint: ignore[require-concurrent-index-creation]",
        "    batch_op.create_index('ix_users_created', ['created_at'])",
    ]
    revision, _, first = write_revision(cli, project, "Batch", lines)
    result = cli("lint", revision)
    assert result.returncode == 1
    found = {(int(f.split(":")[1]), f.split(": ")[1]) for f in findings(result)}
    assert found == {(first + 1, "adding-required-field"), (first + 2, "changing-column-type"),
                     (first + 3, "ban-drop-column"), (first + 4, "require-concurrent-index-creation")}, result.stdout


def test_type_changes_that_do_not_rewrite_the_table_are_not_flagged(cli, project, database):
    lines = [
        "op.alter_column('users', 'username', type_=sa.String(120), existing_type=sa.String(80))",
        "op.alter_column('posts', 'slug', type_=sa.Text(), existing_type=sa.String(200))",
        "op.alter_column('posts', 'content', type_=sa.String(), existing_type=sa.Text())",
        "op.alter_column('users', 'email', type_=sa.String(), existing_type=sa.String(120))",
        "op.alter_column('posts', 'author_id', type_=sa.BigInteger(), existing_type=sa.Integer())",
        "op.alter_column('posts', 'title', type_=sa.String(20), existing_type=sa.String(200))",
        "op.alter_column('users', 'username', type_=sa.Text())",  # the old type is unknown
        "op.alter_column('posts', 'content', type_=sa.String(50), existing_type=sa.Text())",
    ]
    revision, _, first = write_revision(cli, project, "Types", lines)
    result = cli("lint", revision)
    assert result.returncode == 1
    found = {(int(f.split(":")[1]), f.split(": ")[1]) for f in findings(result)}
    assert found == {(first + offset, "changing-column-type") for offset in (4, 5, 6, 7)}, result.stdout


def test_style_rules_are_reported_with_style_only(cli, project, database):
    lines = ["op.add_column('users', sa.Column('seen', sa.DateTime()))"]
    revision, path, first = write_revision(cli, project, "Seen", lines)
    result = cli("lint", revision)
    assert result.returncode == 0, result.stdout
    result = cli("lint", revision, "--style")
    assert result.returncode == 1
    assert f"migrations/versions/{path.name}:{first}: prefer-timestamp-tz: " in result.stdout
    assert "require-lock-timeout" not in result.stdout and "require-statement-timeout" not in result.stdout
    result = cli("lint", revision, "--style", "--exclude", "prefer-timestamp-tz")
    assert result.returncode == 0, result.stdout


def test_a_table_created_in_the_revision_has_no_finding_even_with_style(cli, project, database):
    lines = [
        "op.create_table('visits', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('at', sa.DateTime()),",
        "                sa.Column('n', sa.SmallInteger()), sa.Column('label', sa.String(20)),",
        "                sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE')))",
        "op.alter_column('visits', 'label', type_=sa.Integer(), existing_type=sa.String(20),",
        "                postgresql_using='label::integer')",
    ]
    revision, _, _ = write_revision(cli, project, "Visits", lines)
    result = cli("lint", revision, "--style")
    assert result.returncode == 0, result.stdout


def findings(result):
    """Return the finding lines of a lint run's output."""
    return [line for line in result.stdout.splitlines() if line.startswith("migrations/versions/")]


def test_lint_of_every_revision_is_clean_for_this_project(cli, database):
    result = cli("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrate_lints_the_file_it_writes(cli, project, database):
    user = project / "app" / "models" / "user.py"
    user.write_text(user.read_text().replace(
        'email = db.Column(db.String(120), unique=True, nullable=False)',
        'email = db.Column(db.String(120), unique=True, nullable=False, index=True)'))
    result = cli("migrate", "--plain", "Index e-mails")  # Alembic's own form: a build that blocks writes
    assert result.returncode == 0, result.stderr
    assert "Warning: migrations/versions/" in result.stderr
    assert "require-concurrent-index-creation" in result.stderr
