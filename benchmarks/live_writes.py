"""Writes during a migration: the longest any write waited, with `migrate`'s safe forms and with Alembic's plain ones.

A generated project (benchmarks/generated_app.py) whose table `items` holds --rows rows; for each
model edit (an index, a foreign key, NOT NULL, a unique constraint), `migrate` writes the
revision twice, once as it does by default and once with --plain; each is applied with `upgrade`
while --writers connections insert and update rows at a steady pace; the longest wait of any
write while it ran, and whether every row written meanwhile is there afterwards, are reported.
Writes a section of benchmarks/RESULTS.md.

    python benchmarks/live_writes.py [--rows 1000000] [--writers 3]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks.generated_app import write_project  # noqa: E402
from benchmarks.results import replace_section  # noqa: E402
from db_manage_tool import dbadmin  # noqa: E402

MODELS = '''from .. import db


class Owner(db.Model):
    __tablename__ = "owners"
    id = db.Column(db.Integer, primary_key=True)


class Item(db.Model):
    __tablename__ = "items"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    body = db.Column(db.Text)
    owner_id = db.Column(db.Integer)
'''
CASES = (  # what the model edit changes in MODELS
    ("an index", "    body = db.Column(db.Text)", "    body = db.Column(db.Text, index=True)"),
    ("a foreign key", "    owner_id = db.Column(db.Integer)",
     '    owner_id = db.Column(db.Integer, db.ForeignKey("owners.id"))'),
    ("NOT NULL", "    body = db.Column(db.Text)", "    body = db.Column(db.Text, nullable=False)"),
    ("a unique constraint", "    name = db.Column(db.String(80), nullable=False)",
     "    name = db.Column(db.String(80), nullable=False, unique=True)"),
)


class Writers:
    """Connections that insert a row and update another every few milliseconds, timing each statement."""

    def __init__(self, url, count, tag, pause=0.005):
        self.url, self.count, self.tag, self.pause = url, count, tag, pause
        self.stop, self.waits, self.inserted, self.errors = threading.Event(), [], [], []
        self.threads = [threading.Thread(target=self.write, args=(n,)) for n in range(count)]

    def write(self, number):
        connection = psycopg2.connect(self.url)
        connection.autocommit = True
        n = 0
        with connection.cursor() as cursor:
            while not self.stop.is_set():
                n += 1
                for statement, args in (("INSERT INTO items (name, body, owner_id) VALUES (%s, 'w', 1) RETURNING id",
                                         (f"{self.tag}-{number}-{n}",)),
                                        ("UPDATE items SET body = 'u' WHERE id = %s", (n * 7919 % 1000 + 1,))):
                    started = time.monotonic()
                    try:
                        cursor.execute(statement, args)
                    except psycopg2.Error as exc:
                        self.errors.append(str(exc).strip())
                        continue
                    self.waits.append((started, time.monotonic() - started))
                    if statement.startswith("INSERT"):
                        self.inserted.append(cursor.fetchone()[0])
                time.sleep(self.pause)
        connection.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def longest(self, start, end):
        """Return the longest wait of a write that started between start and end."""
        return max((wait for began, wait in self.waits if start <= began <= end), default=0.0)


def run(project, env, *args):
    """Run db_manage.py args in project; return its CompletedProcess, raising with its stderr on failure."""
    done = subprocess.run([sys.executable, "db_manage.py", *args], cwd=project, env={**os.environ, **env},
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"db_manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done


def measure_case(project, env, libpq_url, writers, old, new, plain):
    """Write the case's revision (plain or safe), upgrade under writes; return (longest wait, rows kept, seconds)."""
    models = project / "genapp" / "models" / "m000.py"
    versions = project / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    base = run(project, env, "current").stdout.strip().split()[0]
    models.write_text(MODELS.replace(old, new))
    run(project, env, "migrate", *(["--plain"] if plain else []), "case")
    with Writers(libpq_url, writers, tag=f"{'plain' if plain else 'safe'}{time.time_ns()}") as load:
        time.sleep(1.0)
        started = time.monotonic()
        run(project, env, "upgrade")
        ended = time.monotonic()
        time.sleep(0.5)
    connection = psycopg2.connect(libpq_url)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM items WHERE id = ANY(%s)", (load.inserted,))
        kept = cursor.fetchone()[0] == len(load.inserted) and not load.errors
    connection.close()
    run(project, env, "downgrade", base)
    for path in set(versions.glob("*.py")) - before:
        path.unlink()
    models.write_text(MODELS)
    return load.longest(started, ended), kept, ended - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1,000,000)")
    parser.add_argument("--writers", type=int, default=3, help="connections writing meanwhile (default 3)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"), help="Markdown file to update")
    args = parser.parse_args()
    from app import create_app

    base = make_url(create_app().config["SQLALCHEMY_DATABASE_URI"])
    url = base.set(database=f"{base.database}_live_writes").render_as_string(hide_password=False)
    libpq_url = url.replace("postgresql+psycopg2://", "postgresql://")
    folder = Path(tempfile.mkdtemp(prefix="live-writes-"))
    project = write_project(folder / "project", 1)
    (project / "genapp" / "models" / "m000.py").write_text(MODELS)
    factory = project / "genapp" / "__init__.py"  # named constraints: Alembic's plain downgrades can drop them
    factory.write_text(factory.read_text().replace("db = SQLAlchemy()", "db = SQLAlchemy(metadata=MetaData(naming_convention={"
                                                   "'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s', "
                                                   "'uq': 'uq_%(table_name)s_%(column_0_name)s', "
                                                   "'ix': 'ix_%(column_0_label)s'}))").replace(
        "from flask_sqlalchemy import SQLAlchemy", "from flask_sqlalchemy import SQLAlchemy\nfrom sqlalchemy import MetaData"))
    env = {"DATABASE_URL": url, "FLASK_APP": "genapp:create_app()"}
    dbadmin.drop_database(url)
    rows = []
    try:
        run(project, env, "setup")
        connection = psycopg2.connect(libpq_url)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO owners SELECT generate_series(1, 1000)")
            cursor.execute("INSERT INTO items (name, body, owner_id) SELECT 'item-' || g, 'body ' || g, 1 + g %% 1000 "
                           "FROM generate_series(1, %s) g", (args.rows,))
            cursor.execute("VACUUM ANALYZE")
        connection.close()
        for what, old, new in CASES:
            plain = measure_case(project, env, libpq_url, args.writers, old, new, plain=True)
            safe = measure_case(project, env, libpq_url, args.writers, old, new, plain=False)
            rows.append((what, plain, safe))
            print(what, plain, safe, flush=True)
    finally:
        dbadmin.drop_database(url)
        shutil.rmtree(folder, ignore_errors=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["| model edit on a table of live writes | Alembic's plain form: longest write wait (upgrade took) | "
             "`migrate`'s form: longest write wait (upgrade took) | every row written meanwhile kept | "
             "target: no wait over 1 s | met |", "|---|---|---|---|---|---|"]
    for what, (plain_wait, plain_kept, plain_took), (safe_wait, safe_kept, safe_took) in rows:
        lines.append(f"| {what} | {plain_wait:.3f} s ({plain_took:.1f} s) | {safe_wait:.3f} s ({safe_took:.1f} s) | "
                     f"{'yes' if plain_kept and safe_kept else 'NO'} | <= 1 s | {'yes' if safe_wait <= 1 else 'NO'} |")
    section = (f"## Writes during a migration\n\n`python benchmarks/live_writes.py --rows {args.rows} --writers "
               f"{args.writers}`, {when}: a table of {args.rows:,} rows, {args.writers} connections inserting and "
               "updating a row every 5 ms each while `upgrade` applies the revision `migrate` wrote (with and "
               "without `--plain`). The waits include `upgrade`'s own start-up only where a write was blocked.\n\n"
               + "\n".join(lines) + "\n")
    replace_section(args.output, "Writes during a migration", section)
    print(section)


if __name__ == "__main__":
    main()
