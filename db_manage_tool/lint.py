"""`lint`: flag the operations of a revision that lock or break a live database, with a fix for each.

Each revision's upgrade is rendered to SQL offline (`upgrade PREV:REV --sql`, on one script
directory for all of them, so the cost grows with the history, not its square), every statement
tagged with the line of the revision file that emitted it (for `batch_op.<call>` inside
`with op.batch_alter_table(...)`, the line of that call, though the SQL is emitted when the block
ends); squawk checks the SQL of every revision in one run, and its findings are reported at
those lines. Findings on tables
the same revision creates (in their CREATE TABLE too) are dropped, and so are type changes that
PostgreSQL makes without rewriting the table (a varchar or text to a wider varchar or text, when
the operation gives `existing_type=`). Style-only rules (timestamptz, bigint, identity, ...) are
reported with `--style` only. A line (or the line above it) may accept a finding with
`# lint: ignore[rule]`.
"""
import contextlib
import functools
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import click
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationStep
from alembic.util import CommandError
from alembic.ddl.base import AlterColumn
from alembic.ddl.impl import DefaultImpl
from alembic.operations.batch import BatchOperationsImpl
from sqlalchemy.exc import CompileError

from .errors import Failure, NotOffline, first_line
from .application import migrations_directory
from .migration_hooks import alembic_config, script_directory

# Handled elsewhere: env.py sets lock_timeout, and a statement_timeout would cut legitimate long backfills.
ALWAYS_EXCLUDED = ("require-lock-timeout", "require-statement-timeout")
# Advice on the schema's design rather than on the migration's safety: reported with --style only.
STYLE_RULES = ("prefer-timestamp-tz", "prefer-bigint-over-smallint", "prefer-bigint-over-int", "prefer-identity",
               "prefer-text-field", "prefer-robust-stmts")
DEFAULT_EXCLUDES = (*ALWAYS_EXCLUDED, *STYLE_RULES)
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
        "(a longer varchar, or a varchar to text, does not rewrite the table: give existing_type= "
        "so that lint knows the old type)",
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
    "prefer-timestamp-tz": "use sa.DateTime(timezone=True) (timestamptz)",
    "prefer-bigint-over-int": "use sa.BigInteger()",
    "prefer-bigint-over-smallint": "use sa.BigInteger()",
    "prefer-identity": "use sa.Column('id', sa.BigInteger(), sa.Identity(), primary_key=True)",
    "prefer-text-field": "use sa.Text(), with a CHECK constraint if the length must be limited",
}
CREATED = re.compile(r'CREATE TABLE (?:IF NOT EXISTS )?([\w."]+)', re.IGNORECASE)
RENAMED = re.compile(r'ALTER TABLE (?:ONLY )?(?:IF EXISTS )?([\w."]+) RENAME TO ([\w"]+)', re.IGNORECASE)
TOUCHED = re.compile(r'(?:ALTER TABLE (?:ONLY )?(?:IF EXISTS )?|DROP TABLE (?:IF EXISTS )?|\bON (?:ONLY )?)([\w."]+)',
                     re.IGNORECASE)
# A varchar or text type, as the PostgreSQL dialect compiles it: (kind, length or None).
STRING_TYPE = re.compile(r"(VARCHAR|CHARACTER VARYING|TEXT)(?:\s*\((\d+)\))?", re.IGNORECASE)


class Statement(NamedTuple):
    """One write of Alembic's offline SQL: its revision line, text, and whether it is a type change without rewrite."""

    line: int | None
    text: str
    free_retype: bool = False


def lint(revisions=(), excludes=(), style=False):
    """Lint the given revisions (default: all), with the style rules if style; print each finding, fail if any."""
    check_rules(excludes)
    if not (migrations_directory() / "env.py").exists():  # else nothing would be rendered, and CI would pass
        raise Failure(f"{migrations_directory()} has no env.py: run `python db_manage.py adopt` to write the tool's.")
    script = script_directory()
    chosen = list(dict.fromkeys(revision_named(script, r) for r in revisions)) if revisions else list(
        script.walk_revisions())
    skipped = (*(ALWAYS_EXCLUDED if style else DEFAULT_EXCLUDES), *excludes)
    rendered, unrendered, config = {}, 0, alembic_config()
    for revision in reversed(chosen):
        try:
            rendered[revision] = render(revision, script, config)
        except NotRenderable as exc:
            click.echo(f"Warning: {exc}", err=True)
            unrendered += 1
    findings = lint_rendered(rendered, skipped)
    for finding in findings:
        click.echo(finding)
    if findings:
        raise Failure(f"{len(findings)} migration finding(s): fix them, or accept one with `# lint: ignore[RULE]`.")
    skipped_note = f" ({unrendered} could not be rendered offline: see the warnings)" if unrendered else ""
    click.echo(f"No finding in {len(chosen) - unrendered} revision(s){skipped_note}.")


def revision_named(script, name):
    """Return the revision that name (an id or its first characters, head) stands for, or raise click.UsageError."""
    found = script.get_revision(name)
    if found is None:  # base, or nothing
        raise click.UsageError(f"{name!r} is no revision to lint: give revision ids (or their first characters), or "
                               "none for every revision.")
    return found


class NotRenderable(Failure):
    """A revision whose upgrade() cannot be rendered to SQL without a database (it reads rows, say)."""


def lint_written_since(started):
    """Lint the revision files written since the time `started` (after `migrate` or `revision`), as warnings."""
    written = written_since(started)
    if written:
        lint_files(written)


def written_since(started):
    """Return the revision files written since the time `started`."""
    versions = Path(script_directory().versions)
    return [p for p in versions.glob("*.py") if p.stat().st_mtime >= started - 1] if versions.is_dir() else []


def lint_files(paths):
    """Lint the revisions written to paths (after `migrate` or `revision`): findings are warnings only."""
    wanted = {Path(p).resolve() for p in paths}
    script = script_directory()
    try:
        config = alembic_config()
        with quiet_alembic():  # its "Running upgrade ..." would read as if the new revision had been applied
            rendered = {revision: render(revision, script, config) for revision in script.walk_revisions()
                        if Path(revision.path).resolve() in wanted}
        findings = lint_rendered(rendered, DEFAULT_EXCLUDES)
    except Failure as exc:  # e.g. squawk not installed, or not renderable offline: the revision is written all the same
        findings = [f"the new revision was not linted: {exc}"]
    for finding in findings:
        click.echo(f"Warning: {finding}", err=True)


@contextlib.contextmanager
def quiet_alembic():
    """Silence Alembic's progress log (INFO) for the duration, whatever logging the application set up."""
    logger = logging.getLogger("alembic")
    disabled, logger.disabled = logger.disabled, True
    migration = logging.getLogger("alembic.runtime.migration")
    disabled_migration, migration.disabled = migration.disabled, True
    try:
        yield
    finally:
        logger.disabled, migration.disabled = disabled, disabled_migration


def lint_rendered(rendered, excludes):
    """Return the findings of the rendered revisions ({revision: statements}), squawk run once over them all."""
    sqls = {revision: "".join(statement.text for statement in statements) for revision, statements in rendered.items()}
    reported = run_squawk(sqls.values(), excludes)
    return [finding for number, (revision, statements) in enumerate(rendered.items())
            for finding in revision_findings(revision, statements, sqls[revision], reported.get(number, []))]


def revision_findings(revision, statements, sql, reported):
    """Return one revision's findings, as 'file:line: rule: message Fix: ...' sentences, from squawk's on its SQL."""
    statement_of = [s for s in statements for _ in s.text.splitlines(keepends=True)]
    lines = sql.splitlines()
    created = new_tables(sql)
    source = Path(revision.path).read_text().splitlines()
    findings = []
    for finding in reported:
        index, rule = finding["line"], finding["rule_name"]
        statement = statement_of[index] if index < len(statement_of) else None
        if statement is None or statement.line is None or on_new_table(lines, index, created):
            continue  # Alembic's bookkeeping, or a table this revision creates
        if (rule == "changing-column-type" and statement.free_retype) or accepted(source, statement.line, rule):
            continue
        fix = FIXES.get(rule) or finding.get("help") or ""
        findings.append(f"{os.path.relpath(revision.path)}:{statement.line}: {rule}: {finding['message']} Fix: {fix}")
    return findings


def on_new_table(lines, index, created):
    """Return True when SQL line index touches, or is in the CREATE TABLE statement of, a table in created."""
    tables = [TOUCHED.search(lines[index]) if index < len(lines) else None, CREATED.match(statement_head(lines, index))]
    return any(table and normal(table.group(1)) in created for table in tables)


def statement_head(lines, index):
    """Return, on one line and without comments, the SQL statement that holds line index, up to that line."""
    start = min(index, len(lines))
    while start > 0 and not lines[start - 1].rstrip().endswith(";"):
        start -= 1
    kept = [line.strip() for line in lines[start:index + 1] if not line.lstrip().startswith("--")]
    return " ".join(line for line in kept if line)


def render(revision, script, config):
    """Return the Statements of the revision's upgrade, rendered offline (`upgrade DOWN:REV --sql`).

    It runs as `command.upgrade` does, but on the script directory and Alembic configuration given,
    which load every revision file and alembic.ini once for all the revisions linted (a new script
    directory per revision made lint quadratic).
    """
    recorder = SQLRecorder(revision.path)
    config.output_buffer = recorder
    down = revision.down_revision
    down = down[0] if isinstance(down, tuple) else down

    def upgrade(current, context):
        if isinstance(revision.down_revision, tuple):  # a merge: Alembic walks to it from the first parent
            return script._upgrade_revs(revision.revision, current)
        return [MigrationStep.upgrade_from_script(script.revision_map, revision)]  # one step: no walk of the map

    try:
        with contextlib.redirect_stderr(io.StringIO()), recorder.watching():  # redirect: Alembic's INFO lines
            with EnvironmentContext(config, script, fn=upgrade, as_sql=True, starting_rev=down,
                                    destination_rev=revision.revision):
                script.run_env()
    except NotOffline as exc:  # the tool's env.py said so
        raise NotRenderable(f"{os.path.relpath(revision.path)}: not linted: its upgrade() cannot run without a "
                            f"database ({type(exc.__cause__).__name__}: {first_line(str(exc.__cause__))}); review it "
                            "by hand.") from exc
    except (Failure, CommandError):
        raise
    except Exception as exc:  # the revision's own code failed without a database (it reads rows, say)
        raise NotRenderable(f"{os.path.relpath(revision.path)}: not linted: its upgrade() cannot run without a "
                            f"database ({type(exc).__name__}: {exc}); review it by hand.") from exc
    return recorder.statements


class SQLRecorder:
    """An output buffer for Alembic's offline SQL that tags each write with the revision file's line."""

    def __init__(self, path):
        self.path = os.path.realpath(path)
        self.statements = []
        self.batch_line = None  # the line of the batch operation being flushed, if any
        self.free_retype = False  # whether the construct being rendered is a type change without rewrite

    def write(self, text):
        line = self.batch_line if self.batch_line is not None else self.revision_line()
        self.statements.append(Statement(line, text, self.free_retype))

    def flush(self):
        pass

    def revision_line(self):
        """Return the line of the revision file that the current call comes from, or None."""
        frame = sys._getframe(1)
        while frame is not None and real_path(frame.f_code.co_filename) != self.path:
            frame = frame.f_back
        return frame.f_lineno if frame else None

    @contextlib.contextmanager
    def at_line(self, line):
        """Tag the writes of the block with line (when known) rather than with the caller's."""
        previous, self.batch_line = self.batch_line, line if line is not None else self.batch_line
        try:
            yield
        finally:
            self.batch_line = previous

    @contextlib.contextmanager
    def watching(self):
        """While rendering, tag batch operations with their own lines, and note type changes without rewrite."""
        recorder, batch_init, execute = self, BatchOperationsImpl.__init__, DefaultImpl._exec

        def init(batch, *args, **kwargs):
            batch_init(batch, *args, **kwargs)
            batch.batch = LineTaggedBatch(recorder)

        def exec_(impl, construct, *args, **kwargs):
            recorder.free_retype = rewrite_free(construct, impl.dialect)
            try:
                return execute(impl, construct, *args, **kwargs)
            finally:
                recorder.free_retype = False

        with replaced(BatchOperationsImpl, "__init__", init), replaced(DefaultImpl, "_exec", exec_):
            yield


@functools.lru_cache(maxsize=4096)
def real_path(filename):
    """Return os.path.realpath(filename), once per file name (asked for every frame of every statement)."""
    return os.path.realpath(filename)


@contextlib.contextmanager
def replaced(owner, name, value):
    """Set owner.name to value for the duration of the block (Alembic's internals, while rendering only)."""
    original = owner.__dict__[name]
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


class LineTaggedBatch(list):
    """The operations of a batch_alter_table block, which remembers the revision line of each as it is added
    and tags the SQL of each with it as the block's end runs them."""

    def __init__(self, recorder):
        super().__init__()
        self.recorder = recorder
        self.lines = []

    def append(self, operation):
        """Add operation, noting the revision line that called it."""
        self.lines.append(self.recorder.revision_line())
        super().append(operation)

    def __iter__(self):
        """Yield the operations; the SQL written while the caller runs one is tagged with its line."""
        operations = list(super().__iter__())
        lines = self.lines if len(self.lines) == len(operations) else [None] * len(operations)  # added otherwise
        for line, operation in zip(lines, operations):
            with self.recorder.at_line(line):
                yield operation


def rewrite_free(construct, dialect):
    """Return True when construct changes a column's type in a way PostgreSQL does without rewriting the table."""
    new, old = getattr(construct, "type_", None), getattr(construct, "existing_type", None)
    if not isinstance(construct, AlterColumn) or new is None or old is None or getattr(construct, "using", None):
        return False
    try:
        new, old = new.compile(dialect=dialect), old.compile(dialect=dialect)
    except CompileError:  # e.g. an Enum without a name: the old type is unknown
        return False
    return new == old or widens(STRING_TYPE.fullmatch(old), STRING_TYPE.fullmatch(new))


def widens(old, new):
    """Return True when the varchar or text type matched by new holds every value of old's (no length: unlimited)."""
    if not (old and new):
        return False
    old_length, new_length = old.group(2), new.group(2)
    if new_length is None:
        return True
    return old.group(1).upper() != "TEXT" and old_length is not None and int(new_length) >= int(old_length)


def squawk_program():
    """Return the path of squawk, beside this interpreter or on PATH; raise Failure when it is not installed."""
    squawk = shutil.which("squawk", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if squawk is None:
        raise Failure("squawk is not installed: `pip install 'flask-db-manage[lint]'` (the package squawk-cli).")
    return squawk


def check_rules(excludes):
    """Raise click.UsageError when squawk does not know a rule given to --exclude (it would skip nothing)."""
    if any(not rule.strip() for rule in excludes):
        raise click.UsageError("--exclude needs a rule name, e.g. --exclude ban-drop-column.")
    if not excludes:
        return
    result = subprocess.run([squawk_program(), f"--exclude={','.join(excludes)}"], input="SELECT 1;",
                            capture_output=True, text=True)
    unknown = re.search(r"invalid rule name (\S+)", result.stderr)
    if unknown:
        raise click.UsageError(f"squawk has no rule {unknown.group(1)!r} to --exclude: use one of the rules lint "
                               f"reports, such as {', '.join(sorted({*FIXES, *STYLE_RULES}))} (every rule: "
                               "https://squawkhq.com/docs/rules).")


def run_squawk(sqls, excludes):
    """Return squawk's JSON findings (lines 0-based) on each SQL text, without the excluded rules, as
    {position in sqls: [findings]}: one squawk process for them all, each text in a file of its own."""
    with tempfile.TemporaryDirectory(prefix="db_manage_lint_") as folder:
        paths = []
        for number, sql in enumerate(sqls):
            paths.append(Path(folder) / f"{number}.sql")
            paths[-1].write_text(sql)
        if not paths:
            return {}
        result = subprocess.run([squawk_program(), "--reporter", "json", f"--exclude={','.join(excludes)}",
                                 *map(str, paths)], capture_output=True, text=True, cwd=folder)
    try:
        findings = json.loads(result.stdout) if result.stdout.strip() else None
    except json.JSONDecodeError:
        findings = None
    if findings is None and (result.returncode != 0 or result.stderr.strip()):
        raise Failure(f"squawk could not check the SQL: {result.stderr.strip() or result.stdout.strip()}")
    by_text = {}
    for finding in findings or []:
        by_text.setdefault(int(Path(finding["file"]).stem), []).append(finding)
    return by_text


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
