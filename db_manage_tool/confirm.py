"""Confirmation before a destructive command: typed `yes` on a terminal, or --yes."""
import sys

import click

from .errors import Failure


def confirm(what, yes, flag="--yes"):
    """Show what will be destroyed and return only when the user agrees (or gave flag); raise Failure otherwise."""
    click.echo(what, err=True)
    if yes:
        return
    if not sys.stdin.isatty():
        raise Failure("Refusing to continue without a terminal to confirm on: nothing was changed. "
                      f"Pass {flag} to confirm in a script.")
    answer = click.prompt("Type 'yes' to continue", default="", show_default=False, err=True)
    if answer.strip().lower() != "yes":
        raise Failure("Cancelled: nothing was changed.")
