"""Every runtime setting of price_pipeline, read from the environment in one place.

The embedded default needs nothing installed: a project-local data folder holds the lake,
the SQLite registry and the DuckDB warehouse. Production is selected by configuration only:
point ``PRICE_PIPELINE_LAKE_URL`` at ``s3://bucket/prefix`` (plus ``PRICE_PIPELINE_S3_ENDPOINT_URL``
for MinIO) and ``PRICE_PIPELINE_REGISTRY_URL`` at a ``postgresql://`` URL. The README documents
each variable; this module has no Dagster imports so the CLI and benchmarks share it.

This is the only module that reads the process environment. Values a tick or a call must see
fresh (an operator's change without a code-location reload) are read where they are used by
building ``Settings.from_env()`` there; :func:`environ` hands a read-only view to the parsers of
a whole family of variables (``AlertConfig.from_env``), and :func:`child_environment` builds the
environment of a child process (dbt, ``dagster dev``) without changing this process's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEMO_CATALOG_URL = "http://127.0.0.1:8765/api/v1/hospitals"


def environ() -> Mapping[str, str]:
    """The process environment, read-only."""
    return MappingProxyType(os.environ)


def child_environment(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a child process: this process's, with ``overrides`` set (``None``
    removes a variable). This process's own environment is left as it is."""
    env = dict(os.environ)
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


@contextlib.contextmanager
def scoped_environ(name: str, value: str):
    """Set one variable of this process for the duration of a block, then restore it. Only for a
    single-threaded start-up step that a library reads from the environment (the run command's
    instance migration, launch.py); never while runs or threads are active."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def become_environment(environment: Mapping[str, str]) -> None:
    """Make ``environment`` this process's whole environment. Only for a launcher that becomes
    the program it launches (price-pipeline-dbt running a Spark build in its own process)."""
    os.environ.clear()
    os.environ.update(environment)


def dbt_target(env: Mapping[str, str] | None = None) -> str:
    """The dbt target named by PRICE_PIPELINE_DBT_TARGET (``embedded`` when unset)."""
    return _read("PRICE_PIPELINE_DBT_TARGET", "embedded", env) or "embedded"


@dataclass(frozen=True)
class SparkSettings:
    """The Spark session of the dbt ``spark`` target (docs/analytics.md, "Spark";
    price_pipeline/lib/analytics/spark_dbt.py)."""

    master: str = "local[2]"  # PRICE_PIPELINE_SPARK_MASTER: local[N], yarn, k8s://..., spark://...
    remote: str | None = None  # PRICE_PIPELINE_SPARK_REMOTE: a Spark Connect URL instead of a master
    warehouse: str | None = None  # PRICE_PIPELINE_SPARK_WAREHOUSE: spark.sql.warehouse.dir
    driver_memory: str = "1g"  # PRICE_PIPELINE_SPARK_DRIVER_MEMORY
    conf: Mapping[str, str] = field(default_factory=dict)  # PRICE_PIPELINE_SPARK_CONF: k=v;k=v
    log_level: str = "OFF"  # PRICE_PIPELINE_SPARK_LOG_LEVEL
    s3_endpoint_url: str | None = None  # PRICE_PIPELINE_S3_ENDPOINT_URL (the lake listing)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SparkSettings:
        pairs = [p.strip() for p in (_read("PRICE_PIPELINE_SPARK_CONF", "", env) or "").split(";") if p.strip()]
        return cls(
            master=_read("PRICE_PIPELINE_SPARK_MASTER", "local[2]", env),
            remote=_read("PRICE_PIPELINE_SPARK_REMOTE", None, env),
            warehouse=_read("PRICE_PIPELINE_SPARK_WAREHOUSE", None, env),
            driver_memory=_read("PRICE_PIPELINE_SPARK_DRIVER_MEMORY", "1g", env),
            conf=dict(p.split("=", 1) for p in pairs),
            log_level=_read("PRICE_PIPELINE_SPARK_LOG_LEVEL", "OFF", env),
            s3_endpoint_url=_read("PRICE_PIPELINE_S3_ENDPOINT_URL", None, env),
        )


def _read(name: str, default: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    return value if value not in (None, "") else default


def followup_sensor_interval(env: Mapping[str, str] | None = None) -> int:
    """Seconds between ticks of the follow-up sensors (PRICE_PIPELINE_FOLLOWUP_SENSOR_INTERVAL,
    default 15; see price_pipeline.lib.ops.staleness). Read once, when the sensors are defined."""
    return max(1, int(_read("PRICE_PIPELINE_FOLLOWUP_SENSOR_INTERVAL", "15", env) or "15"))


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with :meth:`from_env`; tests build it directly."""

    data_dir: Path
    lake_url: str
    registry_url: str
    warehouse_path: Path
    catalog_url: str
    s3_endpoint_url: str | None = None
    # host or host:port entries allowed even when they resolve to loopback/private addresses
    # (the bundled demo and tests); everything else must be a public address.
    allowed_private_hosts: tuple[str, ...] = ()
    max_download_bytes: int = 20 * 1024**3
    # Decompressed/compressed ratio above which an archive is treated as a bomb.
    max_decompression_ratio: int = 200
    http_timeout_seconds: float = 60.0
    # Overall limits on top of the per-read timeout (lib/fetch/http/budget.py): one download attempt
    # (redirects, headers and body), and one small request (catalog page, session, cms-hpt.txt,
    # change probe) with its redirects. A download is also ended when it receives fewer than
    # download_min_bytes_per_second on average over a window of http_timeout_seconds (0 = off).
    download_deadline_seconds: float = 4 * 3600.0
    request_deadline_seconds: float = 120.0
    download_min_bytes_per_second: float = 1024.0
    user_agent: str = "price_pipeline/0.1 (+https://github.com/price-pipeline)"
    dbt_target: str = "embedded"
    # -- discovery and change detection (docs/discovery.md) --------------------------------------
    # comma-separated discovery sources, in precedence order: catalog_api, cms_hpt, overrides
    discovery_sources: tuple[str, ...] = ("catalog_api", "cms_hpt", "overrides")
    # two-letter states queried one by one (empty: one national query)
    catalog_states: tuple[str, ...] = ()
    # POST endpoint that issues a catalog session token (empty: the catalog needs no session)
    catalog_session_url: str | None = None
    catalog_api_key: str | None = field(default=None, repr=False)
    overrides_path: str | None = None
    cms_hpt_recheck_hours: float = 24.0
    cms_hpt_max_sites_per_tick: int = 1000
    discovery_workers: int = 16
    max_catalog_drop_fraction: float = 0.5
    # client-side per-host limits of the downloader and probes (one process)
    host_max_concurrency: int = 4
    host_max_requests_per_second: float = 10.0
    change_sweep_max_files: int = 2000
    # -- CMS conformance (docs/quality.md "Which rules are applied") ------------------------------
    # major (as the official CLI: latest rules of the declared major) | declared | in-force
    cms_rules: str = "major"
    # YYYY-MM-DD for cms_rules=in-force (empty: the day of the run)
    cms_rules_as_of: str | None = None
    # A current file of at least this many bytes is validated in a child process beside the run's
    # parse (lib/quality/background.py; 0 turns it off), whose result the conformance step waits
    # for at most conformance_background_timeout_seconds before validating inline.
    conformance_background_min_bytes: int = 64 * 2**20
    conformance_background_timeout_seconds: float = 3600.0
    # -- table-wide quality (docs/quality.md) ---------------------------------------------------
    # dollar amount above which the extreme_amounts check flags a price
    extreme_amount_ceiling: float = 10_000_000.0
    # -- operations (docs/operations.md) ------------------------------------------------------------
    # the analytics build, the quality outputs and the expectations suite run at the latest this
    # long after the first prices change they have not seen, even while ingestion never settles
    analytics_max_wait_minutes: float = 30.0
    # hospital keys whose runs are dequeued first (lib/ops/tags.py)
    priority_hospitals: tuple[str, ...] = ()
    # Hospitals per batched ingestion run (defs/ingestion/batching.py). Big enough that the run's
    # fixed cost (~3-5 s) is small next to its work, small enough that a failed batch's re-run
    # (every hospital on its own) and a slow hospital's wait for its batch stay cheap. 1 turns
    # batching off.
    ingest_batch_size: int = 25
    catalog_sensor_interval_seconds: int = 30
    change_sensor_interval_seconds: int = 600
    alert_sensor_interval_seconds: int = 120
    threshold_sensor_interval_seconds: int = 600
    # lowest failed-check severity alerted: warning (every failed check) or error
    alert_check_severity: str = "warning"
    alert_max_internal_failure_rate: float = 0.01
    alert_max_mean_ingestion_seconds: float = 30.0
    # the web UI's public address, for links in alerts (empty: no links)
    ui_url: str = ""
    # -- the run command and the operator CLI (launch.py, cli/) ----------------------------------
    mode: str = "embedded"
    dagster_home: str | None = None
    dagster_url: str = "http://127.0.0.1:3000"
    demo_port: int = 8765
    ui_host: str = "127.0.0.1"
    ui_port: str = "3000"
    # whether PRICE_PIPELINE_CATALOG_URL was given (make run serves the demo catalog otherwise)
    catalog_url_configured: bool = False
    extras: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cms_rules not in ("major", "declared", "in-force"):
            raise ValueError(f"PRICE_PIPELINE_CMS_RULES must be major, declared or in-force, not {self.cms_rules!r}")
        if self.cms_rules_as_of:
            import datetime as dt

            try:
                dt.date.fromisoformat(self.cms_rules_as_of)
            except ValueError as e:
                raise ValueError(f"PRICE_PIPELINE_CMS_RULES_AS_OF is not a YYYY-MM-DD date: {self.cms_rules_as_of!r}"
                                 ) from e

    @property
    def is_s3_lake(self) -> bool:
        return self.lake_url.startswith("s3://")

    def archive_limits(self) -> dict[str, float]:
        """The caps on a zip/gzip payload, as keyword arguments of ``parse_to_parquet`` and
        ``validate_file``: decompressed bytes (``max_download_bytes``, the cap the download also
        applies to a decoded body) and ``max_decompression_ratio``."""
        return {"max_decompressed_bytes": self.max_download_bytes, "max_ratio": float(self.max_decompression_ratio)}

    @staticmethod
    def secrets_from_env(env: Mapping[str, str] | None = None) -> dict[str, str | None]:
        """Credentials, read where they are used: never carried in resource config (the UI shows
        config) or in logs."""
        return {"catalog_api_key": _read("PRICE_PIPELINE_CATALOG_API_KEY", None, env)}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every setting from ``env`` (default: the process environment)."""

        def _env(name: str, default: str | None = None) -> str | None:
            return _read(name, default, env)

        data_dir = Path(_env("PRICE_PIPELINE_DATA_DIR", str(PROJECT_ROOT / ".data"))).resolve()
        lake_url = _env("PRICE_PIPELINE_LAKE_URL", str(data_dir / "lake"))
        return cls(
            data_dir=data_dir,
            lake_url=lake_url,
            registry_url=_env("PRICE_PIPELINE_REGISTRY_URL", f"sqlite:///{data_dir / 'registry.sqlite'}"),
            warehouse_path=Path(_env("PRICE_PIPELINE_WAREHOUSE_PATH", str(data_dir / "warehouse.duckdb"))),
            catalog_url=_env("PRICE_PIPELINE_CATALOG_URL", DEFAULT_DEMO_CATALOG_URL),
            s3_endpoint_url=_env("PRICE_PIPELINE_S3_ENDPOINT_URL"),
            allowed_private_hosts=_csv(_env("PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS")),
            max_download_bytes=int(_env("PRICE_PIPELINE_MAX_DOWNLOAD_BYTES", str(20 * 1024**3))),
            max_decompression_ratio=int(_env("PRICE_PIPELINE_MAX_DECOMPRESSION_RATIO", "200")),
            http_timeout_seconds=float(_env("PRICE_PIPELINE_HTTP_TIMEOUT_SECONDS", "60")),
            download_deadline_seconds=float(_env("PRICE_PIPELINE_DOWNLOAD_DEADLINE_SECONDS", "14400")),
            request_deadline_seconds=float(_env("PRICE_PIPELINE_REQUEST_DEADLINE_SECONDS", "120")),
            download_min_bytes_per_second=float(_env("PRICE_PIPELINE_DOWNLOAD_MIN_BYTES_PER_SECOND", "1024")),
            dbt_target=_env("PRICE_PIPELINE_DBT_TARGET",
                            "production" if (lake_url or "").startswith("s3://") else "embedded"),
            discovery_sources=_csv(_env("PRICE_PIPELINE_DISCOVERY_SOURCES", "catalog_api,cms_hpt,overrides")),
            catalog_states=tuple(s.upper() for s in _csv(_env("PRICE_PIPELINE_CATALOG_STATES"))),
            catalog_session_url=_env("PRICE_PIPELINE_CATALOG_SESSION_URL"),
            overrides_path=_env("PRICE_PIPELINE_DISCOVERY_OVERRIDES"),
            cms_hpt_recheck_hours=float(_env("PRICE_PIPELINE_CMS_HPT_RECHECK_HOURS", "24")),
            cms_hpt_max_sites_per_tick=int(_env("PRICE_PIPELINE_CMS_HPT_MAX_SITES_PER_TICK", "1000")),
            discovery_workers=int(_env("PRICE_PIPELINE_DISCOVERY_WORKERS", "16")),
            max_catalog_drop_fraction=float(_env("PRICE_PIPELINE_MAX_CATALOG_DROP_FRACTION", "0.5")),
            host_max_concurrency=int(_env("PRICE_PIPELINE_HOST_MAX_CONCURRENCY", "4")),
            host_max_requests_per_second=float(_env("PRICE_PIPELINE_HOST_MAX_RPS", "10")),
            change_sweep_max_files=int(_env("PRICE_PIPELINE_CHANGE_SWEEP_MAX_FILES", "2000")),
            extreme_amount_ceiling=float(_env("PRICE_PIPELINE_EXTREME_AMOUNT_CEILING", "10000000")),
            cms_rules=_env("PRICE_PIPELINE_CMS_RULES", "major"),
            cms_rules_as_of=_env("PRICE_PIPELINE_CMS_RULES_AS_OF"),
            conformance_background_min_bytes=int(_env("PRICE_PIPELINE_CONFORMANCE_BACKGROUND_MIN_BYTES",
                                                      str(64 * 2**20))),
            conformance_background_timeout_seconds=float(
                _env("PRICE_PIPELINE_CONFORMANCE_BACKGROUND_TIMEOUT_SECONDS", "3600")),
            analytics_max_wait_minutes=float(_env("PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES", "30")),
            priority_hospitals=_csv(_env("PRICE_PIPELINE_PRIORITY_HOSPITALS")),
            ingest_batch_size=int(_env("PRICE_PIPELINE_INGEST_BATCH_SIZE", "25")),
            catalog_sensor_interval_seconds=int(_env("PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL", "30")),
            change_sensor_interval_seconds=int(_env("PRICE_PIPELINE_CHANGE_SENSOR_INTERVAL", "600")),
            alert_sensor_interval_seconds=int(_env("PRICE_PIPELINE_ALERT_SENSOR_INTERVAL", "120")),
            threshold_sensor_interval_seconds=int(_env("PRICE_PIPELINE_THRESHOLD_SENSOR_INTERVAL", "600")),
            alert_check_severity=_env("PRICE_PIPELINE_ALERT_CHECK_SEVERITY", "warning").lower(),
            alert_max_internal_failure_rate=float(_env("PRICE_PIPELINE_ALERT_MAX_INTERNAL_FAILURE_RATE", "0.01")),
            alert_max_mean_ingestion_seconds=float(_env("PRICE_PIPELINE_ALERT_MAX_MEAN_INGESTION_SECONDS", "30")),
            ui_url=_env("PRICE_PIPELINE_UI_URL", ""),
            mode=_env("PRICE_PIPELINE_MODE", "embedded"),
            dagster_home=_env("DAGSTER_HOME"),
            dagster_url=_env("PRICE_PIPELINE_DAGSTER_URL", "http://127.0.0.1:3000"),
            demo_port=int(_env("PRICE_PIPELINE_DEMO_PORT", "8765")),
            ui_host=_env("PRICE_PIPELINE_UI_HOST", "127.0.0.1"),
            ui_port=_env("PRICE_PIPELINE_UI_PORT", "3000"),
            catalog_url_configured=_env("PRICE_PIPELINE_CATALOG_URL") is not None,
            **cls.secrets_from_env(env),
        )
