"""Where the database stands against migrations/versions: lost revisions, pending ones, several heads."""
import os
import re

from alembic.script import Script
from alembic.script.revision import ResolutionError
from alembic.util import CommandError

from .errors import Failure, first_line


def message(revision):
    """Return a revision's message: the first non-blank line of its docstring, never Alembic's header block."""
    first = first_line(revision.longdoc)
    return "(no message)" if not first or first.startswith("Revision ID:") else first


def use_first_line_messages():
    """Make Alembic show each revision's message() (history, heads, errors) instead of its docstring's first
    paragraph, which is the whole header block when the docstring's first line is blank."""
    Script.doc = property(message)


def refuse_duplicate_revisions():
    """Make a revision id that two files share an error: Alembic only warns, then keeps one file of the two."""
    import warnings

    warnings.filterwarnings("error", message=r"Revision \S+ is present more than once", category=UserWarning)


def files_with_revision(revision):
    """Return the revision files (relative to the project) that declare revision, by their text."""
    folder = versions_folder()
    declares = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]" + re.escape(revision) + r"['\"]", re.MULTILINE)
    return sorted(os.path.relpath(path) for path in folder.rglob("*.py")
                  if declares.search(path.read_text(encoding="utf-8", errors="replace")))


def files_with_unquoted_ids():
    """Return the revision files whose `revision` or `down_revision` line holds no quoted id (a number, say)."""
    unquoted = re.compile(r"^(?:down_)?revision[ \t]*(?::[^=\n]*)?=[ \t]*(?![ \t'\"(\[]|None\b)", re.MULTILINE)
    return sorted(os.path.relpath(path) for path in versions_folder().rglob("*.py")
                  if unquoted.search(path.read_text(encoding="utf-8", errors="replace")))


def versions_folder():
    """Return migrations/versions: the application's, or the working folder's outside an application context."""
    from pathlib import Path

    try:
        from .application import migrations_directory

        return migrations_directory() / "versions"
    except RuntimeError:  # no application context
        return Path("migrations") / "versions"


def current_heads(connection):
    """Return the revisions the database records, read from the version table the application configured."""
    from alembic.runtime.migration import MigrationContext

    from .application import migrate_extension

    args = migrate_extension().configure_args
    opts = {key: args[key] for key in ("version_table", "version_table_schema") if args.get(key)}
    return list(MigrationContext.configure(connection, opts=opts).get_current_heads())


def current_revision(connection):
    """Return the database's revision(s) as text, or None at base."""
    return ", ".join(current_heads(connection)) or None


def is_known(script, revision):
    """Return True when a file in migrations/versions has revision."""
    try:
        return script.get_revision(revision) is not None
    except (ResolutionError, CommandError):
        return False


CYCLE = re.compile(r"(?:Dependency )?(?:[Ss]elf-loop|[Cc]ycle) is detected in revisions \((?P<revisions>[^)]*)\)")


def cycle_sentence(text):
    """Return the sentence for Alembic's message of a cycle in the history (text), or None for another message."""
    match = CYCLE.search(text)
    if match is None:
        return None
    revisions = [r.strip(" '\"") for r in match["revisions"].split(",") if r.strip(" '\"")]
    files = sorted({f for revision in revisions for f in files_with_revision(revision)})
    return (f"The migration history goes round in a circle: {', '.join(revisions)} lead back to themselves through "
            f"down_revision (or depends_on) in {', '.join(files) or 'migrations/versions'}: fix the down_revision "
            "line of one of them so that it names the revision before it. Nothing was changed.")


def ensure_acyclic(script):
    """Raise Failure naming the files when the history has a cycle (Alembic would report a revision as unknown)."""
    from alembic.script.revision import CycleDetected

    try:
        script.revision_map.heads  # noqa: B018 - building the map is what detects a cycle
    except CycleDetected as exc:
        raise Failure(cycle_sentence(str(exc)) or str(exc)) from None


def ensure_known(script, current):
    """Raise Failure explaining the way out when the database records a revision no file has."""
    ensure_acyclic(script)
    lost = [revision for revision in current if not is_known(script, revision)]
    if lost:
        raise Failure(
            f"The database records revision {', '.join(lost)}, but no file in migrations/versions has it. "
            "Likely causes: a migration from another branch was applied to this database, or its file was "
            "deleted or renamed. Three ways out: check out the code that has it and run `python db_manage.py "
            "downgrade` there to a revision this checkout knows; or, if the tables already match a known revision, "
            "record it with `python db_manage.py stamp --purge REVISION` (stamp changes no table); or, if the "
            "history was deleted on purpose to start over, empty the database with `python db_manage.py reset`. "
            "Nothing was changed.")


def ensure_complete(script):
    """Raise Failure naming a revision file whose down_revision no file has (Alembic would see one more head)."""
    try:
        revisions = list(script.walk_revisions())
    except KeyError as exc:
        raise Failure(f"A revision file names {exc.args[0]!r} as its down_revision, but no file in migrations/versions "
                      "has that revision: fix that line, or restore the missing file.") from None
    known = {revision.revision for revision in revisions}
    for revision in revisions:
        down = revision.down_revision
        for parent in (down if isinstance(down, tuple) else (down,)):
            if parent is not None and parent not in known:
                raise Failure(f"{revision.path} names {parent!r} as its down_revision, but no file in "
                              "migrations/versions has that revision: fix that line, or restore the missing file.")


def ensure_single_head(script):
    """Raise Failure naming the heads and the fix when the migrations have branched."""
    ensure_complete(script)
    heads = script.get_heads()
    if len(heads) > 1:
        described = "; ".join(f"{h} ({script.get_revision(h).doc})" for h in heads)
        raise Failure(f"The migrations have {len(heads)} heads: {described}. Two branches each added a migration: "
                      "join them with `python db_manage.py merge -m \"Merge branches\"`, then upgrade. "
                      "Nothing was changed.")


def ensure_several_heads():
    """Raise Failure when there is nothing to merge (one head or none)."""
    from .migration_hooks import script_directory

    heads = script_directory().get_heads()
    if len(heads) < 2:
        raise Failure(f"Nothing to merge: the migrations have {len(heads)} head ({', '.join(heads) or 'none'}). "
                      "No file was written.")


def pending(script, current):
    """Return the revisions not applied yet, on every branch, in the order upgrade would apply them."""
    applied = {r.revision for r in script.iterate_revisions(tuple(current), "base")} if current else set()
    everything = reversed(list(script.iterate_revisions(script.get_heads(), "base")))
    return [{"revision": r.revision, "message": r.doc} for r in everything if r.revision not in applied]


def ensure_at_head(script, current):
    """Raise Failure naming the pending revisions when the database is behind head."""
    waiting = pending(script, current)
    if waiting:
        names = "; ".join(f"{p['revision']} ({p['message']})" for p in waiting)
        raise Failure(f"The database is not at head: {len(waiting)} migration(s) not applied yet: {names}. "
                      "Apply them first with `python db_manage.py upgrade`, then run migrate again. "
                      "No migration was written.")


def reaches_base(script, current, steps):
    """Return True when the downgrade steps (as Alembic resolved the target, however spelt) revert every
    revision applied: the database would end with no revision, its tables dropped."""
    if not current:
        return False
    applied = {revision.revision for revision in script.iterate_revisions(tuple(current), "base")}
    return applied <= {step.revision.revision for step in steps}


def ensure_range_direction(script, command, revision_range):
    """Raise Failure when an offline FROM:TO range runs the other way than command goes (Alembic would print an
    empty script), or names one revision twice."""
    from alembic.script.revision import RangeNotAncestorError

    start, _, end = revision_range.partition(":")
    start, end = start or "base", end or "heads"
    lower, upper = (start, end) if command == "upgrade" else (end, start)
    way, other = ("up", "downgrade") if command == "upgrade" else ("down", "upgrade")
    try:
        walked = list(script.revision_map.iterate_revisions(upper, lower, inclusive=True,
                                                            assert_relative_length=False))
    except RangeNotAncestorError:
        raise Failure(f"{command} {revision_range} --sql has nothing to render: {end} is not {way} from {start} in "
                      f"the history. Swap them ({command} {end}:{start} --sql), or use `{other}`.") from None
    except (ResolutionError, CommandError):
        return  # an unknown revision: Alembic's own error, reworded, says so
    if len(walked) == 1 and start == end:
        raise Failure(f"{command} {revision_range} --sql has nothing to render: FROM and TO are the same revision; "
                      f"give FROM:TO with TO {'above' if command == 'upgrade' else 'below'} FROM.")


# The message `migrate` gives the revision that holds a model edit's zero-downtime steps (safe_forms.py).
STEPS_MESSAGE = re.compile(r"^(?P<message>.*) \(steps that keep .+ writable\)$")


def second_halves(script):
    """Return {second: first} for each pair of revisions one `migrate` wrote: the model edit, then its
    zero-downtime steps. downgrade, upgrade +N, history and status count such a pair as one step."""
    halves = {}
    for second in script.walk_revisions():
        match = STEPS_MESSAGE.match(second.doc or "")
        if match and isinstance(second.down_revision, str):
            first = script.get_revision(second.down_revision)
            if first.doc == match["message"] and first.nextrev == frozenset({second.revision}):
                halves[second.revision] = first.revision
    return halves


def relative_steps(command, revision):
    """Return N for a relative REVISION (`-N`, or none, for downgrade; `+N` for upgrade), else None."""
    sign = "-" if command == "downgrade" else "+"
    if revision is None:
        return 1 if command == "downgrade" else None
    match = re.fullmatch(re.escape(sign) + r"(\d+)", revision)
    return int(match[1]) if match and int(match[1]) > 0 else None


def whole_step_target(script, current, command, steps):
    """Return the revision (or "base") that `steps` steps down or up from current reach when each pair of
    second_halves() is one step, or None where Alembic's own count is the same or the walk is not linear."""
    halves = second_halves(script)
    if not halves or len(current) > 1:
        return None
    at, crossed = (current[0] if current else None), False
    for _ in range(steps):
        if command == "downgrade":
            if at is None:
                raise fewer_steps(command, steps)
            if at in halves:
                at, crossed = halves[at], True
            down = script.get_revision(at).down_revision
            if not (down is None or isinstance(down, str)):
                return None  # a merge point: Alembic's relative steps decide
            at = down
        else:
            children = (set(script.get_bases()) if at is None else script.get_revision(at).nextrev)
            if not children:
                raise fewer_steps(command, steps)
            if len(children) != 1:
                return None
            (at,) = children
            second = next((s for s, f in halves.items() if f == at), None)
            if second is not None:
                at, crossed = second, True
    if not crossed:
        return None
    return at or "base"


def fewer_steps(command, steps):
    """Return the Failure for a relative step past base or head, in the words of errors.ALEMBIC_MESSAGES."""
    sign = "-" if command == "downgrade" else "+"
    return Failure(f"There are fewer than {steps} migrations to go through from where the database is (step "
                   f"{sign}{steps}): `python db_manage.py history` lists them; `downgrade base` reverts every one.")


def history_lines(script):
    """Return `history`'s lines, newest first, as Alembic writes them, each pair of second_halves() one line:
    `parent -> first -> second (head), message`."""
    ensure_acyclic(script)
    halves = second_halves(script)
    firsts = set(halves.values())
    lines = []
    for revision in script.walk_revisions():
        if revision.revision in firsts:
            continue
        line = revision.cmd_format(False, include_branches=True, include_doc=True, include_parents=True)
        first = script.get_revision(halves[revision.revision]) if revision.revision in halves else None
        if first is not None:
            parents = first.cmd_format(False, include_branches=True, include_parents=True, tree_indicators=False)
            tail = revision.cmd_format(False, include_branches=True)
            line = f"{parents} -> {tail}, {first.doc}"
        lines.append(line)
    return lines


def show_history():
    """Print the migrations, newest first: a model edit that `migrate` wrote as two revisions is one line."""
    import click

    from .migration_hooks import script_directory

    for line in history_lines(script_directory()):
        click.echo(line)


def pending_steps(script, waiting):
    """Return the pending revisions grouped into steps: [(revisions, message)], a pair of second_halves() one."""
    halves, steps = second_halves(script), []
    for item in waiting:
        if steps and halves.get(item["revision"]) == steps[-1][0][-1]:
            steps[-1][0].append(item["revision"])
        else:
            steps.append(([item["revision"]], item["message"]))
    return steps
