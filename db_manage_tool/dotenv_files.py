"""The project's .env and .flaskenv, checked before anything reads them: a file that cannot be parsed is refused.

The wrapper checks them when it reads FLASK_APP from them; load_app checks them before Flask
loads them (in the `flask db` child and for the commands run in process), so that a command
given FLASK_APP does not import python-dotenv twice.

python-dotenv skips a line it cannot parse with a warning and goes on, so a mistyped quote would
silently drop DATABASE_URL and send the commands to the embedded server instead; non-UTF-8 bytes
would be an exception that names no file.
"""
import io
import os

import click
from dotenv.parser import parse_stream


class DotenvError(click.ClickException):
    """A .env or .flaskenv that cannot be read: one sentence, exit 1 (in the wrapper and in a child)."""

    expected = True


def check_folder(folder):
    """Check the .flaskenv and .env that Flask would load from folder (the project's, where commands run)."""
    for name in (".flaskenv", ".env"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            check(path)
        elif os.path.lexists(path):
            refuse_non_file(path)


def refuse_non_file(path):
    """Raise DotenvError for a .env that is there but is no file: Flask would skip it, and its settings with it."""
    if os.path.islink(path) and not os.path.exists(path):
        raise DotenvError(f"{path} is a link to {os.readlink(path)}, which does not exist, so its settings cannot be "
                          "read: fix the link, or remove it.")
    raise DotenvError(f"{path} is not a file (a folder?), so no settings can be read from it: move it away, and "
                      "write the settings in a file of that name.")


def check(path):
    """Raise DotenvError naming the file and line when path cannot be read as a dotenv file."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise DotenvError(f"{path} cannot be read ({exc.strerror}): fix its permissions or remove it.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DotenvError(f"{path} line {line} is not UTF-8 text (byte {raw[exc.start]:#04x}): save the "
                          "file as UTF-8.") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            shown = binding.original.string.split("=", 1)[0].strip()[:40]
            raise DotenvError(f"{path} line {binding.original.line} cannot be parsed (it starts with "
                              f"{shown!r}; an unclosed quote?): write it as NAME=value or NAME=\"value\".")
