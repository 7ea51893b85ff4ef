"""`lint`: flag the operations of a revision that lock or break a live database, with a fix for each.

Each revision's upgrade is rendered to SQL offline (`upgrade PREV:REV --sql`), every statement
tagged with the line of the revision file that emitted it; squawk checks the SQL, and its
findings are reported at those lines. Findings on tables the same revision creates are
dropped, and a line (or the line above it) may accept a finding with `# lint: ignore[rule]`.
"""
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
from alembic import command

from app.errors import Failure
from app.migration_hooks import alembic_config, script_directory

# Noise on Alembic's output, or handled elsewhere (env.py sets lock_timeout; a statement_timeout
# would cut legitimate long backfills).
DEFAULT_EXCLUDES = ("prefer-bigint-over-int", "prefer-identity", "prefer-text-field", "prefer-robust-stmts",
                    "require-lock-timeout", "require-statement-timeout")
FIXES = {
    "require-concurrent-index-creation":
        "create it with op.create_index(..., postgresql_concurrently=True) inside "
        "`with op.get_context().autocommit_block():`",
    "adding-required-field":
        "add the column nullable or with a server_default, backfill it, and set nullable=False in a later revision",
    "adding-not-nullable-field":
        "add the column nullable, backfill it, and set nullable=False in a later revision",
    "changing-column-type":
        "add a new column, backfill it, move the code to it, and drop the old one later "
        "(only a longer varchar or a varchar to text avoids rewriting the table)",
    "renaming-column":
        "running code still uses the old name: add the new column, write both, move reads, drop the old one later",
    "renaming-table":
        "running code still uses the old name: create the new table (or a view), move the code, drop the old later",
    "ban-drop-column":
        "deploy code that no longer uses the column first, then drop it in a later revision (its data is lost)",
    "ban-drop-table":
        "deploy code that no longer uses the table first, then drop it in a later revision (its data is lost)",
    "adding-foreign-key-constraint":
        "use op.create_foreign_key(..., postgresql_not_valid=True), then VALIDATE CONSTRAINT in a later revision",
    "constraint-missing-not-valid":
        "add the constraint with postgresql_not_valid=True (or NOT VALID), then VALIDATE CONSTRAINT in a later revision",
    "disallowed-unique-constraint":
        "build a unique index CONCURRENTLY first (autocommit_block), then ADD CONSTRAINT ... UNIQUE USING INDEX",
}
CREATED = re.compile(r'CREATE TABLE (?:IF NOT EXISTS )?([\w."]+)', re.IGNORECASE)
RENAMED = re.compile(r'ALTER TABLE (?:ONLY )?(?:IF EXISTS )?([\w."]+) RENAME TO ([\w"]+)', re.IGNORECASE)
TOUCHED = re.compile(r'(?:ALTER TABLE (?:ONLY )?(?:IF EXISTS )?|DROP TABLE (?:IF EXISTS )?|\bON (?:ONLY )?)([\w."]+)',
                     re.IGNORECASE)


def lint(revisions=(), excludes=()):
    """Lint the given revisions (default: all); print each finding and raise Failure if there is any."""
    script = script_directory()
    chosen = [script.get_revision(r) for r in revisions] if revisions else list(script.walk_revisions())
    findings = [f for revision in reversed(chosen) for f in lint_revision(revision, (*DEFAULT_EXCLUDES, *excludes))]
    for finding in findings:
        click.echo(finding)
    if findings:
        raise Failure(f"{len(findings)} migration finding(s): fix them, or accept one with `# lint: ignore[RULE]`.")
    click.echo(f"No finding in {len(chosen)} revision(s).")


def lint_files(paths):
    """Lint the revisions written to paths (after `migrate` or `revision`): findings are warnings only."""
    wanted = {Path(p).resolve() for p in paths}
    try:
        findings = [f for revision in script_directory().walk_revisions() if Path(revision.path).resolve() in wanted
                    for f in lint_revision(revision, DEFAULT_EXCLUDES)]
    except Failure as exc:  # e.g. squawk not installed: the revision is written all the same
        findings = [f"the new revision was not linted: {exc}"]
    for finding in findings:
        click.echo(f"Warning: {finding}", err=True)


def lint_revision(revision, excludes):
    """Return the findings of one revision, as 'file:line: rule: message Fix: ...' sentences."""
    statements = render(revision)
    sql = "".join(text for _, text in statements)
    line_of = [line for line, text in statements for _ in text.splitlines(keepends=True)]
    lines = sql.splitlines()
    created = new_tables(sql)
    source = Path(revision.path).read_text().splitlines()
    findings = []
    for finding in run_squawk(sql, excludes):
        index = finding["line"]
        python_line = line_of[index] if index < len(line_of) else None
        touched = TOUCHED.search(lines[index]) if index < len(lines) else None
        if python_line is None or (touched and normal(touched.group(1)) in created):
            continue  # Alembic's bookkeeping, or a table this revision creates
        rule = finding["rule_name"]
        if accepted(source, python_line, rule):
            continue
        fix = FIXES.get(rule) or finding.get("help") or ""
        findings.append(f"{os.path.relpath(revision.path)}:{python_line}: {rule}: {finding['message']} Fix: {fix}")
    return findings


def render(revision):
    """Return [(line in the revision file or None, SQL text)] of the revision's upgrade, rendered offline."""
    recorder = SQLRecorder(revision.path)
    config = alembic_config()
    config.output_buffer = recorder
    down = revision.down_revision
    down = down[0] if isinstance(down, tuple) else down
    with contextlib.redirect_stderr(io.StringIO()):  # Alembic's INFO lines
        command.upgrade(config, f"{down}:{revision.revision}" if down else revision.revision, sql=True)
    return recorder.chunks


class SQLRecorder:
    """An output buffer for Alembic's offline SQL that tags each write with the revision file's line."""

    def __init__(self, path):
        self.path = os.path.realpath(path)
        self.chunks = []

    def write(self, text):
        frame = sys._getframe(1)
        while frame is not None and os.path.realpath(frame.f_code.co_filename) != self.path:
            frame = frame.f_back
        self.chunks.append((frame.f_lineno if frame else None, text))

    def flush(self):
        pass


def run_squawk(sql, excludes):
    """Return squawk's JSON findings for sql (lines 0-based), without the excluded rules."""
    squawk = shutil.which("squawk", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if squawk is None:
        raise Failure("squawk is not installed: `pip install -r requirements-dev.txt` (package squawk-cli).")
    result = subprocess.run([squawk, "--reporter", "json", f"--exclude={','.join(excludes)}"],
                            input=sql, capture_output=True, text=True)
    try:
        return json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise Failure(f"squawk could not check the SQL: {result.stderr.strip() or result.stdout.strip()}") from None


def new_tables(sql):
    """Return the tables that sql creates, under their later names too when it renames them."""
    created = {normal(name) for name in CREATED.findall(sql)}
    for old, new in RENAMED.findall(sql):
        if normal(old) in created:
            created.add(normal(old).rsplit(".", 1)[0] + "." + new.replace('"', "").lower())
    return created


def accepted(source, line, rule):
    """Return True when the line or the one above says `# lint: ignore` or `# lint: ignore[rule]`."""
    for text in source[max(line - 2, 0):line]:
        match = re.search(r"#\s*lint:\s*ignore(?:\[([\w,\s-]+)\])?", text)
        if match and (match.group(1) is None or rule in [r.strip() for r in match.group(1).split(",")]):
            return True
    return False


def normal(name):
    """Return a table name without quotes, lower case, with its schema."""
    name = name.replace('"', "").lower()
    return name if "." in name else f"public.{name}"
