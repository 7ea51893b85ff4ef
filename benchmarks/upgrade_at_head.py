"""`upgrade` on a database already at head: db_manage.py against the raw `flask db upgrade`.

Whole processes, interleaved A B A B, median of the pairs; the figure is the ratio of
the medians (target <= 1.10), since absolute seconds depend on the machine.
Usage: python benchmarks/upgrade_at_head.py [--pairs N]   (uses the configured database)
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.10


def wall_time(argv):
    """Run argv in the project folder, quietly, and return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, FLASK_APP="run.py"))
    return time.perf_counter() - start


def interleaved(ours, baseline, pairs):
    """Time ours and baseline alternately pairs times; return the two lists of seconds."""
    a, b = [], []
    for _ in range(pairs):
        a.append(wall_time(ours))
        b.append(wall_time(baseline))
    return a, b


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=9, help="interleaved pairs to run (default 9)")
    args = parser.parse_args()
    subprocess.run([sys.executable, "db_manage.py", "setup"], cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
    ours = [sys.executable, "db_manage.py", "upgrade"]
    baseline = [sys.executable, "-m", "flask", "--app", "run.py", "db", "upgrade"]
    wall_time(baseline)  # warm the file cache and the embedded server
    a, b = interleaved(ours, baseline, args.pairs)
    ratio = statistics.median(a) / statistics.median(b)
    print("| what | ours (median, min-max) | baseline (median, min-max) | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| `upgrade` at head | {statistics.median(a):.3f}s ({min(a):.3f}-{max(a):.3f}) "
          f"| {statistics.median(b):.3f}s ({min(b):.3f}-{max(b):.3f}) | {ratio:.3f} | <= {TARGET} |")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
