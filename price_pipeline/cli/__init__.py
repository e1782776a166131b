"""``price-pipeline``: the operator's command line (console script, or ``python -m price_pipeline.cli``).

One command table (:data:`~price_pipeline.cli.registry.COMMANDS`), filled by the command modules
with :func:`~price_pipeline.cli.registry.command`, and one error wrapper every command runs in
(:func:`~price_pipeline.cli.registry.run_guarded`):

* :mod:`~price_pipeline.cli.files` — ``parse`` and ``validate`` local MRF files;
* :mod:`~price_pipeline.cli.lake` — ``quarantine`` and ``export`` of the configured lake;
* :mod:`~price_pipeline.cli.jobs` — job control over the Dagster instance and webserver:
  ``add-hospitals``, ``launch``, ``backfill``, ``reexecute``, ``cancel``, ``runs``,
  ``failed-hospitals``, ``retry-failed``, ``wait``.

Each command imports what it needs when it runs (the parser pulls in pyarrow, job control
Dagster), so ``price-pipeline validate`` pays for neither.
"""

from __future__ import annotations

import sys

from price_pipeline.cli import files, jobs, lake  # noqa: F401 - each registers its commands
from price_pipeline.cli.registry import COMMANDS, CliError, build_parser, run_guarded

__all__ = ["COMMANDS", "CliError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``price-pipeline``); returns the exit status."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    return run_guarded(args._run, args)


if __name__ == "__main__":
    sys.exit(main())
