"""check: exit 0 when models, migrations and database agree; exit 1 listing each difference."""


def test_check_passes_when_everything_agrees(cli, database):
    result = cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agree" in result.stdout


def test_check_reports_a_database_behind_head(cli, database, head_revision):
    assert cli("downgrade", "base").returncode == 0
    result = cli("check")
    assert result.returncode == 1
    assert f"the database is behind: at base, head is {head_revision}" in result.stdout


def test_check_lists_every_drift_in_words(cli, database):
    database.execute("ALTER TABLE users ADD COLUMN nickname int")
    database.execute("ALTER TABLE posts ALTER COLUMN title TYPE varchar(100)")
    database.execute("ALTER TABLE posts ALTER COLUMN content DROP NOT NULL")
    database.execute("CREATE INDEX ix_extra ON users (email)")
    database.execute("ALTER TABLE posts ALTER COLUMN published SET DEFAULT true")
    database.execute("DROP TABLE analytics.page_views")
    result = cli("check")
    assert result.returncode == 1
    for words in ("column users.nickname is in the database, not in the models",
                  "column posts.title: type is VARCHAR(100) in the database, VARCHAR(200) in the models",
                  "column posts.content: nullability is NULL allowed in the database, NOT NULL in the models",
                  "column posts.published: server default is true in the database, false in the models",
                  "index ix_extra on users is in the database, not in the models",
                  "table analytics.page_views is in the models, not in the database"):
        assert words in result.stdout
    assert "6 difference(s)" in result.stderr
    assert "object at 0x" not in result.stdout and "Clause" not in result.stdout


def test_differences_of_plug_ins_are_sentences_too():
    """alembic-postgresql-enum's differences (and any other plug-in's) are described, never a KeyError."""
    from alembic_postgresql_enum.get_enum_data.types import TableReference

    from db_manage_tool.check import describe

    used = [TableReference(table_schema="public", table_name="records", column_name="record_type")]
    assert describe(("change_enum_variants", ["AS", "LD", "HA"], ["AS", "HA", "LD"], used)) == \
        "enum values of public.records.record_type: AS, LD, HA in the database, AS, HA, LD in the models"
    assert describe(("drop_enum", "mood", None, ["sad"])) == "enum type mood is in the database, not in the models"
    assert describe(("add_widget", "w1")) == "add widget: w1"
