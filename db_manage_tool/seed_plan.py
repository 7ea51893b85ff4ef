"""What `seed --rows` and `seed --all` ask of each table: its count, its models' identities, its inheritance link.

A model of joined-table inheritance is written as whole objects: a row in each table of its
chain, from the base (whose discriminator carries the model's identity) to its own table, whose
key is the new parent row's key. A model of single-table inheritance is a row of its base table
with its identity. Asking for a model with subclasses spreads its rows over it and them.
"""
import itertools
import math

import sqlalchemy as sa

from .generate import UnknownTable, foreign_keys


class Job:
    """What is asked of one table: rows in all, the identities its discriminator takes, the key it shares with its parent."""

    def __init__(self, table):
        self.table, self.count = table, 0
        self.discriminator, self.identities = None, []  # (identity, rows) in turn
        self.link, self.link_identities = None, set()  # (mapper of the parent, foreign key), identities of its rows

    def identity_fill(self):
        """Return a function of the row number giving the identities in turn, across every round of the table."""
        sequence = itertools.chain.from_iterable(itertools.repeat(identity, rows) for identity, rows in self.identities)
        return lambda n: next(sequence)


def targets(requests, tables, mappers):
    """Return [(Table or Mapper, count)] for NAME=COUNT requests: a model's name means the model."""
    by_name = {}
    for table in tables:
        for key in {table.name.lower(), table.fullname.lower(), f"{table.schema or 'public'}.{table.name}".lower()}:
            by_name.setdefault(key, {})[table] = table
    for mapper in mappers:
        entries = by_name.setdefault(mapper.class_.__name__.lower(), {})
        entries[mapper.local_table] = mapper  # the model, rather than its table by the same name
    chosen = []
    for name, count in requests:
        found = list(by_name.get(name.lower(), {}).values())
        if len(found) > 1:
            raise UnknownTable(f"{name!r} names several tables ({', '.join(sorted(table_of(t).fullname for t in found))}): "
                               "give it as schema.table.")
        if not found:
            known = ", ".join(sorted({t.fullname for t in tables}))
            raise UnknownTable(f"No model or table named {name!r}: use one of {known}.")
        target = model_of_table(found[0], mappers)
        earlier = next((asked for asked in chosen if asked[0] is target), None)
        if earlier is not None:
            raise UnknownTable(f"{describe(target)} is asked for twice ({earlier[2]}={earlier[1]} and {name}={count}): "
                               "give it once, with the number of rows you want.")
        chosen.append((target, count, name))
    return [(target, count) for target, count, _ in chosen]


def every_table(tables, mappers, count):
    """Return the targets of `seed --all count`: each model with an identity (or none), and each table no model maps."""
    chosen, mapped = [], set()
    for mapper in mappers:
        mapped.add(mapper.local_table)
        if mapper.concrete or not isinstance(mapper.local_table, sa.Table):
            continue
        polymorphic = mapper.polymorphic_on is not None or mapper.inherits is not None
        if polymorphic and mapper.polymorphic_identity is None and any(
                m.polymorphic_identity is not None for m in mapper.self_and_descendants):
            continue  # an abstract base: its rows come with its subclasses
        if not polymorphic and any(asked is not mapper and asked.local_table is mapper.local_table
                                   for asked, _ in chosen if isinstance(asked, sa.orm.Mapper)):
            continue  # two plain models of one table: once
        chosen.append((mapper, count))
    chosen += [(table, count) for table in tables if table not in mapped]
    return chosen


def model_of_table(target, mappers):
    """Return the model a table stands for: its one plain model, or the joined subclass whose part it holds."""
    if isinstance(target, sa.orm.Mapper):
        return target
    owners = [m for m in mappers if m.local_table is target]
    if len(owners) != 1:
        return target
    owner = owners[0]
    joined = owner.inherits is not None and owner.inherits.local_table is not target
    plain = owner.inherits is None and owner.polymorphic_on is None
    return owner if joined or plain else target


def describe(target):
    """Return a target's name for messages."""
    return target.class_.__name__ if isinstance(target, sa.orm.Mapper) else target.fullname


def table_of(target):
    """Return the table a target fills (a model's own table)."""
    return target.local_table if isinstance(target, sa.orm.Mapper) else target


def jobs(chosen, mappers, explicit=True):
    """Return {Table: Job} for the chosen (target, count) pairs.

    A table asked for by name gets the identities of the models stored in it alone, in turn; a model gets its own
    and its subclasses' (joined ones as whole objects) when explicit, its own alone for `--all`.
    """
    found = {}
    for target, count in chosen:
        if isinstance(target, sa.orm.Mapper):
            family = [m for m in (target.self_and_descendants if explicit else [target])
                      if m.polymorphic_identity is not None and not m.concrete]
            if target.polymorphic_on is None and target.inherits is None or not family:
                job_for(found, target.local_table).count += count
                continue
            for mapper, rows in spread(family, count):
                add_object(found, mapper, rows)
            continue
        base = next((m for m in mappers if m.local_table is target and m.inherits is None
                     and isinstance(m.polymorphic_on, sa.Column) and m.polymorphic_on.table is target), None)
        family = [m for m in base.self_and_descendants if m.local_table is target and m.polymorphic_identity is not None] \
            if base is not None else []
        if not family:
            job_for(found, target).count += count
            continue
        for mapper, rows in spread(family, count):
            add_object(found, mapper, rows)
    return found


def spread(family, count):
    """Return [(mapper, rows)]: count rows shared out over the family, the first ones getting one more."""
    share, extra = divmod(count, len(family))
    return [(mapper, share + (i < extra)) for i, mapper in enumerate(family) if share + (i < extra)]


def add_object(found, mapper, rows):
    """Count rows whole objects of mapper: a row in each table from its base's down to its own."""
    chain = [m for m in reversed(list(mapper.iterate_to_root()))]
    seen = []
    for link in chain:
        table = link.local_table
        if not isinstance(table, sa.Table) or table in seen:
            continue  # single-table inheritance: the parent's table already counts it
        seen.append(table)
        job = job_for(found, table)
        job.count += rows
        column = mapper.polymorphic_on
        if isinstance(column, sa.Column) and column.table is table:
            job.discriminator = column.name
            job.identities.append((mapper.polymorphic_identity, rows))
        if link.inherits is not None and link.inherits.local_table is not table:
            job.link = (link.inherits, inheritance_key(link))
            job.link_identities.add(mapper.polymorphic_identity)


def job_for(found, table):
    """Return the Job of table, made on first use."""
    if table not in found:
        found[table] = Job(table)
    return found[table]


def inheritance_key(mapper):
    """Return the foreign key of a joined subclass's table to its parent's: the one its inherit condition uses."""
    table, parent = mapper.local_table, mapper.inherits.local_table
    keys = [fk for fk in table.foreign_key_constraints if fk.referred_table is parent]
    used = {c for c in sa.sql.visitors.iterate(mapper.inherit_condition) if isinstance(c, sa.Column)} \
        if mapper.inherit_condition is not None else set()
    return next((fk for fk in keys if set(fk.columns) <= used), keys[0] if keys else None)


def parents_waiting(connection, job, count):
    """Return the keys of the parent rows made for job's objects that have no row in job's table yet (count of them)."""
    parent, fk = job.link
    child_columns = list(fk.columns)
    parent_columns = [element.column for element in fk.elements]
    source = parent.persist_selectable
    query = sa.select(*parent_columns).select_from(source).where(~sa.exists().where(
        sa.and_(*[child == parent_column for child, parent_column in zip(child_columns, parent_columns)])))
    discriminator = parent.polymorphic_on
    identities = [i for i in job.link_identities if i is not None]
    if discriminator is not None and identities:
        query = query.where(discriminator.in_(identities))
    return connection.execute(query.order_by(*parent_columns).limit(count)).all()


def with_parents(connection, chosen, mappers, explicit, overrides):
    """Return (jobs, notes): the jobs of chosen plus the parent rows they need that are neither there nor asked for.

    Like a factory's sub-factory: `--rows posts=200` on an empty database also writes the users its required
    author_id needs, a few per parent; a key unique alone gets a parent per row, and keys unique together (an
    association table) enough parents for as many distinct combinations as rows. Each addition is said.
    """
    found, notes, held = jobs(chosen, mappers, explicit), [], {}

    def rows_of(table):
        if table not in held:
            held[table] = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar()
        return held[table]

    while True:
        missing = {}
        for table, job in list(found.items()):
            for fk in foreign_keys(table):
                parent = fk.referred_table
                if parent is table or parent in found or any(c.name in overrides.get(table, {}) for c in fk.columns):
                    continue
                need, why = parents_needed(table, fk, job.count, rows_of, found, missing)
                have = rows_of(parent)
                if need > have and need - have > missing.get(parent, 0):
                    missing[parent] = need - have
                    has = "has no rows" if not have else f"has {have:,} row{'s' if have > 1 else ''}"
                    notes.append(f"{parent.fullname} {has} and {table.fullname}.{', '.join(c.name for c in fk.columns)} "
                                 f"needs {why}: {need - have:,} are generated too.")
        if not missing:
            return found, notes
        chosen = chosen + [(model_of_table(parent, mappers), rows) for parent, rows in missing.items()]
        found = jobs(chosen, mappers, explicit)


def parents_needed(table, fk, count, rows_of, found, missing):
    """Return (rows the parent of fk should hold for count new rows of table, what for); 0 when it may stay empty."""
    columns = set(fk.columns)  # the sets the generator keeps unique: partial unique indexes count (generate.unique_sets)
    sets = [set(c.columns) for c in table.constraints if isinstance(c, sa.UniqueConstraint | sa.PrimaryKeyConstraint)]
    sets += [set(i.columns) for i in table.indexes if i.unique] + [{c} for c in table.columns if c.unique]
    sets = [found_set for found_set in sets if found_set]
    if any(found_set <= columns for found_set in sets):
        return rows_of(table) + count, "one per row"
    keyed = [s for s in sets if columns < s and all(c.foreign_keys for c in s)]  # distinct combinations of parents
    if keyed:
        others = [next(iter(c.foreign_keys)).column.table for c in min(keyed, key=len) - columns]
        room = math.prod(max(rows_of(t) + (found[t].count if t in found else missing.get(t, 0)),
                             math.isqrt(count) + 1) for t in others)
        total = rows_of(table) + count
        return max(-(-total // room), math.isqrt(total) + 1), "more, for distinct combinations"
    if all(c.nullable for c in fk.columns):
        return 0, ""  # a nullable key may stay NULL
    return max(math.isqrt(count) + 1, count // 10) if not rows_of(fk.referred_table) else 1, "one"
