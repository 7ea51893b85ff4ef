"""`seed --fixture PATH`: rows from JSON or CSV files, added idempotently by natural key (parents first).

A JSON file holds a list of rows for the table named like the file (users.json), or an object
{"users": [...], "posts": [...]}; a foreign key may be given as the referenced row's natural key
({"author_id": {"username": "ada"}}). A CSV file is one table: a header of column names, an
empty field is NULL. A folder is every .json and .csv file in it, in name order.
"""
import csv
import json
import os
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from .errors import Failure
from .seeding import add_all

TRUE, FALSE = {"true", "t", "yes", "y", "1", "on"}, {"false", "f", "no", "n", "0", "off"}
MISSING = object()  # a CSV field the row does not have


def load_fixtures(connection, paths, find_table):
    """Add the rows of every fixture file under paths; return {table: rows added}."""
    data = {}
    for path in fixture_files(paths):
        for table, rows in read_file(path, find_table).items():
            data.setdefault(table, []).extend(rows)
    return add_all(connection, data)


def fixture_files(paths):
    """Return the .json and .csv files that paths name (a folder: the files in it, in name order)."""
    files = []
    for given in dict.fromkeys(paths):  # a path given twice is read once
        path = Path(given)
        if path.is_dir():
            named = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".csv"))
            for broken in (p for p in named if p.is_symlink() and not p.exists()):
                raise Failure(f"The fixture {broken} is a link to {os.readlink(broken)}, which does not exist: fix "
                              "or remove the link. Nothing was changed.")
            found = [p for p in named if p.is_file()]
            if not found:
                raise Failure(f"The fixture folder {given} holds no .json or .csv file. Nothing was changed.")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in (".json", ".csv"):
                raise Failure(f"The fixture {given} is neither .json nor .csv: rename or convert it. "
                              "Nothing was changed.")
            files.append(path)
        elif path.exists():
            raise Failure(f"The fixture {given} is not a regular file (a pipe or a device): give a .json or .csv file, "
                          "or a folder of them. Nothing was changed.")
        elif path.is_symlink():
            raise Failure(f"The fixture {given} is a link to {os.readlink(path)}, which does not exist: fix the "
                          "link, or give the file itself. Nothing was changed.")
        else:
            raise Failure(f"No fixture file or folder at {given}: check the path. Nothing was changed.")
    files = list(dict.fromkeys(files))  # a file named and in a folder given: read once
    return files


def read_file(path, find_table):
    """Return {Table: rows} from one fixture file."""
    try:
        if path.suffix.lower() == ".csv":
            table = find_table(path.stem, path)
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle, restval=MISSING)
                if reader.fieldnames and len(set(reader.fieldnames)) != len(reader.fieldnames):
                    raise Failure(f"The header of the fixture {path} names a column twice: fix it. Nothing was changed.")
                return {table: [csv_row(table, row, path) for row in reader]}
        content = json.loads(path.read_text(encoding="utf-8-sig"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise Failure(f"The fixture {path} cannot be read ({exc}): save it as UTF-8. Nothing was changed.") from exc
    except OSError as exc:  # a failing disk, a file that cannot be read whole (no rights: said where it is caught)
        if isinstance(exc, PermissionError):
            raise
        raise Failure(f"The fixture {path} cannot be read ({exc.strerror or exc}): check the file. "
                      "Nothing was changed.") from exc
    except json.JSONDecodeError as exc:
        raise Failure(f"The fixture {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
                      "fix it. Nothing was changed.") from exc
    except ValueError as exc:  # NaN or Infinity
        raise Failure(f"The fixture {path} is not valid JSON ({exc}): fix it. Nothing was changed.") from exc
    tables = {path.stem: content} if isinstance(content, list) else content
    if isinstance(content, dict) and content and all(not isinstance(v, list) for v in content.values()):
        raise Failure(f"The fixture {path} holds a single object, not rows: write a list of rows ([{{...}}, ...]), "
                      "or an object of such lists by table. Nothing was changed.")
    if not isinstance(tables, dict):
        raise Failure(f"The fixture {path} must hold a list of rows, or an object of lists by table. "
                      "Nothing was changed.")
    found = {}
    for name, rows in tables.items():
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise Failure(f"In the fixture {path}, {name!r} must be a list of objects (one per row). "
                          "Nothing was changed.")
        table = find_table(name, path)
        for row in rows:
            check_shapes(table, row, path)
        found[table] = rows
    return found


def refuse_constant(name):
    """Refuse JSON's NaN and Infinity, which no column should take by accident."""
    raise ValueError(f"{name} is not a value a fixture may hold")


def check_shapes(table, row, path):
    """Raise Failure for a list or object given to a column that takes neither (JSON, ARRAY, a foreign key)."""
    for name, value in row.items():
        column = table.c.get(name)
        if column is None or not isinstance(value, list | dict):
            continue
        if isinstance(column.type, sa.JSON | sa.ARRAY) or (isinstance(value, dict) and column.foreign_keys):
            continue
        raise Failure(f"In the fixture {path}, {table.fullname}.{name} is given {json.dumps(value)}, but it takes a "
                      f"single {column.type} value: fix it. Nothing was changed.")


def csv_row(table, row, path):
    """Return a CSV row with its texts turned into the values of the columns' types (empty is NULL)."""
    if None in row:
        raise Failure(f"A row of the fixture {path} has more fields than its header: fix it. Nothing was changed.")
    if MISSING in row.values():
        raise Failure(f"A row of the fixture {path} has fewer fields than its header: fix it (an empty field is "
                      "NULL). Nothing was changed.")
    return {name: csv_value(table, name, text, path) for name, text in row.items()}


def csv_value(table, name, text, path):
    """Return the value of one CSV field for the column name."""
    if text is None or text == "":
        return None
    column = table.c.get(name)
    if column is None:
        return text  # add() names the unknown column
    kind = column.type
    try:
        if isinstance(kind, sa.Boolean):
            if text.strip().lower() not in TRUE | FALSE:
                raise ValueError(f"not a boolean: {text!r}")
            return text.strip().lower() in TRUE
        if isinstance(kind, sa.Integer):
            return int(text)
        if isinstance(kind, sa.Numeric):
            return Decimal(text)
        if isinstance(kind, sa.JSON | sa.ARRAY):
            return json.loads(text)
    except (ValueError, ArithmeticError) as exc:
        raise Failure(f"In the fixture {path}, column {name} holds {text!r}, which is not a {kind}: fix it. "
                      "Nothing was changed.") from exc
    return text
