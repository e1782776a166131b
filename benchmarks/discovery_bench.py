"""Discovery benchmark: 6,000 simulated hospitals (catalog API + a cms-hpt.txt each) served locally.

Measures, against the real code paths (the Dagster sensors evaluated in-process, an SQLite
registry, the demo server in a separate process on 127.0.0.1):

1. the catalog sensor ticks that take an empty registry to all 6,000 hospitals: each tick reads
   every catalog page, crawls the next ``cms_hpt_max_sites_per_tick`` (default 1,000) websites'
   cms-hpt.txt, reconciles, enriches and writes the registry; the first tick adds every
   hospital, the next ones finish the cms-hpt.txt crawl (target: every tick < 10 s; cursor
   < 10 KB); also the time until all 6,000 cms-hpt.txt were read;
2. adding the 6,000 hospital partitions to a Dagster instance;
3. a steady tick (nothing changed, no cms-hpt.txt due);
4. a full change-detection sweep over the 6,000 files when nothing changed, as the
   ``mrf_change_sensor`` runs it (target >= 200 files/s).

Run: ``.venv/bin/python benchmarks/discovery_bench.py [--hospitals 6000]``. Exits 1 when a target
is missed; the last line is ``RESULT ...``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import hashlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from price_pipeline.defs.catalog.sensors import catalog_sensor, mrf_change_sensor  # noqa: E402
from price_pipeline.defs.partitions import hospital_partitions  # noqa: E402
from price_pipeline.defs.resources import PricePipelineResource  # noqa: E402
from price_pipeline.demo.server import generate_catalog  # noqa: E402
from price_pipeline.lib.registry import Registry  # noqa: E402
from price_pipeline.settings import Settings  # noqa: E402

TICK_TARGET_S = 10.0
CURSOR_TARGET_BYTES = 10 * 1024
SWEEP_TARGET_FPS = 200.0
DEMO_LAST_MODIFIED = 1_748_736_000.0  # what DemoCatalogServer(files=...) serves


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(n: int, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "price_pipeline.demo.server", "--port", str(port), "--quiet", "--generate", str(n)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("demo server did not start")


def context_for(instance, settings, cursor=None):
    return dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"price_pipeline": PricePipelineResource.from_settings(settings)},
    )


def mark_all_downloaded(registry: Registry, files: dict[str, bytes]) -> int:
    """Give every tracked file the state a successful download leaves (sha256, size, validators)."""
    by_name = {name: data for name, data in files.items()}
    rows = []
    lm = email.utils.formatdate(DEMO_LAST_MODIFIED, usegmt=True)
    now = dt.datetime.now(dt.UTC)
    for (key, url), _state in registry.file_states().items():
        data = by_name[url.rsplit("/", 1)[-1]]
        sha = hashlib.sha256(data).hexdigest()
        rows.append(
            {
                "hospital_key": key,
                "url": url,
                "sha256": sha,
                "size": len(data),
                "etag": f'"{sha[:32]}"',
                "last_modified": lm,
                "status": "ok",
                "last_downloaded_at": now,
            }
        )
    registry.upsert_file_states(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--sites-per-tick", type=int, default=Settings.cms_hpt_max_sites_per_tick)
    args = parser.parse_args(argv)
    n = args.hospitals
    _hospitals, files = generate_catalog(n)
    port = free_port()
    server = start_server(n, port)
    failures = []
    try:
        with tempfile.TemporaryDirectory(prefix="discovery-bench-") as tmp:
            tmp_path = Path(tmp)
            settings = Settings(
                data_dir=tmp_path,
                lake_url=str(tmp_path / "lake"),
                registry_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
                warehouse_path=tmp_path / "warehouse.duckdb",
                catalog_url=f"http://127.0.0.1:{port}/api/v1/hospitals",
                allowed_private_hosts=(f"127.0.0.1:{port}",),
                http_timeout_seconds=30,
                discovery_workers=args.workers,
                cms_hpt_max_sites_per_tick=args.sites_per_tick,
                # one local host stands in for 6,000 hospital servers: the per-host limits of a
                # real deployment (4 in flight, 10/s) would measure the limiter, not the code
                host_max_concurrency=args.workers,
                host_max_requests_per_second=0,
                change_sweep_max_files=n,
            )
            with dg.DagsterInstance.ephemeral() as instance:
                started = time.monotonic()
                first = catalog_sensor(context_for(instance, settings))
                first_s = time.monotonic() - started
                assert isinstance(first, dg.SensorResult), first
                cursor_bytes = len(first.cursor.encode())
                (add,) = first.dynamic_partitions_requests
                runs = sum(1 for r in first.run_requests if r.job_name == "ingest_hospital")
                print(
                    f"first catalog tick: {first_s:.2f} s for {n} hospitals (+ {args.sites_per_tick} "
                    f"cms-hpt.txt); cursor {cursor_bytes} bytes; {runs} ingestion runs requested"
                )
                started = time.monotonic()
                instance.add_dynamic_partitions(hospital_partitions.name, list(add.partition_keys))
                partitions_s = time.monotonic() - started
                print(f"adding {len(add.partition_keys)} partitions: {partitions_s:.2f} s")

                registry = Registry(settings.registry_url)
                tick_times, cursor = [first_s], first.cursor
                crawl_started = time.monotonic() - first_s
                while sum(1 for c in registry.site_crawls().values() if c["status"] == "found") < n:
                    started = time.monotonic()
                    result = catalog_sensor(context_for(instance, settings, cursor))
                    tick_times.append(time.monotonic() - started)
                    if isinstance(result, dg.SensorResult):
                        cursor = result.cursor
                        cursor_bytes = max(cursor_bytes, len(cursor.encode()))
                    if len(tick_times) > n // max(1, args.sites_per_tick) + 3:
                        break
                crawl_s = time.monotonic() - crawl_started
                found = sum(1 for c in registry.site_crawls().values() if c["status"] == "found")
                tick_s = max(tick_times)
                print(
                    f"cms-hpt.txt: {found}/{n} read in {len(tick_times)} ticks, {crawl_s:.2f} s; "
                    f"tick times {', '.join(f'{t:.2f}' for t in tick_times)} s"
                )

                started = time.monotonic()
                steady = catalog_sensor(context_for(instance, settings, cursor))
                steady_s = time.monotonic() - started
                print(f"steady catalog tick (no change, no cms-hpt.txt due): {steady_s:.2f} s -> {type(steady).__name__}")

                tracked = mark_all_downloaded(registry, files)
                started = time.monotonic()
                change = mrf_change_sensor(context_for(instance, settings))
                sweep_s = time.monotonic() - started
                states = registry.file_states()
                probed = sum(1 for s in states.values() if s.get("last_checked_at") and s.get("last_signal"))
                changed_runs = len(change.run_requests or [])
                fps = probed / sweep_s if sweep_s else float("inf")
                signals = {}
                for s in states.values():
                    signals[s.get("last_signal")] = signals.get(s.get("last_signal"), 0) + 1
                print(
                    f"change sweep: {probed}/{tracked} files in {sweep_s:.2f} s = {fps:.0f} files/s; "
                    f"signals {signals}; {changed_runs} runs requested; cursor {len(change.cursor)} bytes"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)

    if tick_s >= TICK_TARGET_S:
        failures.append(f"catalog tick {tick_s:.2f}s >= {TICK_TARGET_S}s")
    if cursor_bytes >= CURSOR_TARGET_BYTES:
        failures.append(f"cursor {cursor_bytes} B >= {CURSOR_TARGET_BYTES} B")
    if fps < SWEEP_TARGET_FPS:
        failures.append(f"sweep {fps:.0f} files/s < {SWEEP_TARGET_FPS}")
    if found != n:
        failures.append(f"only {found}/{n} cms-hpt.txt read")
    if probed != tracked or changed_runs:
        failures.append(f"sweep probed {probed}/{tracked} and requested {changed_runs} runs for unchanged files")
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    print(
        f"RESULT hospitals={n} catalog_tick_max_s={tick_s:.2f} first_tick_s={first_s:.2f} "
        f"cursor_bytes={cursor_bytes} cms_hpt_read={found} cms_hpt_all_s={crawl_s:.2f} "
        f"add_partitions_s={partitions_s:.2f} steady_tick_s={steady_s:.2f} "
        f"sweep_files={probed} sweep_s={sweep_s:.2f} sweep_files_per_s={fps:.0f} "
        f"targets={'met' if not failures else 'MISSED'}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
