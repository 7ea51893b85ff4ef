"""The benchmark script runs (quick mode, tiny sizes) and cleans up: a smoke test, no timing assertion."""
import re
import subprocess
import sys

from conftest import ROOT, cli_env, sibling_url

from db_manage_tool import dbadmin

FIGURES = ("`upgrade` at head", "`setup` on a fresh checkout", "`seed --rows users=30 --rows posts=270` (300 rows)",
           "seed memory",
           "`reset --yes` on a seeded database", "`status` with a 300-row table", "`backup` of the 300-post database")


def test_benchmarks_run_in_quick_mode_on_a_tiny_size(server_url, tmp_path):
    base = sibling_url(server_url, "smoke")
    output = tmp_path / "RESULTS.md"
    result = subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--pairs", "1", "--posts", "300",
                             "--output", str(output)], cwd=ROOT, env=cli_env(base), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    text = output.read_text()
    assert "PostgreSQL" in text and "cores" in text
    for figure in FIGURES:
        assert f"| {figure} |" in text
    with dbadmin.server_connection(base) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"{server_url.database}_smoke%",))
        assert cur.fetchone()[0] == 0, "the scratch databases are dropped"


def test_the_scaling_benchmark_runs_in_quick_mode(server_url, tmp_path):
    """Generated projects of a few tables and revisions: every figure is there, ours never failed, nothing left."""
    text = run_quick(server_url, tmp_path, "scale", "benchmarks/scaling.py")
    assert "## Scaling" in text
    for figure in ("| 8 | setup (fresh database) |", "| 8 | migrate, no change |", "| 8 | check |",
                   "| 8 | reset --yes |", "| 8 | floor: clone the database as a template |",
                   "| 8 | lint (every revision) |", "| 8 | history |"):
        assert figure in text, text
    ours = [line.split("|")[3] for line in text.splitlines() if line.startswith("| 3 |") or line.startswith("| 8 |")]
    assert ours and not [cell for cell in ours if "failed" in cell], text
    assert "| failed:" not in text, "the raw commands work at these sizes too"
    dumps = [re.search(r"\((\d+) MB\)", line) for line in text.splitlines()
             if re.match(r"\| \d+ \| floor: pg_dump --schema-only \|", line)]
    assert dumps and all(int(found.group(1)) < 50 for found in dumps), "pg_dump's own peak, not the benchmark's size"


def test_the_seed_all_benchmark_runs_in_quick_mode(server_url, tmp_path):
    """Ten generated tables: the figure is written, nothing is left behind."""
    text = run_quick(server_url, tmp_path, "seedall", "benchmarks/seed_all.py")
    assert "## Seeding every table" in text and "| `seed --all 50` on 10 tables |" in text


def run_quick(server_url, tmp_path, name, script):
    """Run script --quick on scratch databases named after name; return the RESULTS.md it wrote beside a kept part.

    The scratch databases are dropped at the end, and the file's other sections are kept.
    """
    base = sibling_url(server_url, name)
    output = tmp_path / "RESULTS.md"
    output.write_text("# Benchmark results\n\nkept\n")
    result = subprocess.run([sys.executable, script, "--quick", "--output", str(output)], cwd=ROOT,
                            env=cli_env(base), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    text = output.read_text()
    assert text.startswith("# Benchmark results\n\nkept\n")
    with dbadmin.server_connection(base) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"{server_url.database}_{name}%",))
        assert cur.fetchone()[0] == 0, "the scratch databases are dropped"
    return text


def test_the_test_databases_benchmark_runs_in_quick_mode(server_url, tmp_path):
    """Each strategy is measured on the skeleton, the figures are written, nothing is left behind."""
    text = run_quick(server_url, tmp_path, "tdb", "benchmarks/test_databases.py")
    assert "## Test databases" in text and "### the skeleton" in text
    for figure in ("| plugin: db_manage_url |", "| plugin: db_manage_app |", "| create_all / drop_all per test |",
                   "| transaction rolled back per test |", "| flask db upgrade per test |",
                   "| session start, template kept |"):
        assert figure in text, text
