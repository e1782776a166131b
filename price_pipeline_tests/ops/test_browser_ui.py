"""The web UI in a real browser: `dagster dev` ingests a demo hospital by itself, then headless
Chromium (Debian's ``chromium``, driven over the DevTools protocol) checks that the global asset
lineage loads, that the hospital partition of ``prices`` shows its materialization, that the
checks tab shows its check results, and that ``hospital_catalog`` shows its freshness policy
evaluated as passing. Screenshots go to ``test-artifacts/`` (gitignored; CI keeps
them as artefacts).

Skips where chromium is not installed, except in CI (``CI=true``), where it must be there
(``.ci/run`` installs it).
"""

import os
import time

import dagster as dg
import pytest

from price_pipeline.demo.server import DemoCatalogServer
from price_pipeline_tests.browser import ARTIFACTS_DIR, chromium_binary, headless_chromium
from price_pipeline_tests.conftest import host_port
from price_pipeline_tests.integration.dagster_process import dagster_dev, tail, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOSPITAL = "ccn-050901"  # the first demo hospital (CSV tall, CMS v3)
CHECK = "prices_schema_and_lineage_complete"


@pytest.fixture
def chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        reason = "chromium is not installed (Debian: apt-get install chromium); the browser test needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def _shoot(page, name: str, shots: list) -> None:
    path = page.screenshot(ARTIFACTS_DIR / f"browser_ui_{name}.png")
    shots.append(path)
    print(f"screenshot: {path}", flush=True)


def test_ui_shows_lineage_partition_materialization_and_checks(tmp_path, chromium):
    home = tmp_path / "dagster_home"
    shots: list = []
    with DemoCatalogServer(host="127.0.0.1", port=0) as server:
        server.set_hospitals(server.hospitals()[:1])  # one hospital: the partition shown is known
        env = {
            "PRICE_PIPELINE_DATA_DIR": str(tmp_path / "data"),
            "PRICE_PIPELINE_CATALOG_URL": server.catalog_url,
            "PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS": host_port(server.catalog_url),
            "PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL": "5",
            # the freshness daemon evaluates every 30 s by default; sooner, so the state is there
            "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",
        }
        with dagster_dev(home, env) as (_, port):
            instance = dg.DagsterInstance.from_config(str(home))
            try:

                def hospital_run_succeeded():
                    try:
                        runs = instance.get_runs(dg.RunsFilter(job_name="ingest_hospital"))
                    except Exception:  # storage still initialising
                        return False
                    finished = [r for r in runs if r.is_finished]
                    if finished and finished[0].status != dg.DagsterRunStatus.SUCCESS:
                        pytest.fail(f"ingestion run failed: {finished[0].run_id}")
                    return bool(finished) and instance.get_latest_materialization_event(dg.AssetKey("prices"))

                try:
                    event = wait_for(hospital_run_succeeded, timeout=180, what="the hospital's prices")
                except TimeoutError:
                    pytest.fail(f"no prices materialization; dagster dev log:\n{tail(home / 'dagster_dev.log')}")
                assert event.dagster_event.partition == HOSPITAL
            finally:
                instance.dispose()

            base = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            with headless_chromium(chromium, log_path=tmp_path / "chromium.log") as page:
                # 1. the global asset lineage loads (its groups), then the catalog lists the assets
                page.navigate(f"{base}/asset-groups")
                page.wait_for_text("Global asset lineage", "ingestion", "catalog", "analytics", "exports")
                time.sleep(1)  # let the graph settle its layout before the picture
                _shoot(page, "01_global_lineage", shots)
                # Expanded, the graph of ~30 assets is zoomed out past the point where node labels
                # render, so the asset names are checked on the catalog page listing the same graph.
                # The catalog table renders only the rows in view, so each ingestion asset's own
                # page is opened as well.
                page.navigate(f"{base}/assets")
                page.wait_for_text("Asset name", "hospital_catalog", "exports")
                _shoot(page, "01b_asset_catalog", shots)
                for name in ("mrf_files", "mrf_parsed", "prices"):
                    page.navigate(f"{base}/assets/{name}")
                    page.wait_for_text(name, "ingestion")

                # 2. the hospital partition of prices: materialized, with its metadata
                page.navigate(f"{base}/assets/prices?view=partitions&partition={HOSPITAL}")
                text = page.wait_for_text(HOSPITAL, "Materialized", "Latest materialization", "dagster/row_count",
                                          f"hospital_key={HOSPITAL}/prices.parquet")
                assert "Materialized (1)" in text, text[:2000]
                _shoot(page, "02_prices_partition", shots)

                # 3. the checks tab: the blocking check passed on this partition
                page.navigate(f"{base}/assets/prices?view=checks&checkDetail={CHECK}")
                text = page.wait_for_text("Checks (", CHECK, "Latest execution", "Passed", "Partition", HOSPITAL,
                                          "rows_without_lineage")
                assert "This is a blocking asset check." in text
                _shoot(page, "03_prices_checks", shots)

                # 4. freshness: the catalog's policy is shown and evaluated (the freshness daemon
                # ran on the catalog materialization that preceded the hospital run)
                page.navigate(f"{base}/assets/hospital_catalog")
                # the status row shows the daemon's state ("Not evaluated" would mean it never ran
                # on the asset); the side panel shows the policy's windows
                page.wait_for_text("Latest materialization", "Freshness policy\nPassing",
                                   "Fails if more than 24 hours since last materialization",
                                   "Warns if more than 12 hours since last materialization")
                _shoot(page, "04_catalog_freshness", shots)
            print(f"browser part took {time.monotonic() - started:.1f}s", flush=True)
    assert len(shots) == 5 and all(p.stat().st_size > 10_000 for p in shots), shots
