"""Shared by the benchmarks: whole processes timed side by side, interleaved, medians and ratios."""
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def wall_time(argv, env=None):
    """Run argv in the project folder, quietly, and return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, FLASK_APP="run.py", **(env or {})))
    return time.perf_counter() - start


def interleaved(ours, baseline, pairs, before_each=None):
    """Time the callables ours and baseline alternately (A B A B ...); return both lists of seconds."""
    a, b = [], []
    for _ in range(pairs):
        for run, times in ((ours, a), (baseline, b)):
            if before_each:
                before_each()
            times.append(run())
    return a, b


def spread(times):
    """Return 'median (min-max)' of times in seconds."""
    return f"{statistics.median(times):.3f}s ({min(times):.3f}-{max(times):.3f})"


def table_row(what, a, b, figure, target):
    """Return a Markdown row: what, our times, the baseline's, the figure and its target."""
    return f"| {what} | {spread(a)} | {spread(b)} | {figure:.3f} | {target} |"


HEADER = "| what | ours: median (min-max) | baseline: median (min-max) | figure | target |\n|---|---|---|---|---|"
