"""Child processes that end with the wrapper: signals passed on, and death of the parent followed on Linux.

SIGTERM, SIGINT and SIGHUP sent to db_manage.py are passed to the running child (flask db,
pg_dump, pg_restore, psql), which is waited for; if db_manage.py is killed outright (SIGKILL),
the kernel sends the child SIGTERM (prctl PR_SET_PDEATHSIG), so no orphan goes on to commit a
migration or replace a database after the command "failed".
"""
import ctypes
import signal
import subprocess
import sys

PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


class Stopped(Exception):
    """The wrapper was asked to stop (a signal): its child was stopped too and has ended.

    An expected failure (errors.report prints it as one sentence); not a Failure, so that this module
    imports nothing heavy before a `flask db` hand-off.
    """

    expected = True

    def __init__(self, signum):
        what = "Interrupted (Ctrl-C)" if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}"
        super().__init__(f"{what}: the running step was stopped with it and has ended; a migration or restore it "
                         "had not committed yet was rolled back.")
        self.exit_code = 128 + signum


def die_with_parent():
    """In the child, before exec: ask the kernel for SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:  # no glibc: the signals passed on still cover SIGTERM, SIGINT and SIGHUP
            pass


def run(argv, interactive=False, **kwargs):
    """Run argv like subprocess.run, ending it with the wrapper; raise Stopped after SIGTERM, SIGINT or SIGHUP.

    A non-interactive child gets its own process group, so a signal reaches it once, passed on by the
    wrapper. An interactive one (psql) keeps the terminal: Ctrl-C is its own, the wrapper ignores it.
    """
    if not interactive:
        kwargs["process_group"] = 0
    process = subprocess.Popen(argv, preexec_fn=die_with_parent, **kwargs)
    received = []

    def pass_on(signum, frame):
        received.append(signum)
        if process.poll() is None:
            process.send_signal(signum)

    # A signal the wrapper ignores (nohup's SIGHUP, SIGINT in a background job) stays ignored, as in the child.
    handlers = {signum: (signal.SIG_IGN if interactive and signum == signal.SIGINT else pass_on)
                for signum in PASSED_ON if signal.getsignal(signum) is not signal.SIG_IGN}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        stdout, stderr = process.communicate()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received and process.returncode != 0:  # a child that finished its work anyway reports as it finished
        raise Stopped(received[0])
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
