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

from price_pipeline.settings import PROJECT_ROOT


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
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(home)) as instance:
            instance.upgrade()
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def main() -> int:
    production = os.environ.get("PRICE_PIPELINE_MODE", "embedded") == "production"
    home = Path(os.environ.get("DAGSTER_HOME", PROJECT_ROOT / ".dagster_home"))
    os.environ["DAGSTER_HOME"] = str(home)
    prepare_dagster_home(home, production=production)

    server = None
    if not production and not os.environ.get("PRICE_PIPELINE_CATALOG_URL"):
        from price_pipeline.demo.server import DemoCatalogServer

        port = int(os.environ.get("PRICE_PIPELINE_DEMO_PORT", "8765"))
        server = DemoCatalogServer(host="127.0.0.1", port=port)
        server.start()
        os.environ["PRICE_PIPELINE_CATALOG_URL"] = server.catalog_url
        allowed = [h for h in os.environ.get("PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS", "").split(",") if h]
        os.environ["PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS"] = ",".join([*allowed, f"127.0.0.1:{port}"])
        # The demo should react within seconds, not the production default.
        os.environ.setdefault("PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL", "10")
        print(f"demo catalog: {server.catalog_url}", flush=True)

    ui_host = os.environ.get("PRICE_PIPELINE_UI_HOST", "127.0.0.1")
    ui_port = os.environ.get("PRICE_PIPELINE_UI_PORT", "3000")
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "dev",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
        "-h",
        ui_host,
        "-p",
        ui_port,
    ]
    print(f"Dagster UI: http://{ui_host}:{ui_port}", flush=True)
    process = subprocess.Popen(command, cwd=PROJECT_ROOT)
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
