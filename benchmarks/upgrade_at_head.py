"""`upgrade` on a database already at head: db_manage.py against the raw `flask db upgrade`.

Whole processes, interleaved A B A B; the figure is the ratio of the medians (target <= 1.10).
Usage: python benchmarks/upgrade_at_head.py [--pairs N]   (uses the configured database)
"""
import argparse
import statistics
import subprocess
import sys

from common import HEADER, ROOT, interleaved, table_row, wall_time

TARGET = 1.10


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=9, help="interleaved pairs to run (default 9)")
    args = parser.parse_args()
    subprocess.run([sys.executable, "db_manage.py", "setup"], cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
    ours = [sys.executable, "db_manage.py", "upgrade"]
    baseline = [sys.executable, "-m", "flask", "--app", "run.py", "db", "upgrade"]
    wall_time(baseline)  # warm the file cache and the embedded server
    a, b = interleaved(lambda: wall_time(ours), lambda: wall_time(baseline), args.pairs)
    ratio = statistics.median(a) / statistics.median(b)
    print(HEADER)
    print(table_row("`upgrade` at head: wall ratio", a, b, ratio, f"<= {TARGET}"))
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
