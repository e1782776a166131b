"""The one command table of ``price-pipeline`` and the one error wrapper every command runs in.

A command module registers each subcommand with :func:`command` (name, help, a function that adds
its arguments); :func:`build_parser` makes one sub-parser per registered command and
:func:`main` runs the chosen one through :func:`run_guarded`: a :class:`CliError` (a request
Dagster refused, a file that cannot be read, nothing published yet) becomes one
``price-pipeline: ...`` line on stderr and the error's exit status, for every command alike.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

Setup = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A refused request or an unusable input: reported on stderr with exit status ``status``
    (1 when Dagster refused a request; 2 for a usage or input problem)."""

    def __init__(self, message: str, *, status: int = 1):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Command:
    name: str
    setup: Setup
    run: Run
    help: str


COMMANDS: dict[str, Command] = {}


def command(name: str, *, help: str, setup: Setup) -> Callable[[Run], Run]:
    """Register the decorated function as the ``price-pipeline NAME`` subcommand."""

    def register(run: Run) -> Run:
        if name in COMMANDS:
            raise ValueError(f"price-pipeline {name} is registered twice")
        COMMANDS[name] = Command(name, setup, run, help)
        return run

    return register


def run_guarded(run: Run, args: argparse.Namespace) -> int:
    """Run a command; its :class:`CliError` becomes a stderr line and the error's exit status."""
    try:
        return run(args)
    except CliError as exc:
        print(f"price-pipeline: {exc}", file=sys.stderr, flush=True)
        return exc.status


def build_parser(description: str = "price-pipeline command line") -> argparse.ArgumentParser:
    """Argument parser with one sub-parser per registered command."""
    parser = argparse.ArgumentParser(prog="price-pipeline", description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for entry in COMMANDS.values():
        p = sub.add_parser(entry.name, help=entry.help)
        entry.setup(p)
        p.set_defaults(_run=entry.run)
    return parser
