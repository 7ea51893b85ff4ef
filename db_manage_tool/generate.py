"""`seed --rows`: rows for any model, from its columns' types and constraints, streamed through COPY.

Foreign keys are drawn from the referenced table's rows (parents asked for are generated first),
unique columns carry the row number, unique combinations of foreign keys and enums are
enumerated, CHECK constraints of simple forms are respected, and columns the server fills
(identity, serial, server defaults, computed) are left to it. Row numbers continue after the
rows already there, so the same command on the same starting rows writes the same data.
"""
import datetime
import itertools
import math
import pickle
import random
import re
import uuid
import zlib
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql import visitors

from .errors import Failure
from .values import (NULL, array_literal, date_pool, escape, interval_pool, json_pool, kind_for_name,
                     number_range, time_pool, timestamp_pool, to_copy)

POSTGRESQL = postgresql.dialect()
MAX_ROWS = 100_000_000  # per table and command
CHUNK = 500  # rows generated together, column by column
NULL_SHARE = 0.1  # of a nullable column's values
INTEGER_LIMITS = {sqltypes.SmallInteger: 2 ** 15 - 1, sqltypes.BigInteger: 2 ** 63 - 1}
EMAIL_DOMAIN = "@example.org"
EMBEDDING_STEP = {"date": datetime.timedelta(days=1), "datetime": datetime.timedelta(minutes=1)}
OVERRIDE_HINT = "give {columns} a value in OVERRIDES of the seed file ({where}), e.g. OVERRIDES = {{\"{table}\": " \
                "{{\"{column}\": lambda n: ...}}}}"


class Unsupported(Exception):
    """A column or constraint the generator cannot satisfy by itself (the message names it)."""


class Group:
    """Columns filled together: fill(numbers) returns one list of COPY fields per column."""

    def __init__(self, columns, fill, width):
        self.columns, self.fill, self.width = columns, fill, width


class Limits:
    """What the simple CHECK constraints allow in one column."""

    def __init__(self):
        self.low = self.high = self.choices = self.max_length = None
        self.min_length = 0
        self.after = None  # (the column these values follow, strictly or not): a CHECK such as starts_at < ends_at

    def above(self, value, strict):
        """Require values >= value (> when strict)."""
        value = Decimal(value) + (Decimal("1e-6") if strict else 0)
        self.low = value if self.low is None else max(self.low, value)

    def below(self, value, strict):
        """Require values <= value (< when strict)."""
        value = Decimal(value) - (Decimal("1e-6") if strict else 0)
        self.high = value if self.high is None else min(self.high, value)


class Table:
    """One table to fill: its plan for count rows numbered from start (link: the parent key its rows share)."""

    def __init__(self, table, count, overrides, where, job=None, flexible=False):
        self.table, self.count, self.overrides, self.where, self.job = table, count, overrides, where, job
        self.flexible = flexible  # True: fewer rows when the unique combinations run out (seed --all)

    @property
    def link(self):
        """Return (parent mapper, foreign key) when the rows are the joined-subclass part of objects, else None."""
        return self.job.link if self.job is not None and self.job.link and self.job.link[1] is not None else None

    @property
    def label(self):
        """Return the table's name as messages give it."""
        return self.table.fullname


# ---- the whole run ---------------------------------------------------------------------------------------


class UnknownTable(Failure):
    """A --rows request that names no table (or several), or asks too much: a usage error."""


def ordered(requests):
    """Return the requested tables in the order given, except that parents come before their children.

    In a cycle of foreign keys (users -> teams -> users), a table of the cycle goes first, preferably one whose
    keys into the cycle may be NULL.
    """
    waiting, placed = list(requests), []

    def parents(table):
        return [fk for fk in foreign_keys(table) if fk.referred_table in waiting and fk.referred_table is not table]

    def on_cycle(table):
        seen, stack = set(), [fk.referred_table for fk in parents(table)]
        while stack:
            current = stack.pop()
            if current is table:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(fk.referred_table for fk in parents(current))
        return False

    while waiting:
        ready = next((t for t in waiting if not parents(t)), None)
        if ready is None:
            cycle = [t for t in waiting if on_cycle(t)] or waiting
            ready = next((t for t in cycle if all(c.nullable for fk in parents(t) for c in fk.columns)), cycle[0])
        placed.append(ready)
        waiting.remove(ready)
    return placed


def check_parents(connection, requests):
    """Raise Failure naming the parent of a required foreign key that has no rows and is not asked for."""
    for table in requests:
        for fk in foreign_keys(table):
            parent = fk.referred_table
            if parent in requests or any(c.nullable for c in fk.columns) or parent is table:
                continue
            if connection.execute(sa.select(sa.exists().select_from(parent))).scalar():
                continue
            column = ", ".join(c.name for c in fk.columns)
            raise Failure(f"{table.fullname}.{column} refers to {parent.fullname}, which has no rows: add "
                          f"--rows {parent.name}=N (parents are generated first), or seed {parent.fullname} first. "
                          "Nothing was changed.")


def rounds(table, count):
    """Return the counts to generate in turn: a table referring to itself gets a first tenth to refer to."""
    if count > 1 and any(fk.referred_table is table for fk in foreign_keys(table)):
        first = max(1, count // 10)
        return [first, count - first]
    return [count]


def estimate_bytes(table, count):
    """Return roughly how many bytes count rows of table take on disk, indexes included."""
    widths = {column.name: column_width(column) for column in table.columns}
    heap = count * (28 + sum(widths.values()))
    keys = [index.columns for index in table.indexes] + [c.columns for c in table.constraints
                                                         if isinstance(c, sa.UniqueConstraint | sa.PrimaryKeyConstraint)]
    return heap + sum(count * (16 + sum(widths.get(c.name, 8) for c in columns)) for columns in keys if len(columns))


def column_width(column):
    """Return a column's rough width in bytes."""
    kind = type_kind(column.type)
    name_kind = kind_for_name(column.name, column.table.name)
    if kind == "string":
        guess = {"paragraph": 400, "sentence": 60, "title": 40, "url": 40, "street": 25}.get(name_kind, 16)
        length = getattr(unwrap(column.type), "length", None)
        return min(guess, length) if length else guess
    return {"integer": 8, "numeric": 8, "boolean": 1, "uuid": 16, "json": 90, "array": 30, "date": 4,
            "datetime": 8, "time": 8, "interval": 16, "binary": 24, "enum": 4}.get(kind, 8)


# ---- planning one table ----------------------------------------------------------------------------------


class Analysis:
    """What a table's constraints ask of its generated columns, found from the model alone."""

    def __init__(self, spec):
        table = spec.table
        given = set(spec.overrides) | ({c.name for c in spec.link[1].columns} if spec.link else set())
        self.sequenced = {c.name: c for c in table.columns if sequenced(c) and c.name not in given}
        owned = {c.name for c in table.columns if server_owned(c) and c.name not in given} | set(self.sequenced)
        self.free = [c for c in table.columns if c.name not in owned and c.name not in given]
        self.limits = check_limits(spec, owned | given)
        self.fk_of = {}
        for fk in foreign_keys(table):
            if any(c.name in given for c in fk.columns):
                continue
            shared = [c.name for c in fk.columns if c.name in self.fk_of]
            if shared:  # two foreign keys share a column: values that satisfy both cannot be drawn apart
                other = self.fk_of[shared[0]]
                raise Unsupported(f"{table.fullname}.{shared[0]} is in two foreign keys ({constraint_name(other)} "
                                  f"and {constraint_name(fk)}), which seed --rows cannot satisfy together: "
                                  + hint(spec, [c.name for c in fk.columns]))
            for column in fk.columns:
                self.fk_of[column.name] = fk
        self.embedded, self.enumerated, self.nulled = {}, [], {}
        for columns in unique_sets(spec, owned | given):
            candidates = sorted((c for c in columns if c.name not in self.fk_of and embeddable(c, self.limits.get(c.name))),
                                key=lambda c: room(c, self.limits.get(c.name)))
            if any(c.name in self.embedded or c.name in self.nulled for c in columns):
                continue  # a column carrying the row number, or always NULL, makes the set unique
            names = {c.name for c in columns}
            handled = [{c.name for c in done} for done in self.enumerated if {c.name for c in done} & names]
            spare = [c for c in columns if c.nullable and not c.primary_key and all(c.name not in h for h in handled)]
            generable = all(c.name in self.fk_of or finite(c, self.limits.get(c.name)) for c in columns)
            if candidates:
                self.embedded[candidates[0].name] = candidates[0]
            elif any(done <= names for done in handled):
                continue  # it contains a set already enumerated: unique too
            elif spare and (handled or not generable):  # NULLs are distinct: a set with one always NULL is unique
                self.nulled[spare[-1].name] = spare[-1]
            elif handled:
                first = [c.name for c in table.columns if c.name in handled[0]]
                raise Unsupported(f"{table.fullname} needs both ({', '.join(first)}) and "
                                  f"({', '.join(c.name for c in columns)}) unique, which seed --rows cannot keep "
                                  "together: " + hint(spec, sorted(names - handled[0])))
            elif generable:
                self.enumerated.append(columns)
            else:
                raise Unsupported(f"{table.fullname} needs ({', '.join(c.name for c in columns)}) unique, which "
                                  "seed --rows cannot generate: " + hint(spec, [c.name for c in columns]))
        self.ordered = ordered_pairs(spec, self)
        for column in self.free:
            if column.name not in self.fk_of and type_kind(column.type) is None and not column.nullable:
                raise Unsupported(f"{spec.label}.{column.name} has type {column.type}, which seed --rows cannot "
                                  "generate: " + hint(spec, [column.name]))


ORDERABLE = ("date", "datetime", "integer", "numeric")


def ordered_pairs(spec, found):
    """Return {later column: (earlier column, strict)} for CHECKs ordering two columns; raise Unsupported for others."""
    pairs, free = {}, {c.name: c for c in found.free}
    for name, limits in found.limits.items():
        if limits.after is None:
            continue
        earlier, strict = limits.after
        taken = set(found.fk_of) | set(found.nulled) | {c.name for columns in found.enumerated for c in columns} | \
            ({name} & set(found.embedded))  # the earlier column may carry the row number
        kinds = {type_kind(free[n].type) if n in free else None for n in (earlier, name)}
        if len(kinds) != 1 or not kinds <= set(ORDERABLE) or {earlier, name} & taken \
                or earlier in pairs or any(e == name for e, _ in pairs.values()):
            raise Unsupported(f"{spec.label} needs {earlier} {'<' if strict else '<='} {name} (a CHECK), which seed "
                              "--rows keeps only between two plain date, timestamp or number columns: "
                              + hint(spec, [earlier, name]))
        pairs[name] = (free[earlier], strict)
    return pairs


def ordered_group(spec, later, earlier, strict, fill, rng):
    """Return the group of two columns a CHECK orders: the earlier filled by fill, the later a step after it."""
    kind = type_kind(later.type)
    parse = {"date": datetime.date.fromisoformat, "datetime": datetime.datetime.fromisoformat, "integer": int,
             "numeric": Decimal}[kind]
    unit = {"date": datetime.timedelta(days=1), "datetime": datetime.timedelta(minutes=1), "integer": 1,
            "numeric": Decimal(1)}[kind]
    most = {"date": 30, "datetime": 43200, "integer": 100, "numeric": 100}[kind]

    def both(numbers):
        first = fill(numbers)
        second = [parse(value) + unit * rng.randint(int(strict), most) for value in first]
        return [first, [value.isoformat() if kind in ("date", "datetime") else str(value) for value in second]]
    return Group([earlier.name, later.name], both, 16)


def plan(connection, spec, pools):
    """Return (groups, start): how to fill spec.table's columns, and the first row number."""
    table, overrides, found = spec.table, spec.overrides, Analysis(spec)
    limits = found.limits
    start = start_number(connection, table, found.embedded, limits)
    end = start + spec.count
    groups, done = [], set()
    for name, value in overrides.items():
        groups.append(override_group(spec, name, value))
        done.add(name)
    for name in found.nulled:
        groups.append(single(name, lambda numbers: [NULL] * len(numbers), 1))
        done.add(name)
    for columns in found.enumerated:  # first: with spec.flexible, it may lower spec.count
        if not any(c.name in done for c in columns):
            groups.append(enumeration_group(connection, spec, columns, found.fk_of, limits, start))
            done.update(c.name for c in columns)
    if not spec.count:
        return [], start
    if spec.link is not None:
        groups.append(link_group(connection, spec))
        done.update(c.name for c in spec.link[1].columns)
    for name, column in found.sequenced.items():
        groups.append(sequence_group(connection, spec, column))
        done.add(name)
    for fk in dict.fromkeys(found.fk_of.values()):
        if not any(c.name in done for c in fk.columns):
            groups.append(foreign_key_group(connection, spec, fk, start))
            done.update(c.name for c in fk.columns)
    for later, (earlier, strict) in found.ordered.items():
        rng = random.Random(f"{table.fullname}:{later}:{start}")
        fill = (embedded_fill(spec, earlier, limits.get(earlier.name), rng, pools, end) if earlier.name in found.embedded
                else value_fill(spec, earlier, limits.get(earlier.name), rng, pools))
        groups.append(ordered_group(spec, table.c[later], earlier, strict, fill, rng))
        done.update((later, earlier.name))
    for column in found.free:
        if column.name not in done:
            rng = random.Random(f"{table.fullname}:{column.name}:{start}")
            fill = (embedded_fill(spec, column, limits.get(column.name), rng, pools, end)
                    if column.name in found.embedded else value_fill(spec, column, limits.get(column.name), rng, pools))
            groups.append(single(column.name, with_nulls(column, fill, rng), column_width(column)))
    return groups, start


def server_owned(column):
    """Return True when the server fills the column: identity, serial, server default or computed."""
    return (column.server_default is not None or column.identity is not None or column.computed is not None
            or column is column.table.autoincrement_column) and not sequenced(column)


def sequenced(column):
    """Return True when SQLAlchemy, not the server, draws the column's values from a Sequence (Column(Sequence(...)))."""
    default = column.default
    return (isinstance(default, sa.Sequence) and not default.optional and column.server_default is None
            and column.identity is None and column.computed is None)


def hint(spec, columns):
    """Return the override advice for columns of spec's table."""
    return OVERRIDE_HINT.format(columns=", ".join(columns), where=spec.where, table=spec.table.name,
                                column=columns[0]) + "."


def unique_sets(spec, skip):
    """Return the column lists that must be unique together (constraints, unique indexes), minus those skip settles."""
    table, sets = spec.table, []
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint | sa.PrimaryKeyConstraint):
            sets.append(list(constraint.columns))
    for index in table.indexes:  # a partial unique index, or one on lower()/upper(): its columns unique is enough
        if index.unique:
            found = [one_to_one_column(table, e) for e in index.expressions]
            if any(column is None for column in found):
                columns = sorted({c.name for e in index.expressions for c in columns_in(table, e)})
                if not set(columns) <= skip:
                    raise Unsupported(f"{table.fullname} has the unique index {index.name} on an expression, which "
                                      "seed --rows cannot keep unique: " + hint(spec, columns or ["its columns"]))
                continue
            sets.append([c for c in table.columns if any(c is f for f in found)])
    for column in table.columns:
        if column.unique:
            sets.append([column])
    kept = []
    for columns in sets:
        if columns and not any(c.name in skip for c in columns) and \
                [c.name for c in columns] not in [[c.name for c in k] for k in kept]:
            kept.append(columns)
    position = {c.name: i for i, c in enumerate(table.columns)}
    return sorted(kept, key=lambda columns: (len(columns), [position[c.name] for c in columns]))


def one_to_one_column(table, expression):
    """Return the column an index expression is, or is lower()/upper() of; None for any other expression."""
    if isinstance(expression, sa.Column):
        return expression
    if isinstance(expression, sa.sql.functions.Function) and expression.name.lower() in ("lower", "upper"):
        arguments = list(expression.clauses)
        if len(arguments) == 1 and isinstance(arguments[0], sa.Column):
            return arguments[0]
    match = re.fullmatch(r'\s*(?:lower|upper)\s*\(\s*"?(\w+)"?\s*\)\s*', str(expression), re.I)
    return table.c[match[1]] if match and match[1] in table.c else None


def columns_in(table, expression):
    """Return the columns of table an index expression uses (by name when it is SQL text)."""
    if isinstance(expression, sa.Column):
        return {expression}
    found = {e for e in visitors.iterate(expression) if isinstance(e, sa.Column)}
    return found or {c for c in table.columns if re.search(rf"\b{re.escape(c.name)}\b", str(expression))}


def foreign_keys(table):
    """Return the table's foreign keys in a stable order (SQLAlchemy keeps them in a set)."""
    return sorted(table.foreign_key_constraints, key=lambda fk: ([c.name for c in fk.columns], constraint_name(fk)))


def constraint_name(constraint):
    """Return a constraint's name, or a description of it when it has none."""
    name = constraint.name if isinstance(constraint.name, str) else None
    return name or f"the key on ({', '.join(c.name for c in constraint.columns)})"


def room(column, limits):
    """Return a sort key: text and UUID columns first, then integers with the widest range."""
    kind = type_kind(column.type)
    if kind in ("string", "uuid"):
        return (0, 0)
    if kind in ("date", "datetime"):
        return (2, 0)
    low, high = embedding_range(column, limits) if kind == "integer" else (0, 10 ** 6)
    return (1, -(high - low))


def embedding_range(column, limits):
    """Return the (low, high) integers a unique integer column may take: its CHECK, else its type's."""
    kind = unwrap(column.type)
    top = next((limit for cls, limit in INTEGER_LIMITS.items() if isinstance(kind, cls)), 2 ** 31 - 1)
    low = math.ceil(limits.low) if limits is not None and limits.low is not None else 1
    high = math.floor(limits.high) if limits is not None and limits.high is not None else top
    return low, min(high, top)


def embeddable(column, limits):
    """Return True when a unique column can carry the row number (text, integer, numeric, UUID, date, timestamp)."""
    if limits is not None and limits.choices is not None:
        return False
    return type_kind(column.type) in ("string", "integer", "numeric", "uuid", "date", "datetime")


def finite(column, limits):
    """Return True when a column has a small set of values (enum, boolean, an IN list)."""
    return (limits is not None and limits.choices is not None) or type_kind(column.type) in ("enum", "boolean")


# ---- types -----------------------------------------------------------------------------------------------


def unwrap(kind):
    """Return the type under TypeDecorators (but an interval's or a pickle's, which keep their meaning)."""
    while isinstance(kind, sa.types.TypeDecorator) and not isinstance(kind, sqltypes._AbstractInterval | sa.PickleType):
        try:  # what the decorator stores on PostgreSQL (sqlalchemy_utils' UUIDType: uuid, not its BINARY impl)
            inner = kind.load_dialect_impl(POSTGRESQL)
        except Exception:  # noqa: BLE001 - the application's type: its declared impl
            inner = kind.impl_instance
        kind = inner if isinstance(inner, sa.types.TypeEngine) and inner is not kind else kind.impl_instance
    return kind


def type_kind(kind):
    """Return the generator's name for a column type, or None when it has none."""
    kind = unwrap(kind)
    checks = [(sqltypes._AbstractInterval, "interval"), (sa.PickleType, "pickle"), (sa.Enum, "enum"), (sa.Boolean, "boolean"),
              (sa.Integer, "integer"), (sa.Numeric, "numeric"), (sa.Float, "numeric"), (sa.DateTime, "datetime"), (sa.Date, "date"),
              (sa.Time, "time"), (sa.Uuid, "uuid"), (sa.JSON, "json"), (sa.ARRAY, "array"),
              (sa.LargeBinary, "binary"), (sa.String, "string"), (postgresql.INET, "inet"), (postgresql.CIDR, "inet")]
    return next((name for cls, name in checks if isinstance(kind, cls)), None)


def string_length(column, limits):
    """Return the most characters a text column takes (its length, a CHECK), or None."""
    lengths = [n for n in (getattr(unwrap(column.type), "length", None), limits and limits.max_length) if n]
    return min(lengths) if lengths else None


def integer_range(column, limits):
    """Return the (low, high) integers a column takes: its CHECK, else its name's range, within its type."""
    kind = unwrap(column.type)
    top = next((limit for cls, limit in INTEGER_LIMITS.items() if isinstance(kind, cls)), 2 ** 31 - 1)
    low, high = number_range(column.name) or (1, 10_000)
    if limits is not None and (limits.low is not None or limits.high is not None):
        low = math.ceil(limits.low) if limits.low is not None else (low if limits.high is None else
                                                                   min(low, math.floor(limits.high)))
        high = math.floor(limits.high) if limits.high is not None else max(high, low + 10_000)
    return max(low, -top - 1), min(high, top)


def numeric_range(column, limits):
    """Return (low, high, scale) for a numeric or float column."""
    kind = unwrap(column.type)
    scale = kind.scale if isinstance(getattr(kind, "scale", None), int) else 2
    if isinstance(kind, sa.Float):
        scale = 2
    low, high = number_range(column.name) or (0, 1000)
    if limits is not None:
        low = limits.low if limits.low is not None else (low if limits.high is None else min(low, limits.high))
        high = limits.high if limits.high is not None else max(high, low + 1000)
    precision = getattr(kind, "precision", None)
    if isinstance(precision, int) and not isinstance(kind, sa.Float):
        top = Decimal(10) ** (precision - scale) - Decimal(10) ** -scale
        low, high = max(Decimal(low), -top), min(Decimal(high), top)
    return Decimal(low), Decimal(high), scale


# ---- fills -------------------------------------------------------------------------------------------------


def single(name, fill, width):
    """Return the group of one column whose fill returns that column's values."""
    return Group([name], lambda numbers: [fill(numbers)], width)


def with_nulls(column, fill, rng):
    """Return fill with about a tenth of the values NULL when the column allows it."""
    if not column.nullable or column.primary_key:
        return fill

    def nullable_fill(numbers):
        values = fill(numbers)
        return [NULL if rng.random() < NULL_SHARE else value for value in values]
    return nullable_fill


def pool_fill(rng, pool):
    """Return a fill drawing COPY fields from pool."""
    return lambda numbers: rng.choices(pool, k=len(numbers))


def value_fill(spec, column, limits, rng, pools):
    """Return the fill of a column that is neither unique nor a foreign key."""
    kind = type_kind(column.type)
    if limits is not None and limits.choices is not None:
        return pool_fill(rng, [to_copy(choice) for choice in limits.choices])
    if kind == "enum":
        return pool_fill(rng, [escape(value) for value in unwrap(column.type).enums])
    if kind == "boolean":
        return pool_fill(rng, ["t", "t", "t", "f", "f"])
    if kind == "integer":
        low, high = integer_range(column, limits)
        if low > high:
            raise Unsupported(f"The CHECK constraints of {spec.label}.{column.name} allow no integer: "
                              + hint(spec, [column.name]))
        values = range(low, high + 1)
        return lambda numbers: list(map(str, rng.choices(values, k=len(numbers))))
    if kind == "numeric":
        low, high, scale = numeric_range(column, limits)
        pool = [numeric_text(low + (high - low) * Decimal(rng.random()), scale, low, high) for _ in range(4096)]
        return pool_fill(rng, pool)
    if kind == "string":
        return pool_fill(rng, text_pool(spec, column, limits, rng, pools))
    simple = {"datetime": lambda: timestamp_pool(rng, getattr(unwrap(column.type), "timezone", False)),
              "date": date_pool, "time": lambda: time_pool(rng), "interval": lambda: interval_pool(rng),
              "json": lambda: json_pool(rng, pools),
              "uuid": lambda: [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(4096)],
              "binary": lambda: ["\\\\x" + rng.randbytes(16).hex() for _ in range(256)],
              "pickle": lambda: ["\\\\x" + pickle.dumps(value, protocol=4).hex() for value in
                                 [None, 0, 1, "", "on", {"enabled": True}, [1, 2, 3]]],
              "inet": lambda: [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                               for _ in range(1024)],
              "array": lambda: array_pool(spec, column, rng, pools)}
    if kind in simple:
        return pool_fill(rng, simple[kind]())
    if column.nullable:
        return lambda numbers: [NULL] * len(numbers)
    raise Unsupported(f"{spec.label}.{column.name} has type {column.type}, which seed --rows cannot generate: "
                      + hint(spec, [column.name]))


def numeric_text(value, scale, low, high):
    """Return value rounded to scale digits, kept within [low, high], as text."""
    step = Decimal(10) ** -scale
    rounded = value.quantize(step)
    if rounded < low:
        rounded += step
    if rounded > high:
        rounded -= step
    return str(rounded)


def text_pool(spec, column, limits, rng, pools):
    """Return COPY fields for a text column: realistic by its name, cut to its length."""
    name_kind = kind_for_name(column.name, spec.table.name)
    pool = pools.get(name_kind or "label")
    if name_kind == "email":
        pool = [f"{local}{EMAIL_DOMAIN}" for local in pool]
    length = string_length(column, limits)
    minimum = limits.min_length if limits is not None else 0
    if length:
        pool = [value[:length].rstrip() or value[:length] for value in pool]
    pool = [value + "x" * (minimum - len(value)) for value in pool]
    return [escape(value) for value in pool]


def array_pool(spec, column, rng, pools):
    """Return array literals of zero to three items of the column's item type."""
    item = unwrap(column.type).item_type
    fake = sa.Column(column.name, item)
    sa.Table(f"_{spec.table.name}_items", sa.MetaData(), fake)
    fill = value_fill(spec, fake, None, rng, pools)
    arrays = []
    for _ in range(256):
        items = fill(range(rng.randint(0, 3)))
        arrays.append(array_literal([unescape(i) for i in items]))
    return arrays


def unescape(field):
    """Return the text of a COPY field (numbers and simple words come back unchanged)."""
    return field.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r").replace("\\\\", "\\")


def embedded_fill(spec, column, limits, rng, pools, end):
    """Return the fill of a unique column: a realistic value carrying the row number."""
    kind = type_kind(column.type)
    if kind == "integer":
        low, high = embedding_range(column, limits)
        if low + end - 1 > high:
            raise Unsupported(f"{spec.label}.{column.name} is unique and takes at most {high:,}: it cannot hold "
                              f"{spec.count:,} more generated values; " + hint(spec, [column.name]))
        return lambda numbers: [str(low + n) for n in numbers]
    if kind == "numeric":
        low, high, _ = numeric_range(column, limits)
        low = math.ceil(low)
        if low + end - 1 > high:
            raise Unsupported(f"{spec.label}.{column.name} is unique and takes at most {high}: it cannot hold "
                              f"{spec.count:,} more generated values; " + hint(spec, [column.name]))
        return lambda numbers: [str(low + n) for n in numbers]
    if kind in ("date", "datetime"):
        step, start = EMBEDDING_STEP[kind], embedding_origin(column)
        try:
            start + step * end
        except OverflowError:
            raise Unsupported(f"{spec.label}.{column.name} is unique: its calendar cannot hold {spec.count:,} more "
                              "generated values; " + hint(spec, [column.name])) from None
        return lambda numbers: [(start + step * n).isoformat() for n in numbers]
    if kind == "uuid":
        marker = uuid_marker(spec.table, column)
        return lambda numbers: [f"{marker:08x}-{(n >> 60) & 0xffff:04x}-4{(n >> 48) & 0xfff:03x}-8000-"
                                f"{n & 0xffffffffffff:012x}" for n in numbers]
    name_kind = kind_for_name(column.name, spec.table.name)
    separator = "-" if name_kind in ("slug", "url", "title", "label", "sentence", "paragraph") else ""
    tail = EMAIL_DOMAIN if name_kind == "email" else ""
    room = (string_length(column, limits) or 10 ** 6) - len(str(end - 1)) - len(separator) - len(tail)
    if room < 0:
        raise Unsupported(f"{spec.label}.{column.name} is unique and {column.type}: it cannot hold "
                          f"{spec.count:,} more distinct generated values; " + hint(spec, [column.name]))
    shortest = max(0, (limits.min_length if limits is not None else 0) - len(separator) - len(tail) - 1)
    prefixes = [escape(value[:room].ljust(shortest, "x")) for value in pools.get(name_kind or "word")]
    if not room:
        prefixes, separator = [""], ""
    return lambda numbers: [f"{prefix}{separator}{n}{tail}" for prefix, n in zip(rng.choices(prefixes,
                                                                                           k=len(numbers)), numbers)]


def embedding_origin(column):
    """Return the first value of a unique date or timestamp column: row n is n steps after it."""
    if type_kind(column.type) == "date":
        return datetime.date(2000, 1, 1)
    zone = datetime.timezone.utc if getattr(unwrap(column.type), "timezone", False) else None
    return datetime.datetime(2020, 1, 1, tzinfo=zone)


def uuid_marker(table, column):
    """Return the 32-bit prefix of the UUIDs generated for a column (how the next run finds their numbers)."""
    return zlib.crc32(f"db_manage:{table.fullname}.{column.name}".encode())


def start_number(connection, table, embedded, limits):
    """Return the first row number: after the table's rows and after every number already carried by a unique column."""
    expressions = [sa.func.count()]
    for column in embedded.values():
        kind = type_kind(column.type)
        if kind == "uuid":
            text = sa.cast(column, sa.Text)
            digits = sa.func.right(text, 12)
            number = sa.cast(sa.cast(sa.func.concat("x", sa.func.lpad(digits, 16, "0")), postgresql.BIT(64)),
                             sa.BigInteger)
            expressions.append(sa.func.max(number).filter(text.like(f"{uuid_marker(table, column):08x}-%")))
        elif kind in ("date", "datetime"):  # the row number: steps after the origin
            seconds = EMBEDDING_STEP[kind].total_seconds()
            origin = sa.literal(embedding_origin(column), type_=unwrap(column.type))  # not the application's decorator
            expressions.append(sa.cast(sa.func.floor(sa.extract("epoch", sa.func.max(column) - origin) / seconds)
                                       if kind == "datetime" else sa.func.max(column) - origin, sa.BigInteger))
        elif kind in ("integer", "numeric"):
            low = embedding_range(column, limits.get(column.name))[0] if kind == "integer" else \
                math.ceil(numeric_range(column, limits.get(column.name))[0])
            expressions.append(sa.func.max(column) - low)
        else:
            pattern = r"(\d+)@[^@]*$" if kind_for_name(column.name, table.name) == "email" else r"(\d+)$"
            digits = sa.func.substring(sa.cast(column, sa.Text), pattern)
            expressions.append(sa.func.max(sa.cast(sa.func.left(digits, 18), sa.BigInteger)))
    found = connection.execute(sa.select(*expressions).select_from(table)).one()
    return max([found[0]] + [int(value) + 1 for value in found[1:] if value is not None])


def override_group(spec, name, value):
    """Return the group of a column given in OVERRIDES: a fixed value, or a function of the row number."""
    if not callable(value):
        field = to_copy(value)
        return single(name, lambda numbers: [field] * len(numbers), len(field))

    def fill(numbers):
        values, n = [], None
        try:
            for n in numbers:
                values.append(to_copy(value(n)))
            return values
        except Exception as exc:  # the application's function failed: name it, with the row
            raise Failure(f"OVERRIDES for {spec.label}.{name} in {spec.where} failed on row {n}: "
                          f"{type(exc).__name__}: {exc}. Nothing was changed.") from exc
    return single(name, fill, 16)


def sequence_group(connection, spec, column):
    """Return the group of a column whose values a Sequence gives: count of them taken from it at once."""
    sequence = column.default
    name = connection.dialect.identifier_preparer.format_sequence(sequence)
    regclass = sa.cast(sa.literal(name), postgresql.REGCLASS)
    step = connection.execute(sa.text("SELECT seqincrement FROM pg_sequence WHERE seqrelid = CAST(:name AS regclass)"),
                              {"name": name}).scalar()
    last = connection.execute(sa.select(sa.func.setval(regclass, sequence.next_value() + (spec.count - 1) * step))).scalar()
    first = last - (spec.count - 1) * step
    counter = itertools.count(first, step)
    return single(column.name, lambda numbers: [str(next(counter)) for _ in numbers], 8)


def link_group(connection, spec):
    """Return the group of a joined subclass's key: the keys of the parent rows made for its objects, one each."""
    from .seed_plan import parents_waiting

    parent, fk = spec.link
    rows = parents_waiting(connection, spec.job, spec.count)
    if len(rows) < spec.count:
        raise Failure(f"{spec.label} holds the joined subclass part of objects whose rows in {fk.referred_table.fullname} "
                      f"are missing ({len(rows):,} of {spec.count:,} found): ask for the model by its class name. "
                      "Nothing was changed.")
    names = [c.name for c in fk.columns]
    drawn = iter(rows)

    def fill(numbers):
        taken = [next(drawn) for _ in numbers]
        return [[to_copy(row[i]) for row in taken] for i in range(len(names))]
    return Group(names, fill, 8 * len(names))


def parent_pool(connection, fk):
    """Return the referenced rows of a foreign key: a range of integers when they are contiguous, else a list."""
    parent_columns = [element.column for element in fk.elements]
    if len(parent_columns) == 1 and type_kind(parent_columns[0].type) == "integer":
        column = parent_columns[0]
        low, high, count = connection.execute(sa.select(sa.func.min(column), sa.func.max(column),
                                                        sa.func.count(column))).one()
        if count and high - low + 1 == count:
            return range(low, high + 1), True
        rows = connection.execute(sa.select(column).where(column.is_not(None)).order_by(column)).scalars()
        return [str(v) for v in rows], True
    rows = connection.execute(sa.select(*parent_columns).order_by(*parent_columns)).all()
    if len(parent_columns) == 1:
        return [to_copy(row[0]) for row in rows], True
    return [tuple(to_copy(v) for v in row) for row in rows], False


def foreign_key_group(connection, spec, fk, start):
    """Return the group filling a foreign key's columns from the referenced rows."""
    table, columns = spec.table, list(fk.columns)
    pool, single = parent_pool(connection, fk)
    nullable = all(c.nullable for c in columns)
    names = [c.name for c in columns]
    if not len(pool):
        if nullable:
            return Group(names, lambda numbers: [[NULL] * len(numbers) for _ in names], 4)
        if fk.referred_table is table:
            raise Unsupported(f"{table.fullname}.{', '.join(names)} refers to {table.fullname} itself and may not be "
                              f"NULL: add a first row (by hand or in the seed file), or " + hint(spec, names))
        raise Failure(f"{table.fullname}.{', '.join(names)} refers to {fk.referred_table.fullname}, which has no rows: "
                      f"add --rows {fk.referred_table.name}=N, or seed {fk.referred_table.fullname} first. "
                      "Nothing was changed.")
    rng = random.Random(f"{table.fullname}:{','.join(names)}:{start}")

    def fill(numbers):
        drawn = rng.choices(pool, k=len(numbers))
        if nullable:
            drawn = [None if rng.random() < NULL_SHARE else value for value in drawn]
        if single:
            return [[NULL if v is None else str(v) for v in drawn]]
        return [[NULL if row is None else row[i] for row in drawn] for i in range(len(names))]
    return Group(names, fill, 8 * len(names))


def enumeration_group(connection, spec, columns, fk_of, limits, start):
    """Return the group filling columns that must be unique together and each take few values (FKs, enums)."""
    table = spec.table
    domains = []  # (column names, values): a whole foreign key's columns draw one referenced row
    placed = set()
    for column in columns:
        if column.name in placed:
            continue
        fk = fk_of.get(column.name)
        if fk is not None:
            pool, single = parent_pool(connection, fk)
            names = [c.name for c in fk.columns]
            domains.append((names, pool if not single else PoolOfOne(pool)))
            placed.update(names)
            continue
        limit = limits.get(column.name)
        if limit is not None and limit.choices is not None:
            values = [to_copy(choice) for choice in limit.choices]
        elif type_kind(column.type) == "enum":
            values = [escape(v) for v in unwrap(column.type).enums]
        else:
            values = ["t", "f"]
        domains.append(([column.name], PoolOfOne(values)))
        placed.add(column.name)
    names = [name for domain_names, _ in domains for name in domain_names]
    size = math.prod(len(values) for _, values in domains)
    existing = {tuple(to_copy(v) for v in row) for row in connection.execute(
        sa.select(*[table.c[name] for name in names]))}
    if spec.flexible:
        spec.count = max(0, min(spec.count, size - len(existing)))
    if spec.count > size - len(existing):
        raise Unsupported(f"{table.fullname} needs ({', '.join(names)}) unique and has only {size:,} combinations of "
                          f"their values, {len(existing):,} of them taken: ask for at most "
                          f"{max(0, size - len(existing)):,} rows, or add rows to "
                          f"{', '.join(sorted({fk_of[n].referred_table.fullname for n in names if n in fk_of})) or 'it'}"
                          ".")
    rng = random.Random(f"{table.fullname}:{','.join(names)}:{start}")
    combos = combinations(domains, size, existing, rng, table, names)

    def fill(numbers):
        rows = [next(combos) for _ in numbers]
        return [[row[i] for row in rows] for i in range(len(names))]
    return Group(names, fill, 8 * len(names))


class PoolOfOne:
    """A pool of single values, seen as one-item tuples."""

    def __init__(self, values):
        self.values = values

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        return (to_copy(self.values[index]) if not isinstance(self.values[index], str) else self.values[index],)


def combinations(domains, size, existing, rng, table, names):
    """Yield distinct combinations of the domains in a shuffled order, skipping those already in the table."""
    step = rng.randrange(1, size) if size > 1 else 1
    while math.gcd(step, size) != 1:
        step += 1
    index, given = rng.randrange(size), 0
    for _ in range(size):
        rest, combo = index, []
        for _, values in domains:
            rest, position = divmod(rest, len(values))
            combo.extend(values[position])
        index = (index + step) % size
        combo = tuple(combo)
        if combo not in existing:
            given += 1
            yield combo
    raise Unsupported(f"{table.fullname} needs ({', '.join(names)}) unique and ran out of combinations after "
                      f"{given:,} rows: ask for fewer rows, or add rows to the tables they refer to.")


# ---- CHECK constraints -------------------------------------------------------------------------------------

NUMBER = r"[-+]?\d+(?:\.\d+)?"
NAME = r'"?([A-Za-z_][A-Za-z0-9_$]*)"?'
OPERATORS = {">=": ("above", False), ">": ("above", True), "<=": ("below", False), "<": ("below", True)}
FLIPPED = {">=": "<=", ">": "<", "<=": ">=", "<": ">", "=": "="}


def check_limits(spec, skip):
    """Return {column: Limits} from the table's CHECK constraints; raise Unsupported naming one it cannot read."""
    table, limits = spec.table, {}
    declared = list(table.constraints) + [c for column in table.columns for c in column.constraints
                                          if c not in table.constraints]  # Column(..., CheckConstraint(...))
    for constraint in declared:
        if not isinstance(constraint, sa.CheckConstraint) or getattr(constraint, "_type_bound", False):
            continue
        text = check_text(constraint)
        mentioned = {c.name for c in table.columns if re.search(rf'\b{re.escape(c.name)}\b', text)}
        if mentioned and mentioned <= skip:
            continue
        if not read_check(text, table, limits):
            name = constraint.name if isinstance(constraint.name, str) else "unnamed"
            columns = sorted(mentioned - skip) or ["the column"]
            raise Unsupported(f"The CHECK constraint {name} on {table.fullname} ({text}) is beyond what seed --rows "
                              "understands: " + hint(spec, columns))
    return limits


def check_text(constraint):
    """Return a CHECK constraint's condition as SQL text."""
    condition = constraint.sqltext
    try:
        return str(condition.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    except Exception:  # noqa: BLE001 - a construct that cannot render its literals: its plain text
        return str(condition)


def read_check(text, table, limits):
    """Add what a CHECK condition allows to limits; return False when a part of it is not understood."""
    text = re.sub(r"::[a-z ]+(\[\])?", "", text.strip())
    text = re.sub(r"\bBETWEEN\s+(\S+)\s+AND\s+(\S+)", r"BETWEEN \1 \2", text, flags=re.I)
    parts = split_and(strip_parens(text))
    return all(read_part(strip_parens(part), table, limits) for part in parts)


def strip_parens(text):
    """Return text without parentheses that enclose all of it."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def balanced(text):
    """Return True when text's parentheses pair up (quotes aside)."""
    depth = 0
    for char in re.sub(r"'(?:[^']|'')*'", "''", text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def split_and(text):
    """Split text on AND at the outer level."""
    parts, depth, last = [], 0, 0
    masked = re.sub(r"'(?:[^']|'')*'", lambda m: "_" * len(m.group()), text)
    for match in re.finditer(r"\(|\)|\bAND\b", masked, flags=re.I):
        token = match.group()
        depth += {"(": 1, ")": -1}.get(token, 0)
        if token.upper() == "AND" and depth == 0:
            parts.append(text[last:match.start()])
            last = match.end()
    parts.append(text[last:])
    return [part for part in parts if part.strip()]


def literal_list(text):
    """Return the literals of an IN list or ARRAY[...] (quoted strings or numbers), or None."""
    items = re.findall(rf"\s*('(?:[^']|'')*'|{NUMBER})\s*(?:,|$)", text)
    if ",".join(i.strip() for i in items).replace(" ", "") != re.sub(r"\s", "", text):
        if not items:
            return None
    values = []
    for item in items:
        values.append(item[1:-1].replace("''", "'") if item.startswith("'") else Decimal(item))
    return [int(v) if isinstance(v, Decimal) and v == v.to_integral_value() and "." not in str(v) else v
            for v in values]


def read_part(part, table, limits):
    """Read one condition of a CHECK (no AND); return False when it is not a form the generator knows."""
    def column(name):
        return name if name in table.c else None

    def limit(name):
        return limits.setdefault(name, Limits())

    if match := re.fullmatch(rf"{NAME}\s+BETWEEN\s+({NUMBER})\s+({NUMBER})", part, re.I):
        if column(match[1]):
            limit(match[1]).above(match[2], False)
            limit(match[1]).below(match[3], False)
            return True
    if match := re.fullmatch(rf"{NAME}\s*(>=|<=|>|<)\s*({NUMBER})", part):
        if column(match[1]):
            method, strict = OPERATORS[match[2]]
            getattr(limit(match[1]), method)(match[3], strict)
            return True
    if match := re.fullmatch(rf"({NUMBER})\s*(>=|<=|>|<)\s*{NAME}", part):
        if column(match[3]):
            method, strict = OPERATORS[FLIPPED[match[2]]]
            getattr(limit(match[3]), method)(match[1], strict)
            return True
    if match := re.fullmatch(rf"{NAME}\s+IN\s*\((.*)\)", part, re.I | re.S):
        values = literal_list(match[2])
        if column(match[1]) and values:
            limit(match[1]).choices = values
            return True
    if match := re.fullmatch(rf"{NAME}\s*=\s*ANY\s*\(\s*\(?\s*ARRAY\s*\[(.*)\]\s*\)?\s*\)", part, re.I | re.S):
        values = literal_list(match[2])
        if column(match[1]) and values:
            limit(match[1]).choices = values
            return True
    if match := re.fullmatch(rf"(?:char_length|character_length|length)\s*\(\s*{NAME}\s*\)\s*(>=|<=|>|<|=)\s*(\d+)",
                             part, re.I):
        if column(match[1]):
            bound, operator = int(match[3]), match[2]
            if operator in ("<=", "<", "="):
                limit(match[1]).max_length = bound - (operator == "<")
            if operator in (">=", ">", "="):
                limit(match[1]).min_length = bound + (operator == ">")
            return True
    if match := re.fullmatch(rf"{NAME}\s*(<>|!=)\s*''", part):
        if column(match[1]):
            limit(match[1]).min_length = max(1, limit(match[1]).min_length)
            return True
    if match := re.fullmatch(rf"{NAME}\s*(>=|<=|>|<)\s*{NAME}", part):
        if column(match[1]) and column(match[3]) and match[1] != match[3]:
            earlier, later = (match[1], match[3]) if match[2] in ("<", "<=") else (match[3], match[1])
            limit(later).after = (earlier, match[2] in ("<", ">"))
            return True
    if match := re.fullmatch(rf"{NAME}\s+IS\s+NOT\s+NULL", part, re.I):
        return column(match[1]) is not None
    return False


# ---- rows ------------------------------------------------------------------------------------------------


def chunks(groups, start, count):
    """Yield (COPY text, rows) for rows start to start+count-1, CHUNK rows at a time."""
    for first in range(start, start + count, CHUNK):
        numbers = range(first, min(first + CHUNK, start + count))
        columns = [values for group in groups for values in group.fill(numbers)]
        yield "\n".join(map("\t".join, zip(*columns))) + "\n", len(numbers)


def column_names(groups):
    """Return the columns the groups fill, in COPY order."""
    return [name for group in groups for name in group.columns]

