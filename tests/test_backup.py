"""backup and restore: verified, private dump files; restores that check first and confirm."""
import re
import stat
import subprocess

from sqlalchemy.engine import make_url

from conftest import Database, fake_pg_programs

from db_manage_tool import dbadmin

SAMPLE = (3, 5, 6)


def dumps(project):
    """Return the files of the project's backups folder but its .gitignore."""
    folder = project / "backups"
    return [p for p in folder.iterdir() if p.name != ".gitignore"] if folder.exists() else []


def test_backup_writes_a_verified_private_file(cli, project, database):
    assert cli("seed").returncode == 0
    result = cli("backup")
    assert result.returncode == 0, result.stderr
    (dump,) = dumps(project)
    assert dump.name.startswith("backup_") and dump.suffix == ".dump"
    assert (project / "backups" / ".gitignore").read_text().splitlines()[-1] == "*", "dumps never reach git"
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert dump.read_bytes()[:5] == b"PGDMP", "pg_dump's custom format"
    assert re.search(r"Using \S+/pg_dump \(PostgreSQL \d+\)\.", result.stderr), "says which pg_dump it used"
    shown = re.search(r"Backup written to \S+ \((\d+\.\d) kB in \d+\.\d s\)", result.stderr)
    assert shown and abs(float(shown.group(1)) * 1000 - dump.stat().st_size) < 100, "size and time shown"


def test_backup_and_restore_round_trip_into_a_new_database(cli, tmp_path, database, missing_database_url,
                                                           head_revision):
    assert cli("seed").returncode == 0
    assert cli("seed", "--rows", "users=20", "--rows", "posts=200").returncode == 0
    dump = tmp_path / "round.dump"
    assert cli("backup", "--output", str(dump)).returncode == 0
    result = cli("restore", str(dump), "--yes", url=missing_database_url)
    assert result.returncode == 0, result.stderr
    assert f"at revision {head_revision}" in result.stderr
    restored = Database(missing_database_url)
    assert restored.counts() == database.counts() == (23, 205, 6)
    assert restored.revision() == head_revision
    assert restored.rows("SELECT * FROM posts ORDER BY id") == database.rows("SELECT * FROM posts ORDER BY id")


def test_restore_over_an_existing_database_replaces_its_rows(cli, tmp_path, database):
    assert cli("seed").returncode == 0
    dump = tmp_path / "sample.dump"
    assert cli("backup", "--output", str(dump)).returncode == 0
    database.execute("DELETE FROM posts")
    database.execute("INSERT INTO users (username, email) VALUES ('later', 'later@example.com')")
    assert cli("restore", str(dump), "--yes").returncode == 0
    assert database.counts() == SAMPLE
    assert database.scalar("SELECT count(*) FROM users WHERE username = 'later'") == 0


def test_backup_with_a_too_old_pg_dump_leaves_no_file(cli, project, tmp_path, database):
    bindir = fake_pg_programs(tmp_path / "old", "9.6", lambda name: "exit 0")
    result = cli("backup", env={"PG_BINDIR": str(bindir)})
    assert result.returncode == 1
    assert "No pg_dump of version" in result.stderr and "9" in result.stderr
    assert not dumps(project)


def test_backup_whose_pg_dump_fails_midway_leaves_no_file(cli, project, tmp_path, database):
    body = 'for a in "$@"; do case $a in --file=*) echo partial > "${a#--file=}";; esac; done\n' \
           'echo "pg_dump: error: connection lost" >&2; exit 1'
    bindir = fake_pg_programs(tmp_path / "broken", "99", lambda name: body if name == "pg_dump" else "exit 0")
    result = cli("backup", env={"PG_BINDIR": str(bindir)})
    assert result.returncode == 1
    assert "pg_dump failed: pg_dump: error: connection lost" in result.stderr
    assert dumps(project) == [], "neither the dump nor its partial file stays"


def test_restore_of_a_missing_or_corrupt_file_touches_nothing(cli, tmp_path, database, missing_database_url):
    assert cli("seed").returncode == 0
    corrupt = tmp_path / "corrupt.dump"
    corrupt.write_bytes(b"PGDMP this is not a real archive")
    for path, message in ((tmp_path / "nope.dump", "No backup file at"), (corrupt, "is not a backup")):
        for url in (None, missing_database_url):
            result = cli("restore", str(path), "--yes", **({"url": url} if url else {}))
            assert result.returncode == 1
            assert message in result.stderr and "nothing was changed" in result.stderr
    assert database.counts() == SAMPLE
    assert not dbadmin.database_exists(missing_database_url)


def test_restore_refuses_without_a_terminal(cli, tmp_path, database):
    assert cli("seed").returncode == 0
    dump = tmp_path / "sample.dump"
    assert cli("backup", "--output", str(dump)).returncode == 0
    database.execute("DELETE FROM posts")
    result = cli("restore", str(dump))
    assert result.returncode == 1 and "Pass --yes" in result.stderr
    assert database.counts() == (3, 0, 6)


def test_a_dump_of_a_newer_pg_dump_restores_or_says_which_server_takes_it(cli, tmp_path, database):
    """pg_dump 18 (the embedded server's) writes settings older servers refuse: restored on 18, one sentence on 15."""
    from db_manage_tool.embedded import _import_pgserver
    from db_manage_tool.pgtools import libpq_env, server_major

    versions = _import_pgserver().utils.POSTGRES_VERSIONS
    assert max(versions) == 18, versions
    pg_dump = versions[18] / "pg_dump"
    assert cli("seed").returncode == 0
    dump = tmp_path / "newer.dump"
    made = subprocess.run([str(pg_dump), "-Fc", "-f", str(dump), "--dbname", make_url(database.url).database],
                          env=libpq_env(database.url, str(pg_dump)), capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    database.execute("DELETE FROM posts")
    result = cli("restore", str(dump), "--yes")
    if server_major(database.url) >= 18:
        assert result.returncode == 0, result.stderr
        assert database.scalar("SELECT count(*) FROM posts") == 5
    else:
        assert result.returncode == 1 and "was made by pg_dump 18" in result.stderr, result.stderr
        assert "restore it into a server of version 18 or newer" in result.stderr
        assert database.scalar("SELECT count(*) FROM posts") == 0, "nothing restored"
