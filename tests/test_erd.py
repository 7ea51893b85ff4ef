"""erd: a Mermaid diagram of every model, kept in docs/erd.md."""
import re

from conftest import ROOT, add_model

from app import db
from db_manage_tool.erd import mermaid

ATTRIBUTE = re.compile(r'^        [a-z][a-z0-9_()\[\]-]* \w+( (PK|FK|UK)(, (PK|FK|UK))*)?( "[^"]*")?$')
AUDIT_MODEL = '''
from app import db


class AuditLog(db.Model):
    __tablename__ = "logs"
    __table_args__ = {"schema": "audit"}
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"))
    amount = db.Column(db.Numeric(10, 2))
'''


NO_SERVER = "postgresql://nobody@127.0.0.1:1/none"  # erd needs no database: none answers here


def test_erd_is_mermaid_shaped_and_names_every_table(cli, project):
    add_model(project, "audit_log", AUDIT_MODEL)
    result = cli("erd", url=NO_SERVER)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "erDiagram"
    for table in ("users", "posts", "analytics.page_views", "audit.logs"):
        assert f'    "{table}" {{' in lines
    attributes = [line for line in lines if line.startswith("        ")]
    assert attributes and all(ATTRIBUTE.match(line) for line in attributes), attributes
    assert "        integer id PK" in lines and "        numeric(10-2) amount" in lines
    assert '    "users" ||--o{ "posts" : author_id' in lines
    assert '    "users" |o--o{ "audit.logs" : user_id' in lines, "a nullable foreign key is optional"


def test_committed_diagram_is_up_to_date():
    committed = (ROOT / "docs" / "erd.md").read_text()
    assert "```mermaid\n" + mermaid(db.metadata) + "```\n" in committed, \
        "run `python db_manage.py erd --output docs/erd.md`"


def test_erd_output_writes_markdown(cli, project):
    result = cli("erd", "--output", "docs/model.md", url=NO_SERVER)
    assert result.returncode == 0, result.stderr
    text = (project / "docs" / "model.md").read_text()
    assert text.startswith("# Entity-relationship diagram") and "```mermaid\nerDiagram\n" in text
