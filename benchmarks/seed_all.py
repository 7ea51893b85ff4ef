"""`seed --all N` on a generated schema of 100 tables, against psql `\\copy` of the same rows into the same tables.

The generated application (benchmarks/generated_app.py): each table has an id, a unique name, a
text body, a server-filled timestamp and a foreign key to the previous table. `seed --all N`
fills every table in one transaction, parents first; the baseline loads the very rows it wrote
(exported once) with one psql `\\copy` per table, in one psql session. Before each run every
table is emptied. Interleaved runs, medians; the figure is the speed ratio. Writes the section
"Seeding every table" of benchmarks/RESULTS.md (or --output).

    python benchmarks/seed_all.py            100 tables of 10,000 rows (1,000,000 rows)
    python benchmarks/seed_all.py --quick    10 tables of 50 rows: the test suite's smoke run
"""
import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg2 import sql  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks import measured  # noqa: E402
from benchmarks.generated_app import write_project  # noqa: E402
from benchmarks.results import replace_section  # noqa: E402
from db_manage_tool import dbadmin  # noqa: E402
from db_manage_tool.pgtools import find_program, libpq_env, server_major  # noqa: E402

PY = sys.executable
TITLE = "Seeding every table"
COLUMNS = ("id", "name", "body", "parent_id")  # what seed writes: created_at is the server's


def environment(url):
    """Return the environment of a command on url (libpq's too, for psql)."""
    import os

    return {**os.environ, **libpq_env(url), "DATABASE_URL": url, "FLASK_APP": "genapp:create_app()"}


def run(argv, cwd, url):
    """Run argv in cwd on url; return its Measured, stopping the benchmark when it failed."""
    result = measured.measure([str(a) for a in argv], cwd, environment(url))
    if result.failed:
        raise SystemExit(f"{' '.join(map(str, argv[1:3]))} failed: {result.failed}")
    return result


def table_columns(tables):
    """Return (table, the columns seed writes) of the generated tables, parents first (the first has no parent)."""
    return [(f"table_{n:04d}", ", ".join(c for c in COLUMNS if n > 1 or c != "parent_id")) for n in range(1, tables + 1)]


def truncate(url, tables):
    """Empty every generated table and restart its sequence."""
    with dbadmin.server_connection(url, target_first=True) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
            sql.SQL(", ").join(sql.Identifier(name) for name, _ in table_columns(tables))))


def export(url, tables, folder, bindir):
    """Write each generated table's rows (the columns seed writes) to folder/table.tsv."""
    import subprocess

    for name, columns in table_columns(tables):
        subprocess.run([bindir / "psql", "--quiet", "--set=ON_ERROR_STOP=1", "-c",
                        f"\\copy (SELECT {columns} FROM {name} ORDER BY id) TO '{folder / name}.tsv'"],
                       env=environment(url), check=True, capture_output=True)


def copy_command(tables, folder, bindir):
    """Return the psql command that loads every exported table in one session, parents first."""
    command = [bindir / "psql", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction"]
    for name, columns in table_columns(tables):
        command += ["-c", f"\\copy {name} ({columns}) FROM '{folder / name}.tsv'"]
    return command


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 tables of 50 rows, one pair")
    parser.add_argument("--tables", type=int, help="generated tables (default 100; 10 with --quick)")
    parser.add_argument("--rows", type=int, help="rows per table (default 10,000; 50 with --quick)")
    parser.add_argument("--pairs", type=int, help="interleaved pairs (default 5; 1 with --quick)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"), help="Markdown file to write")
    args = parser.parse_args()
    tables = args.tables or (10 if args.quick else 100)
    rows = args.rows or (50 if args.quick else 10_000)
    pairs = args.pairs or (1 if args.quick else 5)
    from app import create_app

    base = make_url(create_app().config["SQLALCHEMY_DATABASE_URI"])
    url = base.set(database=f"{base.database}_seedall").render_as_string(hide_password=False)
    bindir = Path(find_program("psql", server_major(base.render_as_string(hide_password=False)))[0]).parent
    workdir = Path(tempfile.mkdtemp(prefix="seed-all-"))
    try:
        project = write_project(workdir / "project", tables)
        dbadmin.drop_database(url)
        run([PY, "db_manage.py", "setup"], project, url)
        seed = [PY, "db_manage.py", "seed", "--all", str(rows)]
        run(seed, project, url)
        export(url, tables, workdir, bindir)
        ours, baseline = [], []
        for _ in range(pairs):
            for command, runs in ((seed, ours), (copy_command(tables, workdir, bindir), baseline)):
                truncate(url, tables)
                runs.append(run(command, project, url))
    finally:
        dbadmin.drop_database(url)
        shutil.rmtree(workdir, ignore_errors=True)
    a, b = (statistics.median(r.seconds for r in runs) for runs in (ours, baseline))
    peak = max(r.peak_mb for r in ours)
    ratio = b / a
    section = (f"## {TITLE}\n\n`python benchmarks/seed_all.py{' --quick' if args.quick else ''}`: a generated schema "
               f"of {tables} tables (each a foreign key to the previous one), {rows:,} rows each "
               f"({tables * rows:,} rows), {pairs} interleaved pairs, medians.\n\n"
               "| what | ours | baseline | ours: median | baseline: median | figure | target | met |\n"
               "|---|---|---|---|---|---|---|---|\n"
               f"| `seed --all {rows}` on {tables} tables | the command | psql `\\copy` of the same rows, one session | "
               f"{a:.2f} s | {b:.2f} s | speed ratio {ratio:.2f}, peak memory {peak:.0f} MB | >= 0.8 | "
               f"{'yes' if ratio >= 0.8 else 'NO'} |\n")
    print(section)
    replace_section(args.output, TITLE, section)
    return 0  # a missed target shows as NO in the table; benchmarks are not tests


if __name__ == "__main__":
    sys.exit(main())
