"""Every benchmark of db_manage.py against the baseline a user could run instead, side by side.

Whole processes, each pair interleaved (A B A B ...), medians with min and max; the figures
are ratios measured in the same run, since absolute seconds depend on the machine. Scratch
databases are made beside the configured one (default: the embedded server) and dropped.

    python benchmarks/run.py            full run, writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    a smaller run, under two minutes
"""
import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.engine import make_url  # noqa: E402

from app import create_app, db  # noqa: E402
from psycopg2 import sql  # noqa: E402

from benchmarks.measured import measure  # noqa: E402
from db_manage_tool import dbadmin, generate  # noqa: E402
from db_manage_tool.pgtools import find_program, libpq_env, server_major  # noqa: E402
from db_manage_tool.seed import seed_database  # noqa: E402
from db_manage_tool.setup_database import upgrade_to_head  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
OURS = [PY, "db_manage.py"]
FLASK = [PY, "-m", "flask", "--app", "run.py", "db"]


class Bench:
    """Scratch databases, programs and timing for one run."""

    def __init__(self, pairs):
        self.pairs = pairs
        self.base = make_url(create_app().config["SQLALCHEMY_DATABASE_URI"])
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.made = []
        self.server_major = server_major(self.base.render_as_string(hide_password=False))
        self.pg_dump = str(find_program("pg_dump", self.server_major)[0])
        self.bindir = Path(self.pg_dump).parent

    def url(self, name):
        """Return the URL of the scratch database `name` (remembered, dropped at the end)."""
        url = self.base.set(database=f"{self.base.database}_bench_{name}").render_as_string(hide_password=False)
        if url not in self.made:
            self.made.append(url)
        return url

    def app(self, url):
        """Return the application bound to url."""
        return create_app(overrides={"SQLALCHEMY_DATABASE_URI": url})

    def migrated(self, name):
        """Return a fresh scratch database `name` migrated to head."""
        url = self.url(name)
        dbadmin.drop_database(url)
        dbadmin.create_database(url)
        app = self.app(url)
        with app.app_context(), quiet():
            upgrade_to_head()
            db.engine.dispose()
        return url

    def sample(self, url, users=0, posts=0):
        """Empty url's tables, add the sample data and, if asked, generated rows (not timed)."""
        app = self.app(url)
        with app.app_context(), quiet():
            with db.engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE users, posts, analytics.page_views RESTART IDENTITY")
            db.engine.dispose()
            seed_database()
            if users or posts:
                seed_database(rows=[(name, n) for name, n in (("users", users), ("posts", posts)) if n])
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            db.engine.dispose()

    def env(self, url):
        """Return the environment of our commands on url."""
        return {"DATABASE_URL": url, "FLASK_CONFIG": "development"}

    def pair(self, ours, baseline, before=None):
        """Run ours and baseline interleaved self.pairs times; return (our runs, baseline runs) as Run lists."""
        a, b = [], []
        for _ in range(self.pairs):
            for run, runs in ((ours, a), (baseline, b)):
                if before:
                    before()
                runs.append(run())
        return a, b

    def cleanup(self):
        """Drop every scratch database and the work folder."""
        for url in self.made:
            dbadmin.drop_database(url)
        shutil.rmtree(self.workdir, ignore_errors=True)


class Run:
    """Wall seconds and peak memory (MB, the largest process) of one measured step."""

    def __init__(self, seconds, peak_mb):
        self.seconds, self.peak_mb = seconds, peak_mb


def timed(*commands, env=None):
    """Run commands one after the other in the project folder; return their Run (total time, peak memory: the
    command's own, each started by benchmarks/measured.py)."""
    runs = []
    for argv in commands:
        run = measure(argv, ROOT, {**os.environ, "FLASK_APP": "run.py", **(env or {})})
        if run.failed:
            raise SystemExit(f"benchmark step failed: {' '.join(map(str, argv))}\n{run.stderr}")
        runs.append(run)
    return Run(sum(run.seconds for run in runs), max(run.peak_mb for run in runs))


def median(runs):
    """Return the median seconds of runs."""
    return statistics.median(r.seconds for r in runs)


def spread(runs):
    """Return 'median (min-max)' seconds of runs."""
    seconds = [r.seconds for r in runs]
    return f"{statistics.median(seconds):.3f} s ({min(seconds):.3f}-{max(seconds):.3f})"


class quiet:
    """Silence stderr (Alembic's INFO lines, progress messages) while preparing databases."""

    def __enter__(self):
        self.saved, sys.stderr = sys.stderr, open(os.devnull, "w")

    def __exit__(self, *exc):
        sys.stderr.close()
        sys.stderr = self.saved


def upgrade_at_head(b):
    url = b.migrated("upgrade")
    a, base = b.pair(lambda: timed(OURS + ["upgrade"], env=b.env(url)),
                     lambda: timed(FLASK + ["upgrade"], env=b.env(url)))
    ratio = median(a) / median(base)
    return ("`upgrade` at head", "`python db_manage.py upgrade`", "`python -m flask --app run.py db upgrade`",
            a, base, f"wall ratio {ratio:.2f}", "<= 1.10", ratio <= 1.10)


def setup_fresh(b):
    url = b.url("setup")
    name = make_url(url).database
    createdb = str(find_program("createdb", b.server_major)[0])
    a, base = b.pair(lambda: timed(OURS + ["setup"], env=b.env(url)),
                     lambda: timed([createdb, name], FLASK + ["upgrade"], env={**libpq_env(url), **b.env(url)}),
                     before=lambda: dbadmin.drop_database(url))
    ratio = median(a) / median(base)
    return ("`setup` on a fresh checkout", "`python db_manage.py setup`", "`createdb` + `flask db upgrade`",
            a, base, f"wall ratio {ratio:.2f}", "<= 1.3", ratio <= 1.3)


def written_columns(b, url, names):
    """Return {table name: the columns `seed --rows` writes} (those the server does not fill, and OVERRIDES)."""
    from db_manage_tool.seed import find_table, seed_overrides

    with b.app(url).app_context():
        tables = [find_table(name) for name in names]
        overrides, _ = seed_overrides()
        db.engine.dispose()
        return {table.fullname: [c.name for c in table.columns
                                 if not generate.server_owned(c) or c.name in overrides.get(table, {})]
                for table in tables}


def export_new_rows(url, table, columns, after_id, path):
    """Write table's rows with id > after_id (those the command added) to path in COPY text format."""
    import psycopg2

    connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        query = sql.SQL("COPY (SELECT {} FROM {} WHERE id > {} ORDER BY id) TO STDOUT").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table), sql.Literal(after_id))
        with path.open("w") as out:
            connection.cursor().copy_expert(query, out)
    finally:
        connection.close()


def seed_vs_copy(b, total, pairs):
    """`seed --rows` of total rows (a tenth users, the rest posts) against psql \\copy of the same rows."""
    url = b.migrated(f"seed{total}")
    users, posts = total // 10, total - total // 10
    command = OURS + ["seed", "--rows", f"users={users}", "--rows", f"posts={posts}"]
    b.sample(url)  # the sample data only: users 1-3, posts 1-5
    timed(command, env=b.env(url))
    columns = written_columns(b, url, ["users", "posts"])
    files = {name: b.workdir / f"{name}.tsv" for name in columns}
    for (name, cols), after in zip(columns.items(), (3, 5)):
        export_new_rows(url, name, cols, after, files[name])
    psql = [b.bindir / "psql", "--quiet", "--set=ON_ERROR_STOP=1"]
    for name, cols in columns.items():
        psql += ["-c", f"\\copy {name} ({', '.join(cols)}) FROM '{files[name]}'"]
    saved, b.pairs = b.pairs, pairs
    try:
        a, base = b.pair(lambda: timed(command, env=b.env(url)), lambda: timed(psql, env=libpq_env(url)),
                         before=lambda: b.sample(url))
    finally:
        b.pairs = saved
    speed = median(base) / median(a)
    peak = max(r.peak_mb for r in a)
    return (f"`seed --rows users={users} --rows posts={posts}` ({total:,} rows)", "the command",
            "psql `\\copy` of the same rows", a, base, f"speed ratio {speed:.2f}, peak memory {peak:.0f} MB",
            ">= 0.8", speed >= 0.8)


def seed_memory(small, large):
    """Compare the peak memory of the two seed figures."""
    peaks = [max(r.peak_mb for r in row[3]) for row in (small, large)]
    growth = peaks[1] / peaks[0]
    return ("seed memory", f"{peaks[0]:.0f} MB and {peaks[1]:.0f} MB", "-", None, None,
            f"peak memory x{growth:.2f} at ten times the rows", "flat (<= 1.2)", growth <= 1.2)


def reset_seeded(b, users, posts):
    url = b.migrated("reset")
    a, base = b.pair(lambda: timed(OURS + ["reset", "--yes"], env=b.env(url)),
                     lambda: timed(FLASK + ["downgrade", "base"], FLASK + ["upgrade"], env=b.env(url)),
                     before=lambda: b.sample(url, users, posts))
    ratio = median(a) / median(base)
    return ("`reset --yes` on a seeded database", "the command", "`flask db downgrade base` + `flask db upgrade`",
            a, base, f"wall ratio {ratio:.2f}", "<= 1.0", ratio <= 1.0)


def status_large(b, small_url, large_url, posts):
    psql = [b.bindir / "psql", "--quiet", "-c", "select 1"]
    figures = []
    for url in (small_url, large_url):
        a, base = b.pair(lambda: timed(OURS + ["status"], env=b.env(url)),
                         lambda: timed(psql, FLASK + ["current"], env={**libpq_env(url), **b.env(url)}))
        figures.append((a, base, median(a) / median(base)))
    (_, _, small), (a, base, large) = figures
    return (f"`status` with a {posts:,}-row table", "`python db_manage.py status`",
            "`psql -c 'select 1'` + `flask db current`", a, base,
            f"wall ratio {large:.2f} ({small:.2f} on the sample data)", "no growth with rows", large <= small * 1.15)


def backup_large(b, url, posts):
    out = b.workdir / "ours.dump"
    plain = b.workdir / "plain.dump"

    def ours():
        out.unlink(missing_ok=True)  # backup never overwrites a file (not timed)
        return timed(OURS + ["backup", "--output", out], env=b.env(url))

    a, base = b.pair(ours,
                     lambda: timed([b.pg_dump, "--format=custom", f"--file={plain}"], env=libpq_env(url)))
    ratio = median(a) / median(base)
    return (f"`backup` of the {posts:,}-post database", "`python db_manage.py backup`", "`pg_dump -Fc`",
            a, base, f"wall ratio {ratio:.2f}", "<= 1.1", ratio <= 1.1)


def machine(b):
    """Return a line describing the machine and the server."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    where = "embedded" if "host" in b.base.query else "server"
    return (f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.machine()}, Python {platform.python_version()}, "
            f"PostgreSQL {b.server_major} ({where}), {b.pairs} interleaved pairs per figure")


def table(rows):
    """Return the results as a Markdown table."""
    lines = ["| what | ours | baseline | ours: median (min-max) | baseline: median (min-max) | figure | target | met |",
             "|---|---|---|---|---|---|---|---|"]
    for what, ours, baseline, a, base, figure, target, met in rows:
        lines.append(f"| {what} | {ours} | {baseline} | {spread(a) if a else '-'} | {spread(base) if base else '-'} "
                     f"| {figure} | {target} | {'yes' if met else 'NO'} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs and smaller sizes (under two minutes)")
    parser.add_argument("--pairs", type=int, help="interleaved pairs per figure (default 5; 3 with --quick)")
    parser.add_argument("--posts", type=int, help="largest row count (default 1,000,000; 30,000 with --quick)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"), help="Markdown file to write")
    args = parser.parse_args()
    pairs = args.pairs or (3 if args.quick else 5)
    large = args.posts or (30_000 if args.quick else 1_000_000)
    seed_rows = min(100_000, large)
    b = Bench(pairs)
    try:
        small_seed, large_seed = seed_vs_copy(b, seed_rows, pairs), seed_vs_copy(b, large, max(1, min(3, pairs)))
        rows = [upgrade_at_head(b), setup_fresh(b), small_seed, large_seed, seed_memory(small_seed, large_seed),
                reset_seeded(b, 100, seed_rows // 10)]
        small_url = b.migrated("small")
        b.sample(small_url)
        large_url = b.migrated("large")
        b.sample(large_url, 1000, large)
        rows += [status_large(b, small_url, large_url, large), backup_large(b, large_url, large)]
        description = machine(b)
    finally:
        b.cleanup()
    result = table(rows)
    print(result)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    report = f"# Benchmark results\n\n`{command}`, {when}: {description}.\n\n{result}\n"
    output = Path(args.output)  # the other scripts' sections (scaling, writes, reflection) are kept
    previous = output.read_text() if output.exists() else ""
    output.write_text(report + (previous[previous.index("\n## "):] if "\n## " in previous else ""))
    return 0  # a missed target shows as NO in the table; benchmarks are not tests


if __name__ == "__main__":
    sys.exit(main())
