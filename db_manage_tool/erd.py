"""`erd`: a Mermaid entity-relationship diagram of every model, across schemas (no database needed)."""
import os
import re
from pathlib import Path

import click
from sqlalchemy.dialects import postgresql

from .application import metadata
from .errors import Failure

HEADER = """# Entity-relationship diagram

Written by `python db_manage.py erd --output {path}` from the application's models;
run it again after changing a model. It renders as a picture wherever Markdown shows Mermaid.

"""


def erd(output=None):
    """Print the diagram, or write it to output as a Markdown file."""
    diagram = mermaid(metadata())
    if output is None:
        return click.echo(diagram, nl=False)
    path = Path(output)
    if path.exists() and not path.is_file():
        raise Failure(f"{path} is not a regular file: give --output the name of a file. Nothing was written.")
    if path.exists() and not path.read_text(errors="replace").startswith(HEADER.splitlines()[0]):
        raise Failure(f"{path} exists and is not a diagram this command wrote: give --output another file, or "
                      "delete it first. Nothing was written.")
    if not path.parent.parent.is_dir():  # one missing folder (docs/) is made; a mistyped path is not
        raise Failure(f"There is no folder {path.parent.parent}: create it, or give another --output. "
                      "Nothing was written.")
    path.parent.mkdir(exist_ok=True)
    shown = os.path.relpath(output) if not os.path.relpath(output).startswith("..") else str(path)
    Path(output).write_text(HEADER.format(path=shown) + "```mermaid\n" + diagram + "```\n")
    click.echo(f"Diagram of {len(metadata().tables)} tables written to {shown}.", err=True)


def mermaid(metadata):
    """Return metadata's tables, columns, keys and foreign-key relationships as a Mermaid erDiagram."""
    tables = sorted(metadata.tables.values(), key=lambda t: (t.schema or "", t.name))
    lines = ["erDiagram"]
    for table in tables:
        lines.append(f'    "{qualified(table)}" {{')
        lines += [f"        {attribute(column)}" for column in table.columns]
        lines.append("    }")
    for table in tables:
        for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
            child = "o|" if fk.parent.unique else "o{"
            parent = "|o" if fk.parent.nullable else "||"
            lines.append(f'    "{qualified(fk.column.table)}" {parent}--{child} "{qualified(table)}" : {fk.parent.name}')
    return "\n".join(lines) + "\n"


def attribute(column):
    """Return one Mermaid attribute line: type, name, keys, and NOT NULL as a comment."""
    keys = [key for key, present in (("PK", column.primary_key), ("FK", column.foreign_keys),
                                     ("UK", column.unique)) if present]
    comment = ' "not null"' if not column.nullable and not column.primary_key else ""
    return f"{mermaid_type(column.type)} {column.name}{' ' + ', '.join(keys) if keys else ''}{comment}".rstrip()


def mermaid_type(sql_type):
    """Return the PostgreSQL type as one Mermaid word, e.g. varchar(200) or timestamp_with_time_zone."""
    text = sql_type.compile(dialect=postgresql.dialect()).lower().replace(", ", "-").replace(" ", "_")
    return re.sub(r"[^a-z0-9_()\[\]-]", "_", text)


def qualified(table):
    """Return schema.name, or name in the default schema."""
    return f"{table.schema}.{table.name}" if table.schema else table.name
