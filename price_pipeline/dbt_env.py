"""``price-pipeline-dbt``: dbt with the environment of one run, given on its command line.

dbt reads the lake, the warehouse, the target and the S3 endpoint from its environment
(``dbt_analytics/profiles.yml`` and the sources), and dagster-dbt starts dbt with a copy of the
calling process's environment. The models asset therefore runs dbt through this launcher:
leading ``--price-pipeline-env=NAME=VALUE`` arguments are set in the launched dbt's environment
only, so the run's settings reach dbt without changing the environment of the process that runs
the asset (an in-process run, a test, another thread). Every other argument is dbt's.

For the ``spark`` target the launcher runs dbt in its own process after starting the Spark
session and registering the project's UDFs (:mod:`price_pipeline.lib.spark_dbt`); for every
other target it replaces itself with plain dbt.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from price_pipeline.settings import become_environment, child_environment

ENV_FLAG = "--price-pipeline-env="
COMMAND = "price-pipeline-dbt"  # the console script ([project.scripts] in pyproject.toml)


def env_flags(env: Mapping[str, str]) -> list[str]:
    """The launcher's arguments that set ``env`` for dbt."""
    return [f"{ENV_FLAG}{name}={value}" for name, value in env.items()]


def split_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """(environment to set, dbt's arguments) of the launcher's command line."""
    env, args = {}, list(argv)
    while args and args[0].startswith(ENV_FLAG):
        name, _, value = args.pop(0)[len(ENV_FLAG):].partition("=")
        env[name] = value
    return env, args


def main() -> None:
    env, args = split_args(sys.argv[1:])
    environment = child_environment(env)
    from price_pipeline.lib.analytics import spark_dbt

    if spark_dbt.needs_spark_session(args, environment):
        # The `spark` target (dbt-spark, session method): dbt must run inside the process that
        # holds the Spark session with the project's UDFs, so this process becomes the run's dbt.
        # Spark starts its Python workers with PYSPARK_PYTHON (default: the first python3 on
        # PATH, which need not see this virtualenv, and then the UDFs cannot import this
        # package); the session's spark.pyspark.python setting did not reach local-mode workers.
        environment.setdefault("PYSPARK_PYTHON", sys.executable)
        become_environment(environment)
        sys.exit(spark_dbt.main(args))
    # the dbt installed beside this interpreter, so an unactivated virtualenv still finds it
    dbt = shutil.which("dbt", path=str(Path(sys.executable).parent)) or "dbt"
    os.execvpe(dbt, [dbt, *args], environment)


if __name__ == "__main__":
    main()
