"""Run a command and report its wall time and its own peak memory: the benchmarks' measuring helper.

    python -I -S benchmarks/measured.py CWD STDERR_FILE ARGV...    (prints one JSON object)

Linux's ru_maxrss counts the resident size a process had when it was forked, that is its
parent's, until exec replaces it: a command started by a benchmark script of 75 to 137 MB
could show no smaller peak. The scripts start this helper instead, a bare interpreter of a
few MB, which starts the command; its peak is then the command's own (the largest of its
processes, as wait4 reports it), unless it is below the helper's size, also reported.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HELPER = os.path.abspath(__file__)


class Measured:
    """Wall seconds and peak memory (MB, the largest process) of one command, and its exit code and stderr."""

    def __init__(self, seconds, peak_mb, code, stderr, helper_mb):
        self.seconds, self.peak_mb, self.code, self.stderr, self.helper_mb = seconds, peak_mb, code, stderr, helper_mb

    @property
    def failed(self):
        """Return the last line of stderr when the command failed, else None."""
        if self.code == 0:
            return None
        lines = self.stderr.strip().splitlines()
        return lines[-1][:160] if lines else f"failed with exit code {self.code}"


def measure(argv, cwd, env=None):
    """Run argv in cwd (env: the whole environment, default this one's) through the helper; return its Measured."""
    with tempfile.NamedTemporaryFile(prefix="measured-", suffix=".stderr") as stderr:  # a file: a pipe could fill
        done = subprocess.run([sys.executable, "-I", "-S", HELPER, str(cwd), stderr.name, *map(str, argv)],
                              env=env, stdout=subprocess.PIPE, text=True, check=True)
        report = json.loads(done.stdout)
        text = open(stderr.name, errors="replace").read()
    return Measured(report["seconds"], report["peak_kb"] / 1024, report["code"], text,
                    report["helper_kb"] / 1024)


def main():
    """Run the command given on the command line and print its figures as JSON."""
    cwd, stderr_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(stderr_path, "wb") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_kb": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status),
                      "helper_kb": own_peak_kb()}))


def own_peak_kb():
    """Return this process's own peak resident size in kB (VmHWM; ru_maxrss would count what it inherited)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


if __name__ == "__main__":
    main()
