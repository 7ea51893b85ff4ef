"""Start `python db_manage.py ARGS` as a process forked from one that has imported the libraries already.

A new interpreter spends about 0.6 s of CPU importing Flask, SQLAlchemy and Alembic, which every
command of the tool needs; the suite starts about a thousand commands. Forked from a process that
holds those modules, a command starts in a tenth of that. The command is still a process of its own:
its pid, its standard files, its environment, its working folder, its arguments, and it runs
db_manage.py from the project copy as `python db_manage.py` does. Only third-party libraries without
import-time effects are shared, never the application, the tool, or alembic-postgresql-enum (which
registers itself in Alembic when imported). A command whose interpreter would start differently (a
PYTHON* or locale variable changed, interpreter options) runs in a new interpreter, as do the tests
that send signals or use a terminal (they call subprocess themselves).

Run as a script, this module is the server: it imports, says "ready", and for each connection on its
socket forks a process that forks the command, waits for it and sends back its exit code.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

SHARED = ("flask", "flask.cli", "flask_sqlalchemy", "flask_migrate", "sqlalchemy", "sqlalchemy.dialects.postgresql",
          "sqlalchemy.dialects.postgresql.psycopg2", "sqlalchemy.orm", "alembic.command", "alembic.config",
          "alembic.script", "alembic.runtime.migration", "alembic.autogenerate", "alembic.operations", "psycopg2",
          "psycopg2.extras", "click", "dotenv", "mimesis", "json", "logging.config", "runpy", "traceback")
# Variables read once, as an interpreter starts: a command whose environment changes one runs in a new interpreter.
STARTUP_VARIABLES = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE")


def differs_at_startup(env):
    """Return True when env would start an interpreter differently from this process's environment."""
    names = {n for n in {*env, *os.environ} if n.startswith("PYTHON") or n in STARTUP_VARIABLES}
    return any(env.get(name) != os.environ.get(name) for name in names)


class Zygote:
    """The server process of one test process, started on first use, stopped at exit."""

    def __init__(self):
        self.lock = threading.Lock()
        self.process = None
        self.folder = None

    def start(self):
        """Start the server and wait for its "ready"."""
        self.folder = tempfile.mkdtemp(prefix="zygote-")
        path = os.path.join(self.folder, "socket")
        self.process = subprocess.Popen([sys.executable, __file__, path], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the command server did not start: {line!r}")
        self.path = path

    def stop(self):
        """Stop the server."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
            shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, argv, cwd, env, timeout):
        """Run argv (db_manage.py and its arguments) in cwd with env; return a CompletedProcess, as
        subprocess.run(capture_output=True, text=True) does."""
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self.start()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                open(os.devnull, "rb") as null, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            request = json.dumps({"argv": argv, "cwd": str(cwd), "env": env}).encode()
            socket.send_fds(conn, [len(request).to_bytes(8, "big")], [null.fileno(), out.fileno(), err.fileno()])
            conn.sendall(request)
            conn.settimeout(timeout)
            reader = conn.makefile("r")
            pid = int(reader.readline())
            try:
                code = int(reader.readline())
            except (socket.timeout, TimeoutError):
                os.kill(pid, 9)
                raise subprocess.TimeoutExpired([sys.executable, *argv], timeout) from None
            output = []
            for file in (out, err):
                file.seek(0)
                output.append(file.read().decode().replace("\r\n", "\n").replace("\r", "\n"))
        return subprocess.CompletedProcess([sys.executable, *argv], code, *output)


def serve(path):
    """Import the shared libraries, say ready, then fork a waiter for each connection (the server's loop)."""
    import importlib
    import signal

    for name in SHARED:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    try:  # the server dies with the test process that started it (Linux)
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the waiters are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os._exit(wait_for_command(conn))
        conn.close()


def wait_for_command(conn):
    """In a waiter: read the request, fork the command, send its pid and then its exit code."""
    header, fds, _, _ = socket.recv_fds(conn, 8, 3)
    size, request = int.from_bytes(header, "big"), b""
    while len(request) < size:
        request += conn.recv(size - len(request))
    request = json.loads(request)
    pid = os.fork()
    if pid == 0:
        conn.close()
        run_command(request, fds)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    try:
        conn.sendall(f"{code}\n".encode())
    except OSError:  # the test gave up waiting
        pass
    return 0


def run_command(request, fds):
    """In the command's process: take the standard files, folder, environment and arguments; run the script."""
    import atexit
    import runpy
    import traceback

    for number, fd in enumerate(fds):
        os.dup2(fd, number)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # computed again from this environment's TMPDIR
    script = os.path.abspath(request["argv"][0])
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(script)  # as `python db_manage.py` puts the script's folder first
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:  # as the interpreter does: the traceback, then death by SIGINT
        import signal

        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:  # noqa: BLE001  as the interpreter does: the traceback, exit 1
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    serve(sys.argv[1])
