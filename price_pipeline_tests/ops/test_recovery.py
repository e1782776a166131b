"""Recovery with real processes: what happens to a hospital's data and runs when things die.

* a run worker killed with ``kill -9`` in the middle of writing a partition: nothing partial is
  visible, and a rerun succeeds;
* the PostgreSQL server (Dagster instance + registry) going down during a run for longer than
  any retry bridges, then coming back: the run fails, nothing partial, and a rerun succeeds;
* S3 failing (503 SlowDown, then unreachable) under a run: a clear, classified failure, nothing
  partial stored, and success once S3 is back;
* the daemon killed while runs are queued: a new daemon starts every queued run.

Two runs of one hospital being serialised by the queue is proven elsewhere, with the real daemon:
``test_daemon_postgres_e2e.py`` (two CLI launches of one hospital never overlap) and, for every
limit at every step of a burst, ``test_run_queue_limits.py``.

Every hospital run here is a real ``dagster asset materialize`` process (the run worker itself);
every process is started in its own session and its whole group is killed at the end.
"""

import os
import signal
import subprocess
import time
import uuid

import boto3
import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from price_pipeline.demo.faults import Fault
from price_pipeline.demo.server import DemoCatalogServer
from price_pipeline.launch import prepare_dagster_home
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import LocalLake, S3Lake
from price_pipeline.settings import PROJECT_ROOT
from price_pipeline_tests.conftest import REQUIRE_POSTGRES, host_port
from price_pipeline_tests.integration.dagster_process import free_port, tail, wait_for
from price_pipeline_tests.ops.recovery_support import (
    S3FaultProxy,
    kill_group,
    materialize_command,
    postgres_bin_dir,
    private_postgres,
    register_hospitals,
    start,
    unreadable_visible_parquet,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOSPITAL = "ccn-050901"  # demo CSV tall v3, ~150 price rows


@pytest.fixture
def one_hospital_catalog():
    """A private demo catalog listing one hospital (faults injected here stay in this test)."""
    with DemoCatalogServer(host="127.0.0.1", port=0) as server:
        server.set_hospitals(server.hospitals()[:1])
        yield server


def _env(tmp_path, server, **extra) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "PRICE_PIPELINE_DATA_DIR": str(tmp_path / "data"),
        "PRICE_PIPELINE_CATALOG_URL": server.catalog_url,
        "PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS": host_port(server.catalog_url),
        "PRICE_PIPELINE_HTTP_TIMEOUT_SECONDS": "20",
        **extra,
    }


def _run_to_end(env, log, timeout=180) -> int:
    process = start(materialize_command(HOSPITAL), env, log)
    try:
        return process.wait(timeout=timeout)
    finally:
        kill_group(process)


def _prices_via_reader_glob(lake_root) -> int:
    """Rows the analytics layer would read (dbt's source glob)."""
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT count(*) FROM read_parquet('{layout.prices_glob(str(lake_root))}')").fetchone()[0]  # noqa: S608
    except duckdb.IOException:  # "No files found"
        return 0
    finally:
        con.close()


# --- (a) kill -9 mid-write ------------------------------------------------------------------------

def _kill_worker_mid_write(env, victim: str, marker, log) -> str:
    """Run the hospital with lake writes of ``victim`` stalling half-way; kill -9 the worker
    there. Returns the path of the half-written temp file."""
    marker.unlink(missing_ok=True)
    worker = start(materialize_command(HOSPITAL, stall_writes=True),
                   {**env, "PP_SLOW_WRITE_MATCH": victim, "PP_SLOW_WRITE_MARKER": str(marker)}, log)
    try:
        wait_for(lambda: marker.exists() or worker.poll() is not None, timeout=120, interval=0.2, what="the stalled write")
        assert marker.exists(), f"worker ended before writing {victim}:\n{tail(log)}"
        os.kill(worker.pid, signal.SIGKILL)  # the run worker, mid-write
        worker.wait(timeout=10)
    finally:
        kill_group(worker)
    assert worker.returncode == -signal.SIGKILL
    partial = marker.read_text()
    # the half-written temp file is really there on disk ...
    assert os.path.getsize(partial) > 0 and os.path.basename(partial).startswith(".tmp-")
    with pytest.raises(Exception):  # noqa: B017 - any Parquet error: it is half a file
        pq.read_table(partial)
    return partial


def _assert_nothing_partial_visible(lake, victim: str) -> list[str]:
    keys = lake.list_keys("")
    assert not [k for k in keys if ".tmp-" in k], keys
    assert not [k for k in keys if k.endswith(victim)], f"{victim} published although its write was killed: {keys}"
    assert layout.prices_key(HOSPITAL) not in keys
    assert unreadable_visible_parquet(lake) == []  # every visible Parquet opens completely
    assert _prices_via_reader_glob(lake.root) == 0  # the analytics glob finds nothing
    return keys


def test_kill_9_while_writing_a_partition_leaves_nothing_partial_and_rerun_succeeds(tmp_path, one_hospital_catalog):
    started = time.monotonic()
    env = _env(tmp_path, one_hospital_catalog)
    home = tmp_path / "home"
    prepare_dagster_home(home, production=False)
    register_hospitals(env, home, [HOSPITAL])
    lake = LocalLake(tmp_path / "data" / "lake")
    marker = tmp_path / "stalled-write"
    log = tmp_path / "worker.log"

    # 1. killed while mrf_parsed writes the file's rows: no rows.parquet, no prices
    _kill_worker_mid_write(env, "rows.parquet", marker, log)
    keys = _assert_nothing_partial_visible(lake, "rows.parquet")
    assert [k for k in keys if k.startswith("raw/")], "the downloaded file (published before) is kept"

    # 2. the rerun is killed while prices writes the partition: parsed rows whole, no prices
    _kill_worker_mid_write(env, "prices.parquet", marker, log)
    keys = _assert_nothing_partial_visible(lake, "prices.parquet")
    assert [k for k in keys if k.endswith("rows.parquet")], keys

    # the killed runs are not recorded as successes
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert all(r.status != dg.DagsterRunStatus.SUCCESS for r in instance.get_runs())

    # 3. a plain rerun of the hospital succeeds; the stale temp files stay invisible
    assert _run_to_end(env, log) == 0, tail(log)
    assert layout.prices_key(HOSPITAL) in lake.list_keys("")
    assert unreadable_visible_parquet(lake) == []
    rows = _prices_via_reader_glob(lake.root)
    assert rows > 100
    with dg.DagsterInstance.from_config(str(home)) as instance:
        statuses = [r.status for r in instance.get_runs()]  # newest first
        assert len(statuses) == 3 and statuses[0] == dg.DagsterRunStatus.SUCCESS, statuses
    print(f"kill -9 during rows.parquet, then prices.parquet: {rows} rows after rerun, "
          f"{time.monotonic() - started:.1f}s")


# --- (b) PostgreSQL restarted during a run -------------------------------------------------------

@pytest.fixture
def postgres_binaries():
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        reason = "initdb not found (Debian: postgresql package); cannot start a private PostgreSQL cluster"
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    if os.geteuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
        reason = "running as root without a `postgres` OS user to own a private cluster"
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    return bin_dir


def _raw_bytes_kept(lake, served_file) -> str:
    """The served file's bytes are in the lake under their sha256 (``raw/<aa>/<sha>.<ext>``)."""
    import hashlib

    data = served_file.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    [key] = [k for k in lake.list_keys(f"raw/{sha[:2]}/") if k.split("/")[-1].startswith(sha)]
    assert lake.get_bytes(key) == data
    return key


@pytest.mark.postgres
def test_postgres_down_during_a_run_fails_it_and_a_rerun_succeeds(tmp_path, one_hospital_catalog, postgres_binaries,
                                                                   moto_s3):
    """PostgreSQL (Dagster instance + registry) goes down while the run is downloading and stays
    down until the run worker has given up — longer than Dagster's PostgreSQL retries (5 tries,
    ~6 s) and the assets' retry policies can bridge, so the run cannot survive. Then PostgreSQL
    comes back (a restart with a long outage): the failed run left no partial partition, and a
    rerun succeeds with the raw bytes stored and the prices published."""
    from price_pipeline.demo import DATA_DIR

    started = time.monotonic()
    server = one_hospital_catalog
    bucket = f"logs-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket=bucket)
    with private_postgres(postgres_binaries) as cluster:
        env = _env(
            tmp_path, server,
            DAGSTER_PG_URL=cluster.create_database("dagster"),
            PRICE_PIPELINE_REGISTRY_URL=cluster.create_database("registry"),
            PRICE_PIPELINE_COMPUTE_LOG_BUCKET=bucket,
            PRICE_PIPELINE_S3_ENDPOINT_URL=moto_s3,
            PRICE_PIPELINE_LAKE_URL=str(tmp_path / "data" / "lake"),
        )
        home = tmp_path / "home"
        lake = LocalLake(tmp_path / "data" / "lake")
        saved = dict(os.environ)
        os.environ.update(env)  # the production dagster.yaml reads DAGSTER_PG_URL from the environment
        try:
            prepare_dagster_home(home, production=True)
            register_hospitals(env, home, [HOSPITAL])
            file_name = server.hospitals()[0]["files"][0]["name"]
            file_path = "/files/" + file_name
            # the download trickles for ~6 s: the run is provably in flight when PostgreSQL stops
            server.add_fault(file_path, Fault.slow(0.4, chunk_size=1024, times=1))
            log = tmp_path / "worker.log"
            worker = start(materialize_command(HOSPITAL), env, log)
            try:
                wait_for(lambda: any(r.path == file_path for r in server.requests), timeout=90, interval=0.2,
                           what="the run to start downloading")
                outage_started = time.monotonic()
                cluster.stop()  # immediate shutdown: every connection cut, no new ones accepted
                assert worker.poll() is None, "the run ended before PostgreSQL stopped"
                # Down until the worker gives up: nothing it does can reach PostgreSQL meanwhile.
                code = worker.wait(timeout=120)
                outage_seconds = time.monotonic() - outage_started
            finally:
                kill_group(worker)
            assert code != 0, f"the run survived a {outage_seconds:.0f}s outage:\n{tail(log)}"
            # while PostgreSQL was down: no partial partition in the lake
            assert not [k for k in lake.list_keys("") if ".tmp-" in k]
            assert not lake.exists(layout.prices_key(HOSPITAL))
            assert unreadable_visible_parquet(lake) == [] and _prices_via_reader_glob(lake.root) == 0

            cluster.start()
            instance = dg.DagsterInstance.from_config(str(home))
            [failed] = instance.get_runs()
            # The worker could not record its own end while PostgreSQL was down, so the run is
            # left STARTED (run monitoring's max runtime fails it in production) or FAILURE.
            assert failed.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.FAILURE), failed.status
            assert not instance.get_latest_materialization_event(dg.AssetKey("prices"))

            assert _run_to_end(env, tmp_path / "rerun.log") == 0, tail(tmp_path / "rerun.log")
            rerun = instance.get_runs()[0]
            assert rerun.run_id != failed.run_id and rerun.status == dg.DagsterRunStatus.SUCCESS
            assert instance.get_latest_materialization_event(dg.AssetKey("prices")).run_id == rerun.run_id
            assert not [k for k in lake.list_keys("") if ".tmp-" in k]
            assert unreadable_visible_parquet(lake) == []
            rows = pq.read_table(lake.uri(layout.prices_key(HOSPITAL))).num_rows
            assert rows > 0 and _prices_via_reader_glob(lake.root) == rows
            raw_key = _raw_bytes_kept(lake, DATA_DIR / "files" / file_name)
            first_status = failed.status.value
            instance.dispose()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    print(f"PostgreSQL down {outage_seconds:.1f}s mid-run: run {first_status} (worker exit {code}); "
          f"rerun SUCCESS, {rows} price rows, {raw_key} kept; {time.monotonic() - started:.1f}s")


# --- (c) S3 errors --------------------------------------------------------------------------------

def test_s3_errors_fail_clearly_store_nothing_partial_and_recover(tmp_path, one_hospital_catalog, moto_s3):
    started = time.monotonic()
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_s3)
    s3.create_bucket(Bucket=bucket)
    upstream_port = int(moto_s3.rsplit(":", 1)[1])
    home = tmp_path / "home"
    with S3FaultProxy(upstream_port) as proxy:
        env = _env(
            tmp_path, one_hospital_catalog,
            PRICE_PIPELINE_LAKE_URL=f"s3://{bucket}/lake",
            PRICE_PIPELINE_S3_ENDPOINT_URL=proxy.endpoint,
            # botocore's own retries kept short so the run's RetryPolicy is what we observe
            AWS_RETRY_MODE="standard",
            AWS_MAX_ATTEMPTS="2",
        )
        prepare_dagster_home(home, production=False)
        register_hospitals(env, home, [HOSPITAL])
        lake = S3Lake(f"s3://{bucket}/lake", endpoint_url=moto_s3)  # the test reads S3 directly
        prices_key = layout.prices_key(HOSPITAL)
        proxy.fail_puts_matching = "/lake/prices/hospital_key"  # S3 answers 503 SlowDown to the prices upload
        log = tmp_path / "worker.log"
        worker = start(materialize_command(HOSPITAL), env, log)
        try:
            instance = dg.DagsterInstance.from_config(str(home))

            def prices_step_failed_once():
                runs = instance.get_runs()
                if not runs:
                    return None
                events = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
                return [e for e in events if e.step_key == "prices"]

            retried = wait_for(prices_step_failed_once, timeout=120, interval=0.5, what="the prices step to fail")
            # a clear, classified failure: transient (S3 throttling), so it is retried
            failure_data = retried[0].dagster_event.step_retry_data
            assert "SlowDown" in str(failure_data.error), failure_data.error
            assert proxy.failed, "no upload was refused"
            # nothing partial: the refused upload left no object, earlier steps' objects are whole
            assert not lake.exists(prices_key)
            assert unreadable_visible_parquet(lake) == []

            # S3 unreachable altogether when the step retries: it fails again, still nothing partial
            proxy.fail_puts_matching = None
            proxy.down = True
            wait_for(lambda: len(prices_step_failed_once()) >= 2, timeout=60, interval=0.5,
                       what="the retry to fail against unreachable S3")
            assert any("(down)" in f for f in proxy.failed), proxy.failed
            assert not lake.exists(prices_key)
            # S3 restored: the run's next retry (10 s back-off ±jitter) publishes the partition
            proxy.down = False
            code = worker.wait(timeout=120)
        finally:
            kill_group(worker)
        assert code == 0, tail(log)
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        instance.dispose()
    assert lake.exists(prices_key)
    with lake.local_copy(prices_key) as path:
        assert pq.read_table(path).num_rows > 100
    assert unreadable_visible_parquet(lake) == []
    print(f"S3 faults: {len(proxy.failed)} requests refused, run recovered; {time.monotonic() - started:.1f}s")


# --- (d) the daemon restarted while runs are queued ------------------------------------------------

def _daemon_home(tmp_path, grpc_port: int):
    """Embedded dagster.yaml, but one run at a time (so runs queue up), and a workspace that only
    talks to a separately started code server (the daemon owns no run worker)."""
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump(
        {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": grpc_port, "location_name": "ingestion"}}]}
    ))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.upgrade()
    return home, workspace


def test_daemon_killed_while_runs_are_queued_then_restarted_runs_them_all(tmp_path):
    started = time.monotonic()
    with DemoCatalogServer(host="127.0.0.1", port=0) as server:
        server.set_hospitals(server.hospitals()[:3])
        grpc_port = free_port()
        home, workspace = _daemon_home(tmp_path, grpc_port)
        # one run per hospital (no batched range runs), so that the catalog sensor forms a queue
        env = {**_env(tmp_path, server), "DAGSTER_HOME": str(home), "PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL": "2",
               "PRICE_PIPELINE_INGEST_BATCH_SIZE": "1"}
        dagster = str(PROJECT_ROOT / ".venv" / "bin" / "dagster")
        code_server = start([dagster, "api", "grpc", "-m", "price_pipeline.definitions", "-a", "ingestion",
                             "-h", "127.0.0.1", "-p", str(grpc_port), "--location-name", "ingestion"],
                            env, tmp_path / "code_server.log")
        daemon_cmd = [str(PROJECT_ROOT / ".venv" / "bin" / "dagster-daemon"), "run", "-w", str(workspace)]
        daemons = []
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            daemons.append(start(daemon_cmd, env, tmp_path / "daemon1.log"))

            # the catalog sensor queues 3 hospital runs + a catalog refresh; one runs, the rest wait
            def queue_formed():
                runs = instance.get_runs()
                queued = [r for r in runs if r.status == dg.DagsterRunStatus.QUEUED]
                return len(runs) >= 4 and len(queued) >= 2 and runs

            try:
                wait_for(queue_formed, timeout=120, interval=0.5, what="a queue of runs")
            except TimeoutError:
                pytest.fail(f"no queue formed; daemon log:\n{tail(tmp_path / 'daemon1.log')}\n"
                            f"code server:\n{tail(tmp_path / 'code_server.log')}")
            kill_group(daemons[0])  # kill -9 the daemon (its whole process group)
            assert daemons[0].returncode == -signal.SIGKILL

            # nothing dequeues without a daemon: queued runs stay queued
            queued_ids = {r.run_id for r in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))}
            time.sleep(4)
            still = {r.run_id for r in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))}
            assert queued_ids and still == queued_ids

            daemons.append(start(daemon_cmd, env, tmp_path / "daemon2.log"))

            def all_finished():
                runs = instance.get_runs()
                return all(r.is_finished for r in runs) and runs

            try:
                runs = wait_for(all_finished, timeout=180, interval=1, what="every queued run to finish")
            except TimeoutError:
                pytest.fail(f"queued runs not finished; daemon log:\n{tail(tmp_path / 'daemon2.log')}")
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [(r.job_name, r.status) for r in runs]
            assert queued_ids <= {r.run_id for r in runs}
            hospitals = {r.tags.get("dagster/partition") for r in runs if r.job_name == "ingest_hospital"}
            assert len(hospitals) == 3
            # max_concurrent_runs 1 held across the restart: no two runs overlapped
            records = sorted(instance.get_run_records(), key=lambda r: r.start_time)
            for before, after in zip(records, records[1:], strict=False):
                assert before.end_time <= after.start_time + 0.5, "runs overlapped"
        finally:
            instance.dispose()
            for daemon in daemons:
                kill_group(daemon, signal.SIGTERM)
                kill_group(daemon)
            kill_group(code_server, signal.SIGTERM)
            kill_group(code_server)
    print(f"daemon restart with {len(queued_ids)} queued runs: {len(runs)} runs succeeded; "
          f"{time.monotonic() - started:.1f}s")
