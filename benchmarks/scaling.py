"""How db_manage.py scales with the schema (N tables) and the history (R revisions), against raw `flask db`.

Generated applications (benchmarks/generated_app.py) of 10, 100 and 1,000 tables, and histories of
10, 100, 1,000 and 2,000 revisions; each command timed as a whole process (median of --repeat runs, ours
and the baseline interleaved; at least 7 for the commands that change nothing, whose sub-second
figures this machine's noise moves most) with its own peak memory (benchmarks/measured.py); the per-unit slope between sizes; the ratio to
the raw `flask db` command (Flask-Migrate's own env.py, in a copy of the project) and to the
floors (`pg_dump --schema-only`, loading that dump, a template clone). Appends a section to
benchmarks/RESULTS.md (or --output).

    python benchmarks/scaling.py            the full run (about half an hour here)
    python benchmarks/scaling.py --quick    small sizes, one run each: the test suite's smoke run
"""
import argparse
import compileall
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import flask_migrate  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks import measured  # noqa: E402
from benchmarks.generated_app import write_project  # noqa: E402
from benchmarks.results import replace_section  # noqa: E402
from db_manage_tool import dbadmin  # noqa: E402
from db_manage_tool.pgtools import find_program, libpq_env, server_major  # noqa: E402

PY = sys.executable
FLOOR = "floor: load that dump (psql, one transaction)"  # PostgreSQL's own cost of creating the schema
STOCK_ENV = Path(flask_migrate.__file__).parent / "templates" / "flask" / "env.py"
COLUMN_REVISION = '''"""Add c{n} to table_{table:04d}."""
from alembic import op
import sqlalchemy as sa

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("table_{table:04d}", sa.Column("c{n}", sa.Integer(), nullable=True))


def downgrade():
    op.drop_column("table_{table:04d}", "c{n}")
'''


def measure(argv, cwd, env):
    """Run argv in cwd with env added to this environment; return its Measured (a failure is kept, not raised)."""
    return measured.measure(argv, cwd, {**os.environ, **env})


class Scale:
    """The server, scratch databases and generated projects of one run."""

    def __init__(self, repeat, short_repeat):
        from app import create_app

        self.repeat, self.short_repeat = repeat, short_repeat
        self.base = make_url(create_app().config["SQLALCHEMY_DATABASE_URI"])
        self.major = server_major(self.base.render_as_string(hide_password=False))
        self.bindir = Path(find_program("pg_dump", self.major)[0]).parent
        self.workdir = Path(tempfile.mkdtemp(prefix="scaling-"))
        self.made = []

    def url(self, name):
        """Return the URL of scratch database name (dropped at the end)."""
        url = self.base.set(database=f"{self.base.database}_scale_{name}").render_as_string(hide_password=False)
        self.made.append(url)
        return url

    def fresh(self, url):
        """Drop and create url's database, empty."""
        dbadmin.drop_database(url)
        dbadmin.create_database(url)

    def env(self, url):
        """The environment of a command on url (libpq's too, for the PostgreSQL programs)."""
        return {**libpq_env(url), "DATABASE_URL": url, "FLASK_APP": "genapp:create_app()"}

    def projects(self, tables, revisions=1):
        """Return (ours, raw): a generated project with its history, and its copy on Flask-Migrate's env.py."""
        ours = write_project(self.workdir / f"t{tables}_r{revisions}" / "ours", tables)
        url = self.url(f"t{tables}_r{revisions}_first")
        self.fresh(url)
        done = measure([PY, "db_manage.py", "setup"], ours, self.env(url))
        if done.failed:
            raise SystemExit(f"setup of the generated project failed: {done.failed}")
        add_revisions(ours, revisions - 1, tables)
        raw = ours.parent / "raw"
        shutil.copytree(ours, raw)
        shutil.copy(STOCK_ENV, raw / "migrations" / "env.py")
        for project in (ours, raw):  # bytecode compiled once, as pip does for Flask-Migrate's and Python on first
            compileall.compile_dir(project, quiet=1)  # use (this machine sets PYTHONDONTWRITEBYTECODE=1)
        return ours, raw

    def pair(self, ours, baseline, before=None, short=False):
        """Run ours and baseline (callables returning Measured) interleaved; return their lists (short: a
        command that changes nothing, run short_repeat times)."""
        a, b = [], []
        for _ in range(self.short_repeat if short else self.repeat):
            for run, runs in ((ours, a), (baseline, b)):
                if run is None:
                    continue
                if before:
                    before()
                runs.append(run())
        return a, b

    def cleanup(self):
        """Drop the scratch databases and the work folder."""
        for url in dict.fromkeys(self.made):
            dbadmin.drop_database(url)
        shutil.rmtree(self.workdir, ignore_errors=True)


def add_revisions(project, count, tables):
    """Append count revisions to project's history, each adding one column to one of the first ten tables."""
    versions = project / "migrations" / "versions"
    down = next(versions.glob("*.py")).name.split("_")[0]
    for n in range(1, count + 1):
        revision = f"{n:012x}"
        (versions / f"{revision}_add_c{n}.py").write_text(COLUMN_REVISION.format(
            n=n, table=(n - 1) % min(tables, 10) + 1, revision=revision, down=down))
        down = revision


def seconds(runs):
    """Return the median seconds of runs, or None when any failed."""
    return None if not runs or any(r.failed for r in runs) else statistics.median(r.seconds for r in runs)


def shown(runs):
    """Return runs as 'median s (peak MB)', or why they failed."""
    if not runs:
        return "-"
    failed = next((r.failed for r in runs if r.failed), None)
    if failed:
        return f"failed: {failed}"
    return f"{seconds(runs):.2f} s ({max(r.peak_mb for r in runs):.0f} MB)"


def schema_figures(s, sizes):
    """Rows for each command at each number of tables: ours, raw `flask db`, floors."""
    rows = []
    for tables in sizes:
        ours, raw = s.projects(tables)
        url, raw_url = s.url(f"t{tables}"), s.url(f"t{tables}_raw")  # each side migrates its own database
        ours_cmd = lambda *args: (lambda: measure([PY, "db_manage.py", *args], ours, s.env(url)))  # noqa: E731
        raw_cmd = lambda *args: (lambda: measure([PY, "-m", "flask", "db", *args], raw, s.env(raw_url)))  # noqa: E731
        createdb = [s.bindir / "createdb", make_url(raw_url).database]
        drop = lambda: (dbadmin.drop_database(url), dbadmin.drop_database(raw_url))  # noqa: E731
        rows.append((tables, "setup (fresh database)", *s.pair(
            ours_cmd("setup"), lambda: chain([createdb, [PY, "-m", "flask", "db", "upgrade"]], raw, s.env(raw_url)),
            before=drop)))
        rows.append((tables, "upgrade from base", *s.pair(ours_cmd("upgrade"), raw_cmd("upgrade"),
                                                          before=lambda: (s.fresh(url), s.fresh(raw_url)))))
        measure([PY, "db_manage.py", "upgrade"], ours, s.env(url))  # at head for what follows
        if raw_cmd("upgrade")().failed:  # too large for one transaction: the raw figures below are left out
            raw_cmd = lambda *args: None  # noqa: E731
        rows.append((tables, "migrate, no change", *s.pair(ours_cmd("migrate", "nothing"),
                                                           raw_cmd("migrate", "-m", "nothing"), short=True)))
        rows.append((tables, "check", *s.pair(ours_cmd("check"), raw_cmd("check"), short=True)))
        rows.append((tables, "status", *s.pair(ours_cmd("status"), raw_cmd("current"), short=True)))
        rows.append((tables, "reset --yes", *s.pair(ours_cmd("reset", "--yes"), None)))
        rows += floors(s, tables, url)
        dbadmin.drop_database(url)
        dbadmin.drop_database(raw_url)
    return rows


def chain(commands, cwd, env):
    """Run commands one after the other; return their total as one Measured."""
    steps = []
    for argv in commands:
        steps.append(measure(argv, cwd, env))
        if steps[-1].failed:
            break
    return measured.Measured(sum(step.seconds for step in steps), max(step.peak_mb for step in steps),
                             steps[-1].code, steps[-1].stderr, steps[-1].helper_mb)


def floors(s, tables, url):
    """The PostgreSQL floors at this size: dump the schema, load it into a new database, clone a template."""
    dump = s.workdir / f"schema_{tables}.sql"
    target, clone = s.url(f"t{tables}_load"), s.url(f"t{tables}_clone")
    dumped = [measure([s.bindir / "pg_dump", "--schema-only", f"--file={dump}"], s.workdir, s.env(url))
              for _ in range(s.repeat)]
    loaded = []
    for _ in range(s.repeat):
        s.fresh(target)
        loaded.append(measure([s.bindir / "psql", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction",
                               f"--file={dump}"], s.workdir, s.env(target)))
    cloned = []
    for _ in range(s.repeat):
        dbadmin.drop_database(clone)
        cloned.append(measure([s.bindir / "createdb", "--template", make_url(url).database,
                               make_url(clone).database], s.workdir, s.env(url)))
    for name in (target, clone):
        dbadmin.drop_database(name)
    return [(tables, "floor: pg_dump --schema-only", dumped, []),
            (tables, "floor: load that dump (psql, one transaction)", loaded, []),
            (tables, "floor: clone the database as a template", cloned, [])]


def history_figures(s, sizes):
    """Rows for each command at each history length: ours and raw `flask db`."""
    rows = []
    for revisions in sizes:
        ours, raw = s.projects(10, revisions)
        url, raw_url = s.url(f"r{revisions}"), s.url(f"r{revisions}_raw")
        ours_cmd = lambda *args: (lambda: measure([PY, "db_manage.py", *args], ours, s.env(url)))  # noqa: E731
        raw_cmd = lambda *args: (lambda: measure([PY, "-m", "flask", "db", *args], raw, s.env(raw_url)))  # noqa: E731
        rows.append((revisions, "upgrade from base", *s.pair(ours_cmd("upgrade"), raw_cmd("upgrade"),
                                                             before=lambda: (s.fresh(url), s.fresh(raw_url)))))
        rows.append((revisions, "history", *s.pair(ours_cmd("history"), raw_cmd("history"), short=True)))
        rows.append((revisions, "status", *s.pair(ours_cmd("status"), raw_cmd("current"), short=True)))
        rows.append((revisions, "lint (every revision)", *s.pair(ours_cmd("lint"), None)))
        dbadmin.drop_database(url)
        dbadmin.drop_database(raw_url)
    return rows


def slopes(rows, unit, floor=None):
    """Return, per command, its ms per unit between consecutive sizes, and whether it grows no faster than the
    work: than raw `flask db` where there is one, else than PostgreSQL's own floor (or linearly)."""
    def steps(what, side):
        points = [(size, seconds(runs[side])) for size, name, *runs in rows if name == what]
        if len(points) < 2 or any(t is None for _, t in points):
            return None
        return [(t2 - t1) / (n2 - n1) * 1000 for (n1, t1), (n2, t2) in zip(points, points[1:])]

    reference = steps(floor, 0) if floor else None
    lines = []
    for what in dict.fromkeys(row[1] for row in rows):
        ours, raw = steps(what, 0), steps(what, 1)
        if ours is None:
            continue
        if what == floor:
            verdict = "the reference: PostgreSQL's own growth"
        elif what.startswith("floor:"):
            verdict = "a floor: PostgreSQL's own"
        elif raw:
            verdict = "no faster than raw" if ours[-1] <= raw[-1] * 1.3 + 2.0 else "FASTER THAN RAW"
        elif reference and what != floor and len(ours) > 1:
            grows = ours[-1] / max(ours[0], 0.1) <= 1.5 * reference[-1] / max(reference[0], 0.1)
            verdict = "no faster than the floor" if grows else "FASTER THAN THE FLOOR"
        else:
            verdict = "linear" if len(ours) < 2 or ours[-1] <= max(ours[-2] * 1.5, ours[-2] + 2.0) else "GROWS"
        shown_raw = " / ".join(f"{m:.1f}" for m in raw) if raw else "-"
        lines.append(f"| {what} | {' / '.join(f'{m:.1f}' for m in ours)} | {shown_raw} | {verdict} |")
    header = [f"| command | ours: ms per {unit} between consecutive sizes | raw `flask db` | growth |",
              "|---|---|---|---|"]
    return "\n".join(header + lines)


def table(rows, unit):
    """Return rows as a Markdown table: size, command, ours, raw, ratio."""
    lines = [f"| {unit}s | command | ours: median (peak) | raw `flask db` | ratio |", "|---|---|---|---|---|"]
    for size, what, a, b in rows:
        ratio = f"{seconds(a) / seconds(b):.2f}" if seconds(a) and seconds(b) else "-"
        lines.append(f"| {size:,} | {what} | {shown(a)} | {shown(b)} | {ratio} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (the test suite's smoke run)")
    parser.add_argument("--repeat", type=int, help="runs per figure, median kept (default 3; 1 with --quick)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"),
                        help="Markdown file whose scaling section is replaced (created if missing)")
    args = parser.parse_args()
    # 1,000 revisions between 100 and 2,000: the slope of the small sizes is mostly fixed cost and noise, so
    # growth without a raw command to compare with is judged on the last two slopes.
    # The smoke run (--quick) keeps two history lengths, so that the slopes are computed, and one schema size.
    tables, revisions = ((8,), (3, 8)) if args.quick else ((10, 100, 1000), (10, 100, 1000, 2000))
    repeat = args.repeat or (1 if args.quick else 3)
    s = Scale(repeat, repeat if args.quick else max(repeat, 7))
    started = time.time()
    try:
        schema = schema_figures(s, tables)
        history = history_figures(s, revisions)
    finally:
        s.cleanup()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (f"## Scaling\n\n`python benchmarks/scaling.py{' --quick' if args.quick else ''}`, {when}, "
               f"PostgreSQL {s.major}, {s.repeat} run(s) per figure ({s.short_repeat} for the commands that change "
               f"nothing), {time.time() - started:.0f} s in all; bytecode compiled beforehand for both sides. "
               "Ratios are ours over raw `flask db` (Flask-Migrate's env.py); `status` is compared with "
               "`flask db current`; a failed baseline is shown with its last line. Peak memory is the largest "
               "process's ru_maxrss, the command started by a small helper (benchmarks/measured.py) so that the "
               "figure is the command's own, not the benchmark's size at fork.\n\n"
               f"### With the number of tables\n\n{table(schema, 'table')}\n\n{slopes(schema, 'table', FLOOR)}\n\n"
               f"### With the number of revisions\n\n{table(history, 'revision')}\n\n{slopes(history, 'revision')}\n")
    replace_section(args.output, "Scaling", section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
