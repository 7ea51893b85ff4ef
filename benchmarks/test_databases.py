#!/usr/bin/env python3
"""A fresh database per test: the pytest plugin against the ways teams do it today.

For the skeleton and a generated application of 100 tables, what a test waits for before and after
it runs, median over N tests (200; fewer for the strategies that take seconds, as noted):

- the plugin's db_manage_url (CREATE DATABASE ... TEMPLATE; the drop happens in the background)
  and db_manage_app (the same, plus the application bound to it);
- pytest-postgresql's template clone (DatabaseJanitor with template_dbname: create, then drop),
  installed into a scratch folder for this benchmark only;
- create_all before each test and drop_all after it, on one database;
- `flask db upgrade` on a new database for each test;
- a transaction rolled back after each test (fast, but code that commits breaks it).

Also the session's start with the template already built, beyond importing the application.
Ratios are against the plugin's db_manage_url, measured in the same run. The section "Test
databases" of benchmarks/RESULTS.md is replaced.

    python benchmarks/test_databases.py            200 tests per strategy, pytest-postgresql installed
    python benchmarks/test_databases.py --quick    the test suite's smoke run: 10 tests, the skeleton only
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SLOW = 20  # tests measured for the strategies that take seconds each (upgrade per test)


def worker(tests, quick):
    """In the project's folder: measure each strategy; print the figures as JSON."""
    from sqlalchemy import text
    from sqlalchemy.schema import CreateSchema

    from db_manage_tool import dbadmin, pytest_plugin
    from db_manage_tool.setup_database import upgrade_to_head

    server = os.environ["BENCH_SERVER_URL"]
    figures = {}
    started = time.perf_counter()
    app = pytest_plugin.load_app_on(server)
    figures["load the application"] = [time.perf_counter() - started]
    migrations = Path(app.extensions["migrate"].directory).resolve()
    clones = pytest_plugin.Clones(server, uuid.uuid4().hex)
    started = time.perf_counter()
    template = clones.template(pytest_plugin.history_key(migrations))
    figures["template build (first run only)"] = [time.perf_counter() - started]
    started = time.perf_counter()
    again = pytest_plugin.Clones(server, uuid.uuid4().hex)
    again.template(pytest_plugin.history_key(migrations))
    figures["session start, template kept"] = [time.perf_counter() - started]
    again.close()

    def per_test(strategy, count, setup, teardown):
        runs = []
        for _ in range(count):
            begun = time.perf_counter()
            state = setup()
            middle = time.perf_counter()
            teardown(state)
            runs.append(middle - begun + time.perf_counter() - middle)
        figures[strategy] = runs

    per_test("plugin: db_manage_url", tests, lambda: clones.clone(template), clones.drop_later)
    per_test("plugin: db_manage_app", tests, lambda: (pytest_plugin.load_app_on(url := clones.clone(template)), url),
             lambda state: (pytest_plugin.dispose(state[0]), clones.drop_later(state[1])))
    started = time.perf_counter()
    clones.close()
    figures["background drops left at the end"] = [time.perf_counter() - started]

    janitor = pytest_postgresql_janitor()
    if janitor:
        from sqlalchemy.engine import make_url

        parsed = make_url(server)
        version = dbadmin_version(server)

        def create():
            made = janitor(user=parsed.username, host=parsed.host or parsed.query["host"], port=parsed.port or 5432,
                           version=version, dbname=f"bench_pgpg_{uuid.uuid4().hex[:8]}", template_dbname=template,
                           password=parsed.password)
            made.init()
            return made

        per_test("pytest-postgresql: template clone", tests, create, lambda made: made.drop())

    db = app.extensions["migrate"].db
    scratch = clones.url(f"{clones.prefix}_bench_{uuid.uuid4().hex[:8]}")
    dbadmin.create_database(scratch)
    pytest_plugin.bind(app, scratch)
    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:  # create_all makes no schema: a team's conftest creates them once
            for schema in sorted({table.schema for table in db.metadata.tables.values() if table.schema}):
                conn.execute(CreateSchema(schema, if_not_exists=True))

        def create_all():
            db.create_all()

        per_test("create_all / drop_all per test", SLOW if not quick else min(tests, 3), create_all,
                 lambda _: db.drop_all())
        with engine.begin() as conn:  # the tables the rollback strategy works in
            db.metadata.create_all(conn)

        def begin():
            connection = engine.connect()
            transaction = connection.begin()
            connection.execute(text("SELECT 1"))
            return connection, transaction

        per_test("transaction rolled back per test", tests, begin,
                 lambda state: (state[1].rollback(), state[0].close()))
    pytest_plugin.dispose(app)
    dbadmin.drop_database(scratch)

    def upgraded():
        url = clones.url(f"{clones.prefix}_bench_{uuid.uuid4().hex[:8]}")
        dbadmin.create_database(url)
        pytest_plugin.bind(app, url)
        with app.app_context():
            upgrade_to_head()
        pytest_plugin.dispose(app)
        return url

    per_test("flask db upgrade per test", SLOW if not quick else min(tests, 3), upgraded, dbadmin.drop_database)
    print(json.dumps(figures))


def dbadmin_version(url):
    """Return the server's version as pytest-postgresql takes it (major.minor)."""
    from db_manage_tool import dbadmin

    with dbadmin.server_connection(url) as conn:
        number = conn.server_version
    return f"{number // 10000}.{number % 100}"


def pytest_postgresql_janitor():
    """Return pytest-postgresql's DatabaseJanitor if it can be imported (from BENCH_EXTRA_PATH), else None."""
    if os.environ.get("BENCH_EXTRA_PATH"):
        sys.path.append(os.environ["BENCH_EXTRA_PATH"])
    try:
        from pytest_postgresql.janitor import DatabaseJanitor
    except ImportError:
        return None
    return DatabaseJanitor


def install_pytest_postgresql(folder):
    """pip install pytest-postgresql into folder (for this benchmark only); return folder, or None if it failed."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--target", str(folder), "pytest-postgresql", "psycopg[binary]"],
                          capture_output=True, text=True)
    return folder if done.returncode == 0 else None


def measure_project(name, folder, flask_app, server_url, tests, quick, extra):
    """Run the worker in folder; return its figures."""
    env = {**os.environ, "FLASK_APP": flask_app, "BENCH_SERVER_URL": server_url, "FLASK_CONFIG": "testing",
           "PYTHONPATH": str(ROOT), **({"BENCH_EXTRA_PATH": str(extra)} if extra else {})}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(tests),
                           *(["--quick"] if quick else [])], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name}: the measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def section(results, tests, major, seconds):
    """Return the Markdown section for results: {project: figures}."""
    lines = [f"## Test databases\n\n`python benchmarks/test_databases.py{' --quick' if tests < 200 else ''}`, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, PostgreSQL {major}, {tests} tests per strategy "
             f"({SLOW} for create_all and upgrade), {seconds:.0f} s in all. What one test waits for, before and after "
             "it runs; ratios against the plugin's db_manage_url, measured in the same run.\n"]
    for project, figures in results.items():
        plugin = statistics.median(figures["plugin: db_manage_url"])
        lines += [f"\n### {project}\n", "| per test | median | 90th percentile | tests | ratio |", "|---|---|---|---|---|"]
        for strategy, runs in figures.items():
            if len(runs) == 1:
                continue
            runs = sorted(runs)
            lines.append(f"| {strategy} | {statistics.median(runs) * 1000:.1f} ms | "
                         f"{runs[int(len(runs) * 0.9) - 1] * 1000:.1f} ms | {len(runs)} | "
                         f"{statistics.median(runs) / plugin:.2f} |")
        lines += ["", "| once per run | seconds |", "|---|---|"]
        lines += [f"| {name} | {runs[0]:.2f} s |" for name, runs in figures.items() if len(runs) == 1]
        beyond = figures["session start, template kept"][0]
        lines.append(f"\nThe session starts {beyond:.2f} s beyond loading the application when the template is kept "
                     "(its hash, the server's locks, the check that it exists).")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 tests per strategy, the skeleton only (smoke run)")
    parser.add_argument("--tests", type=int, default=200, help="tests per strategy (default 200)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"),
                        help="Markdown file whose 'Test databases' section is replaced (created if missing)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.quick)
    from sqlalchemy.engine import make_url

    from app import create_app
    from db_manage_tool import dbadmin
    from generated_app import write_project
    from results import replace_section

    tests = 10 if args.quick else args.tests
    base = make_url(create_app().config["SQLALCHEMY_DATABASE_URI"])  # DATABASE_URL, as the other benchmarks
    server = base.set(database=f"{base.database}_tdb").render_as_string(hide_password=False)
    dbadmin.create_database(server)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="test-databases-") as scratch:
        extra = None if args.quick else install_pytest_postgresql(Path(scratch) / "extra")
        projects = {"the skeleton": (ROOT, "run.py")}
        if not args.quick:
            projects["a generated application of 100 tables"] = (write_project(Path(scratch) / "gen", 100),
                                                                 "genapp:create_app()")
        try:
            results = {}
            for name, (folder, flask_app) in projects.items():
                if folder != ROOT:
                    subprocess.run([sys.executable, "db_manage.py", "init"], cwd=folder, capture_output=True,
                                   env={**os.environ, "DATABASE_URL": server, "FLASK_APP": flask_app})
                    subprocess.run([sys.executable, "db_manage.py", "migrate", "tables"], cwd=folder,
                                   capture_output=True, env={**os.environ, "DATABASE_URL": server,
                                                             "FLASK_APP": flask_app})
                results[name] = measure_project(name, folder, flask_app, server, tests, args.quick, extra)
        finally:
            with dbadmin.server_connection(server) as conn, conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE left(datname, %s) = %s",
                            (len(make_url(server).database) + 1, f"{make_url(server).database}_"))
                leftovers = [row[0] for row in cur.fetchall()]
            for name in leftovers + [make_url(server).database]:
                dbadmin.drop_database(make_url(server).set(database=name).render_as_string(hide_password=False))
    with dbadmin.server_connection(server) as conn:
        major = conn.server_version // 10000
    text = section(results, tests, major, time.time() - started)
    replace_section(args.output, "Test databases", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
