"""Replay each revision with the constraint names it was written with.

Alembic names a revision's unnamed constraints with the naming convention of the models' metadata
as it is today. A history written before the application had a convention then gets names it
never had: `users_email_key` becomes `uq_users_email`, and a later revision's
`op.drop_constraint("users_email_key", ...)` fails. Autogenerate under a convention writes every
constraint's name (`name=op.f("uq_users_email")`), while without one it leaves them unnamed
(`sa.UniqueConstraint("email")`): so a revision says which it was written under. One that says
nothing (no constraint, or only a hand-written `op.create_foreign_key(None, ...)`) was written
under what its parent was. Revisions written without a convention run with PostgreSQL's default
names; the others, and every new revision, with the convention.
"""
import ast
import functools
import re

from sqlalchemy import MetaData

CONSTRAINTS = {"PrimaryKeyConstraint", "UniqueConstraint", "ForeignKeyConstraint", "CheckConstraint"}
CREATE_CONSTRAINT = {"create_primary_key", "create_unique_constraint", "create_foreign_key", "create_check_constraint"}
NAMED = re.compile(r"\bname=op\.f\(|\bop\.create_(?:primary_key|unique_constraint|foreign_key|check_constraint)"
                   r"\(\s*op\.f\(")
WITHOUT = MetaData()  # SQLAlchemy's default convention only (indexes ix_...), as a history without one had


def replay_as_written(context, metadata):
    """Make every revision of context's scripts run under the convention it was written with (when the
    metadata has one of its own); done once per revision module."""
    if not has_own_convention(metadata):
        return
    scripts = {script.revision: script for script in context.script.walk_revisions("base", "heads")}
    written_without = functools.partial(without_convention, scripts=scripts, known={})
    for script in scripts.values():
        for name in ("upgrade", "downgrade"):
            function = getattr(script.module, name, None)
            if callable(function) and not getattr(function, "replayed_as_written", False):
                setattr(script.module, name, as_written(function, script.revision, written_without))


def has_own_convention(metadata):
    """Return True when metadata names more than indexes (SQLAlchemy's default convention)."""
    return metadata is not None and set(metadata.naming_convention) - {"ix"} != set()


def as_written(function, revision, written_without):
    """Return function (a revision's upgrade or downgrade) running without the convention when its revision
    was written without one."""
    from alembic import context

    @functools.wraps(function)
    def run(*args, **kwargs):
        if not written_without(revision):
            return function(*args, **kwargs)
        opts = context.get_context().opts  # where Alembic's operations read the convention from
        saved = opts.get("target_metadata")
        opts["target_metadata"] = WITHOUT
        try:
            return function(*args, **kwargs)
        finally:
            opts["target_metadata"] = saved

    run.replayed_as_written = True
    return run


def without_convention(revision, scripts, known):
    """Return True when revision was written without a naming convention, or follows one that was (the nearest
    ancestor whose constraints say); known keeps the answers."""
    passed, value = [], False
    while revision in scripts and revision not in known:
        evidence = constraint_names(scripts[revision].path)
        if evidence is not None:
            known[revision] = evidence == "unnamed"
            break
        passed.append(revision)
        down = scripts[revision].down_revision
        parents = (down,) if isinstance(down, str) else tuple(down or ())
        if len(parents) > 1:  # a merge follows any parent written without one
            known[revision] = any(without_convention(parent, scripts, known) for parent in parents)
            break
        revision = parents[0] if parents else None
    value = known.get(revision, False)
    for each in passed:
        known[each] = value
    return value


def constraint_names(path):
    """Return "named", "unnamed" or None: how the constraints a revision file creates are named, if it creates any.

    "named" when any has a name written out (as autogenerate writes under a convention), "unnamed" when
    some constraint class is called without one, None when the file says nothing either way.
    """
    try:
        with open(path, encoding="utf-8") as file:
            source = file.read()
    except (OSError, UnicodeDecodeError):
        return None
    if NAMED.search(source):  # most files written under a convention: no need to parse
        return "named"
    if "Constraint(" not in source:
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    named = unnamed = False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = getattr(node.func, "attr", getattr(node.func, "id", None))
        if called in CONSTRAINTS:
            name = next((k.value for k in node.keywords if k.arg == "name"), None)
            if name is None or (isinstance(name, ast.Constant) and name.value is None):
                unnamed = True
            elif is_conventional_name(name):
                named = True
        elif called in CREATE_CONSTRAINT and node.args and is_conventional_name(node.args[0]):
            named = True
    return "named" if named else "unnamed" if unnamed else None


def is_conventional_name(node):
    """Return True for op.f("..."): a name that autogenerate wrote out from a naming convention."""
    return isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "f"
