"""The run command (`make run`): prepare DAGSTER_HOME, start the demo catalog, run `dagster dev`.

In the embedded default (no ``PRICE_PIPELINE_CATALOG_URL`` given) the bundled demo catalog is
served on 127.0.0.1 and allow-listed for downloads, so the whole platform runs offline. With
``PRICE_PIPELINE_MODE=production`` the instance configuration in ``deploy/production`` is used
and no demo is started. The web UI binds to 127.0.0.1 unless ``PRICE_PIPELINE_UI_HOST`` says
otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from price_pipeline.settings import PROJECT_ROOT, Settings, child_environment, environ, scoped_environ


def prepare_dagster_home(home: Path, *, production: bool) -> None:
    """Point DAGSTER_HOME's dagster.yaml at the embedded or production instance config."""
    home.mkdir(parents=True, exist_ok=True)
    source = PROJECT_ROOT / ("deploy/production/dagster.yaml" if production else "dagster.yaml")
    target = home / "dagster.yaml"
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(os.path.relpath(source, home))
    # Create and migrate the instance storage once, here, before the webserver, the daemon and
    # the code servers start: on a fresh SQLite home they would race to create the same tables.
    with scoped_environ("DAGSTER_HOME", str(home)):
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(home)) as instance:
            instance.upgrade()


def main() -> int:
    settings = Settings.from_env()
    production = settings.mode == "production"
    home = Path(settings.dagster_home or PROJECT_ROOT / ".dagster_home")
    prepare_dagster_home(home, production=production)
    # what `dagster dev` and its code servers see beyond this process's environment
    child = {"DAGSTER_HOME": str(home)}

    server = None
    if not production and not settings.catalog_url_configured:
        from price_pipeline.demo.server import DemoCatalogServer

        port = settings.demo_port
        server = DemoCatalogServer(host="127.0.0.1", port=port)
        server.start()
        child["PRICE_PIPELINE_CATALOG_URL"] = server.catalog_url
        child["PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS"] = ",".join([*settings.allowed_private_hosts, f"127.0.0.1:{port}"])
        # The demo should react within seconds, not the production default.
        if "PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL" not in environ():
            child["PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL"] = "10"
        print(f"demo catalog: {server.catalog_url}", flush=True)

    command = [
        str(Path(sys.executable).parent / "dagster"),
        "dev",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
        "-h",
        settings.ui_host,
        "-p",
        settings.ui_port,
    ]
    print(f"Dagster UI: http://{settings.ui_host}:{settings.ui_port}", flush=True)
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=child_environment(child))
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        return process.wait()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
