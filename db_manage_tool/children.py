"""Child processes that end with the wrapper: signals passed on, and death of the parent followed on Linux.

SIGTERM, SIGINT and SIGHUP sent to db_manage.py are passed to the running child (flask db,
pg_dump, pg_restore, psql), which is waited for; if db_manage.py is killed outright (SIGKILL),
the kernel sends the child SIGTERM (prctl PR_SET_PDEATHSIG), so no orphan goes on to commit a
migration or replace a database after the command "failed".
"""
import contextlib
import os
import signal
import sys

PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


class Stopped(Exception):
    """The wrapper was asked to stop (a signal): its child was stopped too and has ended.

    An expected failure (errors.report prints it as one sentence); not a Failure, so that this module
    imports nothing heavy before a `flask db` hand-off.
    """

    expected = True

    def __init__(self, signum, in_process=False):
        what = "Interrupted (Ctrl-C)" if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}"
        super().__init__(f"{what}: the command stopped; a transaction it had open was rolled back." if in_process else
                         f"{what}: the running step was stopped with it and has ended; a migration or restore it "
                         "had not committed yet was rolled back.")
        self.exit_code = 128 + signum


def die_with_parent():
    """In the child, before exec: ask the kernel for SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:  # no glibc: the signals passed on still cover SIGTERM, SIGINT and SIGHUP
            pass


def run(argv, interactive=False, **kwargs):
    """Run argv like subprocess.run, ending it with the wrapper; raise Stopped after SIGTERM, SIGINT or SIGHUP.

    A non-interactive child gets its own process group, so a signal reaches it once, passed on by the
    wrapper. An interactive one (psql) keeps the terminal: Ctrl-C is its own, the wrapper ignores it.
    """
    import subprocess  # here: the wrapper imports this module for every command, most never start a program

    if not interactive:
        kwargs["process_group"] = 0
    process = subprocess.Popen(argv, preexec_fn=die_with_parent, **kwargs)
    received, (stdout, stderr) = passing_signals_on(process.poll, process.send_signal, process.communicate,
                                                    interactive)
    if received and process.returncode != 0:  # a child that finished its work anyway reports as it finished
        raise Stopped(received[0])
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def passing_signals_on(running, send, wait, interactive=False):
    """Call wait() while SIGTERM, SIGINT and SIGHUP are passed on to the child with send(signum) as long as
    running() is None; return the signals received and wait's result."""
    received = []

    def pass_on(signum, frame):
        received.append(signum)
        if running() is None:
            send(signum)

    # A signal the wrapper ignores (nohup's SIGHUP, SIGINT in a background job) stays ignored, as in the child.
    handlers = {signum: (signal.SIG_IGN if interactive and signum == signal.SIGINT else pass_on)
                for signum in PASSED_ON if signal.getsignal(signum) is not signal.SIG_IGN}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        return received, wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_module(module, args, cwd):
    """Run `python -m module ARGS` in cwd as a child that ends with the wrapper, as run() does; return its exit code.

    Where the system can fork, the child is this interpreter as it stands, forked (no second
    start-up: what the wrapper imported stays imported), in its own process group; it calls the
    module's main() as `python -m` would run it, exits as Python does, and never returns here.
    """
    if not hasattr(os, "fork"):
        return run([sys.executable, "-m", module, *args], cwd=cwd).returncode
    for stream in (sys.stdout, sys.stderr):  # else the child would print what is buffered here again
        stream.flush()
    parent = os.getpid()
    # Held back from fork until the handlers that pass them on are in place: none falls between the two.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, PASSED_ON)
    pid = os.fork()
    if pid == 0:  # the child never returns into the wrapper's frames
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        code = forked_child(module, args, cwd, parent)
        exit_as_python_does()
        os._exit(code)
    status = []

    def wait():
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a signal held back is passed on from here
        status.append(os.waitpid(pid, 0)[1])

    received, _ = passing_signals_on(lambda: status[0] if status else None, lambda signum: os.kill(pid, signum), wait)
    code = os.waitstatus_to_exitcode(status[0])
    if received and code != 0:  # a child that finished its work anyway reports as it finished
        raise Stopped(received[0])
    return code


def forked_child(module, args, cwd, parent):
    """In the forked child: run the module's main() as `python -m module ARGS` would; return the exit code."""
    code = 1
    try:
        os.setpgid(0, 0)
        die_with_parent()
        if os.getppid() != parent:  # the wrapper died before the kernel was asked to follow it
            return code
        os.chdir(cwd)
        import importlib

        main = importlib.import_module(module).main
        sys.argv = [sys.modules[module].__file__, *args]
        main()
        code = 0
    except SystemExit as exc:
        code = exit_code(exc.code)
    except KeyboardInterrupt:  # the wrapper says "Interrupted"; the place it struck is for --verbose
        if os.environ.get("DB_MANAGE_VERBOSE") == "1":
            sys.excepthook(*sys.exc_info())
        code = 128 + signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
    return code


@contextlib.contextmanager
def one_at_a_time(folder, waiting):
    """Hold a lock of folder's (a file in the temporary folder, keyed by its path) while the block runs;
    say `waiting` on stderr first when another process holds it."""
    try:
        import fcntl
    except ImportError:  # not on this system: no lock
        yield
        return
    import hashlib
    import tempfile

    key = hashlib.sha1(os.path.realpath(folder).encode()).hexdigest()[:16]
    try:
        lock = open(os.path.join(tempfile.gettempdir(), f"db-manage-{key}.lock"), "a")
    except OSError:  # another user's lock file, or no temporary folder: run unlocked, as before
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def leave(code):
    """Exit with code as Python does, without the interpreter's teardown unless a profiler or tracer (cProfile, a
    debugger) waits for the normal end: with an application's models loaded, the teardown takes a quarter second
    and changes nothing outside."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    exit_as_python_does()
    os._exit(code)


def open_missing_streams():
    """Give a closed stdout or stderr (`>&-`: Python's sys.stdout is then None) the null device, so that what
    would be printed there is dropped, as the user asked, instead of failing the command."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))


INVOCATION_VARIABLE = "DB_MANAGE_INVOCATION"  # how the user ran the tool, with its global options


def with_invocation(sentence):
    """Return sentence with every `python db_manage.py ...` it advises written as the user ran the tool
    (`db-manage` when installed, with the global options given)."""
    invocation = os.environ.get(INVOCATION_VARIABLE)
    if not invocation:
        return sentence
    done = f"`{invocation} "  # advice already in the user's words stays as it is
    return done.join(part.replace("`python db_manage.py ", done) for part in sentence.split(done))


class AdvisingStream:
    """Stands in for sys.stderr: the advice written there names the command as the user ran it."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        """Write text with its advice in the user's words."""
        return self.stream.write(with_invocation(text) if "db_manage.py" in text else text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def exit_as_python_does():
    """Do what the interpreter does at exit before it tears itself down, as multiprocessing's forked children do:
    wait for non-daemon threads, run atexit functions (logging's final flush, temporary folders), flush
    stdout and stderr."""
    import atexit
    import threading

    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def exit_code(value):
    """Return the exit code of SystemExit(value) as the interpreter computes it (text is printed first)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1
