"""lint: operations unsafe on a live database are flagged at their line, with a fix; safe forms are not."""
from conftest import versions

RISKY = {  # operation -> the rule it must raise
    "op.create_index('ix_users_email', 'users', ['email'])": "require-concurrent-index-creation",
    "op.add_column('users', sa.Column('age', sa.Integer(), nullable=False))": "adding-required-field",
    "op.alter_column('posts', 'title', type_=sa.String(300))": "changing-column-type",
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


def test_lint_of_every_revision_is_clean_for_this_project(cli, database):
    result = cli("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrate_lints_the_file_it_writes(cli, project, database):
    user = project / "app" / "models" / "user.py"
    user.write_text(user.read_text().replace(
        'email = db.Column(db.String(120), unique=True, nullable=False)',
        'email = db.Column(db.String(120), unique=True, nullable=False, index=True)'))
    result = cli("migrate", "Index e-mails")
    assert result.returncode == 0, result.stderr
    assert "Warning: migrations/versions/" in result.stderr
    assert "require-concurrent-index-creation" in result.stderr
