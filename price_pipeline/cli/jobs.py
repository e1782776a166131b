"""``price-pipeline`` job control: thin wrappers over Dagster's own APIs.

Reads (``runs``, ``failed-hospitals``) and partition changes (``add-hospitals``) use the Dagster
instance of ``$DAGSTER_HOME`` (the same storage the web UI and the daemon use: SQLite or
PostgreSQL). Everything that launches or stops work (``launch``, ``backfill``, ``reexecute``,
``cancel``, ``retry-failed``) goes through the running webserver's GraphQL API (``--url``,
default ``http://127.0.0.1:3000``), so runs are queued, prioritised and limited exactly like the
ones started from the UI or by sensors. Nothing here re-implements Dagster.

Exit status: 0 on success, 1 when Dagster refused the request, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from price_pipeline.cli.registry import CliError, command
from price_pipeline.lib.ops.tags import (
    BACKFILL_TAG,
    BULK_ID_TAG,
    BULK_TITLE_TAG,
    FULL_REFRESH_TAG,
    HOST_TAG,
    LAYER_TAG,
    PARTITION_TAG,
    PRIORITY_BULK,
    PRIORITY_TAG,
    TRIGGER_TAG,
    bulk_run_tags,
    hospital_host,
    hospital_run_tags,
    registry_hospital_urls,
)
from price_pipeline.settings import Settings

RUN_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "SUCCESS", "FAILURE", "CANCELING", "CANCELED")
# The code locations of workspace.yaml (a test keeps them equal).
INGESTION_LOCATION = "ingestion"
ANALYTICS_LOCATION = "analytics"


def ingestion_job() -> tuple[str, tuple[str, ...]]:
    """The per-hospital ingestion job's name and its assets, from the definitions (imported when
    a command needs them, so building the parser stays cheap)."""
    from price_pipeline.defs.ingestion.jobs import INGESTION_ASSETS, ingest_hospital_job

    return ingest_hospital_job.name, tuple(k.to_user_string() for k in INGESTION_ASSETS)


def _partitions_name() -> str:
    from price_pipeline.defs.partitions import hospital_partitions

    return hospital_partitions.name


def _implicit_asset_job() -> str:
    from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

    return IMPLICIT_ASSET_JOB_NAME


def _add_url_arg(p: argparse.ArgumentParser) -> None:
    url = Settings.from_env().dagster_url
    p.add_argument("--url", default=url, help=f"Dagster webserver (default {url}, PRICE_PIPELINE_DAGSTER_URL)")


# ---------------------------------------------------------------------------- helpers


def _instance():
    import dagster as dg

    if not Settings.from_env().dagster_home:
        raise CliError("DAGSTER_HOME is not set: point it at the instance folder (make run uses ./.dagster_home)")
    return dg.DagsterInstance.get()


def graphql(url: str, query: str, variables: dict | None = None, *, timeout: float = 60.0) -> dict:
    """POST one GraphQL request to the webserver and return its ``data``."""
    import httpx

    from price_pipeline.lib.fetch.http.client import safe_client
    from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError

    endpoint = f"{url.rstrip('/')}/graphql"
    try:
        # The webserver is the operator's own (usually on localhost): trusted by host:port.
        with safe_client(trusted_urls=[endpoint], timeout=timeout, pool=1) as client:
            response = client.post(endpoint, json={"query": query, "variables": variables or {}})
    except (httpx.HTTPError, UnsafeUrlError) as exc:
        raise CliError(f"cannot reach the Dagster webserver at {url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise CliError(f"GraphQL request failed: HTTP {response.status_code}: {response.text[:300]}")
    body = response.json()
    if body.get("errors"):
        raise CliError("GraphQL errors: " + "; ".join(e.get("message", "") for e in body["errors"]))
    return body["data"]


def graphql_client(url: str):
    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(url)
    return DagsterGraphQLClient(
        parts.hostname or "127.0.0.1",
        port_number=parts.port,
        use_https=parts.scheme == "https",
        path_prefix=parts.path.rstrip("/"),
    )


def _read_keys(path: str) -> list[str]:
    stream = sys.stdin if path == "-" else open(path)  # noqa: SIM115 - closed below unless stdin
    try:
        return [line.split("#", 1)[0].strip() for line in stream if line.split("#", 1)[0].strip()]
    finally:
        if stream is not sys.stdin:
            stream.close()


def _add_hospital_args(p: argparse.ArgumentParser, *, allow_all: bool = True) -> None:
    p.add_argument("--hospital", "-H", action="append", default=[], metavar="KEY",
                   help="hospital partition key (repeatable; comma-separated lists accepted)")
    p.add_argument("--hospitals-from", metavar="FILE", help="file with one hospital key a line ('-' = stdin)")
    p.add_argument("--range", dest="key_range", metavar="FIRST..LAST",
                   help="every hospital from FIRST to LAST in partition order (as in the UI)")
    if allow_all:
        p.add_argument("--all", action="store_true", help="every hospital partition")


def resolve_hospitals(args: argparse.Namespace, existing: list[str]) -> list[str]:
    """The hospital keys named by --hospital/--hospitals-from/--range/--all, in partition order,
    each once; unknown keys are an error (add them with ``add-hospitals`` first)."""
    wanted: list[str] = []
    for item in args.hospital:
        wanted += [k.strip() for k in item.split(",") if k.strip()]
    if getattr(args, "hospitals_from", None):
        wanted += _read_keys(args.hospitals_from)
    if getattr(args, "key_range", None):
        first, sep, last = args.key_range.partition("..")
        if not sep or first not in existing or last not in existing:
            raise CliError(f"--range {args.key_range!r}: both ends must be existing hospital keys (FIRST..LAST)")
        i, j = existing.index(first), existing.index(last)
        wanted += existing[min(i, j): max(i, j) + 1]
    if getattr(args, "all", False):
        wanted += existing
    unknown = sorted(set(wanted) - set(existing))
    if unknown:
        raise CliError(f"unknown hospital partitions: {', '.join(unknown[:20])} (add them with add-hospitals)")
    order = {k: i for i, k in enumerate(existing)}
    return sorted(set(wanted), key=order.__getitem__)


def _asset_keys(assets: str) -> list[str]:
    return [a.strip() for a in assets.split(",") if a.strip()]


def _parse_tags(items: Iterable[str]) -> dict[str, str]:
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--tag {item!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


def _parse_time(value: str | None) -> datetime | None:
    """ISO-8601 (``2025-01-31``, ``2025-01-31T12:00``) or relative (``90m``, ``24h``, ``7d``)."""
    if not value:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: float(value[:-1])})
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print(rows: list[dict], columns: list[str], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str), flush=True)
        return
    if not rows:
        print("(none)")
        return
    widths = {c: min(60, max(len(c), *(len(str(r.get(c, "") or "")) for r in rows))) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "") or "")[: widths[c]].ljust(widths[c]) for c in columns))


def _fmt_ts(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else None


def _hospital_urls(keys: list[str]) -> dict[str, list[str]]:
    """File URLs per hospital from the registry's reconciled catalog (the list the catalog sensor
    tags its runs from), so the host tag follows the same rule (lib/ops/tags.hospital_host)."""
    try:
        from price_pipeline.lib.registry import Registry
        from price_pipeline.settings import Settings

        registry = Registry(Settings.from_env().registry_url)
        try:
            urls = registry_hospital_urls(registry)
        finally:
            registry.dispose()
    except Exception as exc:  # the registry is optional for launching; the host tag is then "none"
        print(f"price-pipeline: registry not readable ({type(exc).__name__}); host tags are 'none'", file=sys.stderr)
        return {}
    wanted = set(keys)
    return {k: v for k, v in urls.items() if k in wanted}


WORKSPACE_JOBS = """
query WorkspaceJobs {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name jobs { name } } }
        }
      }
    }
  }
}
"""


def job_location(url: str, job: str) -> str:
    """The code location that defines ``job`` (asked of the webserver; an error when none or
    several do, naming them)."""
    data = graphql(url, WORKSPACE_JOBS)["workspaceOrError"]
    if data.get("__typename") != "Workspace":
        raise CliError(f"cannot read the workspace: {data.get('__typename')}")
    found = []
    for entry in data["locationEntries"]:
        location = entry.get("locationOrLoadError") or {}
        for repository in location.get("repositories", []) if location.get("__typename") == "RepositoryLocation" else []:
            if any(j["name"] == job for j in repository["jobs"]):
                found.append(entry["name"])
    if len(found) != 1:
        raise CliError(f"job {job!r} is defined in {len(found)} code locations ({', '.join(found) or 'none'}): "
                       "name one with --location")
    return found[0]


# ---------------------------------------------------------------------------- add-hospitals


def _setup_add(p: argparse.ArgumentParser) -> None:
    p.add_argument("keys", nargs="*", help="hospital partition keys ([a-z0-9_-], at most 64 characters)")
    p.add_argument("--hospitals-from", metavar="FILE", help="file with one key a line ('-' = stdin)")


@command("add-hospitals", help="add hospital partitions (Dagster instance)", setup=_setup_add)
def _run_add(args: argparse.Namespace) -> int:
    from price_pipeline.lib.discovery import VALID_KEY

    keys = list(args.keys) + (_read_keys(args.hospitals_from) if args.hospitals_from else [])
    bad = [k for k in keys if not VALID_KEY.match(k)]
    if bad or not keys:
        raise CliError(f"invalid or missing hospital keys: {bad[:10]}")
    with _instance() as instance:
        existing = set(instance.get_dynamic_partitions(_partitions_name()))
        new = [k for k in dict.fromkeys(keys) if k not in existing]
        if new:
            instance.add_dynamic_partitions(_partitions_name(), new)
    print(json.dumps({"added": new, "already_present": sorted(set(keys) & existing)}))
    return 0


# ---------------------------------------------------------------------------- launch


def _setup_launch(p: argparse.ArgumentParser) -> None:
    _add_hospital_args(p)
    p.add_argument("--assets", default=None,
                   help="comma-separated asset keys (default: with --job, the job's own selection; "
                   "without, the ingestion job's assets)")
    p.add_argument("--job", default=None, help="job to run (default the ingestion job, ingest_hospital, for "
                   "hospital assets, else the implicit asset job)")
    p.add_argument("--location", default=None,
                   help="code location (default: the one defining --job, asked of the webserver; ingestion "
                   "for hospital assets)")
    p.add_argument("--priority", type=int, default=None, help="dagster/priority tag (higher runs first)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="extra run tag (repeatable)")
    p.add_argument("--full-refresh", action="store_true",
                   help=f"with --job build_analytics: rebuild every per-hospital dbt table from scratch "
                   f"(tag {FULL_REFRESH_TAG}=true; default: only the hospitals whose versions changed)")
    _add_url_arg(p)


@command("launch", help="launch one run per hospital for an asset selection (GraphQL)", setup=_setup_launch)
def _run_launch(args: argparse.Namespace) -> int:
    from dagster_graphql import DagsterGraphQLClientError

    ingest_job, ingestion_assets = ingestion_job()
    # --job alone runs that job's own selection; assets alone default to the hospital's ingestion
    assets = _asset_keys(args.assets) if args.assets is not None else ([] if args.job else list(ingestion_assets))
    with _instance() as instance:
        hospitals = resolve_hospitals(args, instance.get_dynamic_partitions(_partitions_name()))
    if any(a in ingestion_assets for a in assets) and not hospitals:
        raise CliError("hospital assets need --hospital, --hospitals-from, --range or --all")
    ingestion = (not args.job and set(assets) <= set(ingestion_assets)) or args.job == ingest_job
    job = args.job or (ingest_job if ingestion else _implicit_asset_job())
    if args.location:
        location = args.location
    elif job == _implicit_asset_job():
        location = INGESTION_LOCATION if hospitals else ANALYTICS_LOCATION
    else:
        location = job_location(args.url, job)
    extra = _parse_tags(args.tag)
    if args.full_refresh:
        extra[FULL_REFRESH_TAG] = "true"
    client = graphql_client(args.url)
    urls = _hospital_urls(hospitals) if hospitals else {}
    launched = []
    for key in hospitals or [None]:
        tags = {}
        if key is not None:
            tags.update({PARTITION_TAG: key, **hospital_run_tags(key, urls.get(key, []), trigger="cli",
                                                                  priority=args.priority)})
            if not ingestion:  # the job's own layer tag stands (e.g. quality for the GX suite)
                tags.pop(LAYER_TAG)
        else:
            tags[TRIGGER_TAG] = "cli"
            if args.priority is not None:
                tags[PRIORITY_TAG] = str(args.priority)
        tags.update(extra)
        try:
            run_id = client.submit_job_execution(
                job, repository_location_name=location, repository_name="__repository__", tags=tags,
                asset_selection=assets or None,
            )
        except DagsterGraphQLClientError as exc:
            raise CliError(f"launch refused for {key or job}: {exc}") from exc
        launched.append({"run_id": run_id, "hospital": key, "job": job, "location": location})
        print(json.dumps(launched[-1]), flush=True)
    return 0


# ---------------------------------------------------------------------------- backfill

def launch_bulk(
    url: str, assets: list[str], hospitals: list[str], *, trigger: str, priority: int, title: str,
    extra_tags: dict[str, str] | None = None,
) -> dict:
    """Bulk work (``backfill``, ``retry-failed``) as one queued run per hospital, each with every
    tag the queue limits key on: partition, hospital, host (lib/ops/tags.hospital_host), layer,
    trigger, ``price_pipeline/bulk=true`` and the bulk priority, plus a ``price_pipeline/bulk_id``
    shared by the runs of one call. (A Dagster partition backfill gives every run the same tags
    and tags its runs with a partition *range*, so neither the per-hospital nor the per-host limit
    would apply to them.)"""
    import uuid

    from dagster_graphql import DagsterGraphQLClientError

    bulk_id = uuid.uuid4().hex[:12]
    ingest_job, ingestion_assets = ingestion_job()
    job = ingest_job if set(assets) <= set(ingestion_assets) else _implicit_asset_job()
    client = graphql_client(url)
    urls = _hospital_urls(hospitals)
    runs = []
    for key in hospitals:
        tags = {
            PARTITION_TAG: key,
            **hospital_run_tags(key, urls.get(key, []), trigger=trigger),
            **bulk_run_tags(hospital_host(urls.get(key, [])), trigger=trigger, priority=priority),
            BULK_ID_TAG: bulk_id,
            BULK_TITLE_TAG: title[:200],
            **(extra_tags or {}),
        }
        try:
            run_id = client.submit_job_execution(job, repository_location_name=INGESTION_LOCATION,
                                                 repository_name="__repository__", tags=tags, asset_selection=assets)
        except DagsterGraphQLClientError as exc:
            raise CliError(f"launch refused for {key} (bulk {bulk_id}, {len(runs)} launched): {exc}") from exc
        runs.append({"run_id": run_id, "hospital": key, "host": tags[HOST_TAG]})
    return {"bulk_id": bulk_id, "trigger": trigger, "assets": assets, "runs": runs}


def _setup_backfill(p: argparse.ArgumentParser) -> None:
    _add_hospital_args(p)
    p.add_argument("--assets", default=None, help="comma-separated asset keys (default: the ingestion job's assets)")
    p.add_argument("--priority", type=int, default=PRIORITY_BULK,
                   help=f"dagster/priority of the backfill's runs (default {PRIORITY_BULK}: behind fresh work)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="extra run tag (repeatable)")
    p.add_argument("--title", default=None, help="title, kept in the runs' price_pipeline/bulk_title tag")
    _add_url_arg(p)


@command("backfill", help="launch bulk work for a list/range of hospitals: one bulk-tagged run each (GraphQL)",
         setup=_setup_backfill)
def _run_backfill(args: argparse.Namespace) -> int:
    with _instance() as instance:
        hospitals = resolve_hospitals(args, instance.get_dynamic_partitions(_partitions_name()))
    if not hospitals:
        raise CliError("no hospitals selected (--hospital, --hospitals-from, --range or --all)")
    assets = _asset_keys(args.assets) if args.assets is not None else list(ingestion_job()[1])
    launched = launch_bulk(args.url, assets, hospitals, trigger="cli-backfill",
                           priority=args.priority, title=args.title or f"{len(hospitals)} hospitals from the CLI",
                           extra_tags=_parse_tags(args.tag))
    print(json.dumps(launched))
    return 0


# ---------------------------------------------------------------------------- reexecute / cancel

REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on Error { message }
  }
}
"""


def _setup_reexecute(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_ids", nargs="+", help="failed run ids")
    p.add_argument("--all-steps", action="store_true", help="re-run every step instead of from failure")
    _add_url_arg(p)


@command("reexecute", help="re-execute failed runs from failure (GraphQL)",
         setup=_setup_reexecute)
def _run_reexecute(args: argparse.Namespace) -> int:
    status = 0
    for run_id in args.run_ids:
        strategy = "ALL_STEPS" if args.all_steps else "FROM_FAILURE"
        data = graphql(args.url, REEXECUTE, {"params": {"parentRunId": run_id, "strategy": strategy}})
        result = data["launchRunReexecution"]
        if result["__typename"] == "LaunchRunSuccess":
            print(json.dumps({"parent_run_id": run_id, "run_id": result["run"]["runId"], "strategy": strategy}))
        else:
            print(f"{run_id}: {result['__typename']}: {result.get('message', '')}", file=sys.stderr)
            status = 1
    return status


def _setup_cancel(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_ids", nargs="+", help="queued or running run ids")
    _add_url_arg(p)


@command("cancel", help="cancel queued or running runs (GraphQL)",
         setup=_setup_cancel)
def _run_cancel(args: argparse.Namespace) -> int:
    from dagster_graphql import DagsterGraphQLClientError

    client = graphql_client(args.url)
    status = 0
    for run_id in args.run_ids:
        try:
            client.terminate_run(run_id)
            print(json.dumps({"run_id": run_id, "canceled": True}))
        except DagsterGraphQLClientError as exc:
            print(f"{run_id}: {exc}", file=sys.stderr)
            status = 1
    return status


# ---------------------------------------------------------------------------- runs


def _setup_runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="append", default=[], choices=RUN_STATUSES, type=str.upper,
                   help="run status (repeatable)")
    p.add_argument("--hospital", "-H", default=None, help="hospital partition key")
    p.add_argument("--asset", default=None, help="only runs that selected this asset")
    p.add_argument("--job", default=None, help="job name")
    p.add_argument("--since", default=None, help="created after: ISO date/time or 90m, 24h, 7d")
    p.add_argument("--until", default=None, help="created before: ISO date/time or 90m, 24h, 7d")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="run tag (repeatable)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="one JSON object a line")


def list_runs(instance, args: argparse.Namespace) -> list[dict]:
    import dagster as dg

    tags = _parse_tags(args.tag)
    if args.hospital:
        tags[PARTITION_TAG] = args.hospital
    filters = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus(s) for s in args.status] or None,
        job_name=args.job,
        tags=tags or None,
        created_after=_parse_time(args.since),
        created_before=_parse_time(args.until),
    )
    rows, cursor = [], None
    while len(rows) < args.limit:
        records = instance.get_run_records(filters, limit=max(args.limit, 100), cursor=cursor)
        for r in records:
            run = r.dagster_run
            assets = sorted(k.to_user_string() for k in (run.asset_selection or []))
            if args.asset and args.asset not in assets:
                continue
            duration = (r.end_time - r.start_time) if r.end_time and r.start_time else None
            rows.append({
                "run_id": run.run_id, "status": run.status.value, "job": run.job_name,
                "hospital": run.tags.get(PARTITION_TAG), "priority": run.tags.get(PRIORITY_TAG),
                "created": r.create_timestamp.strftime("%Y-%m-%d %H:%M:%S"), "started": _fmt_ts(r.start_time),
                "ended": _fmt_ts(r.end_time), "duration_s": round(duration, 1) if duration is not None else None,
                "assets": ",".join(assets), "backfill": run.tags.get(BACKFILL_TAG),
            })
            if len(rows) >= args.limit:
                break
        if len(records) < max(args.limit, 100):
            break
        cursor = records[-1].dagster_run.run_id
    return rows


@command("runs", help="list runs by status, hospital, asset, job and time (instance)",
         setup=_setup_runs)
def _run_runs(args: argparse.Namespace) -> int:
    with _instance() as instance:
        rows = list_runs(instance, args)
    _print(rows, ["run_id", "status", "job", "hospital", "priority", "created", "duration_s", "assets"], args.json)
    return 0


# ---------------------------------------------------------------------------- failed-hospitals / retry-failed


FAILURE_KINDS = ("internal", "external", "canceled")


def _setup_failed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=FAILURE_KINDS, default=None, help="only failures of this kind")
    p.add_argument("--json", action="store_true", help="one JSON object a line")


@command("failed-hospitals", help="hospital assets and blocking checks whose last attempt failed (the dead-letter queue)",
         setup=_setup_failed)
def _run_failed(args: argparse.Namespace) -> int:
    from price_pipeline.defs.ops.failed import failed_items

    with _instance() as instance:
        rows = [f.as_dict() for f in failed_items(instance, kind=args.kind)]
    for row in rows:
        row["first_failed_at"] = _fmt_ts(row["first_failed_at"])
        row["latest_failed_at"] = _fmt_ts(row["latest_failed_at"])
    _print(rows, ["hospital_key", "asset", "check", "failure_kind", "first_failed_at", "latest_failed_at",
                  "attempts", "run_id", "reason"], args.json)
    return 0


def _setup_retry_failed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=FAILURE_KINDS, default=None, help="only failures of this kind")
    p.add_argument("--hospital", "-H", action="append", default=[], help="only these hospitals (repeatable)")
    p.add_argument("--priority", type=int, default=PRIORITY_BULK, help="dagster/priority of the retries")
    p.add_argument("--dry-run", action="store_true", help="list what would be retried, launch nothing")
    _add_url_arg(p)


@command("retry-failed", help="re-run the failed assets and their downstream, one bulk-tagged run per hospital (GraphQL)",
         setup=_setup_retry_failed)
def _run_retry_failed(args: argparse.Namespace) -> int:
    """Re-run exactly each hospital's failed assets (a failed check: the asset it checks) and
    their downstream: one bulk launch per distinct selection, one run per hospital."""
    from price_pipeline.defs.ingestion.jobs import INGESTION_CHILDREN
    from price_pipeline.defs.ops.failed import failed_items
    from price_pipeline.lib.ops.deadletter import retry_plan

    only = {k.strip() for item in args.hospital for k in item.split(",") if k.strip()}
    with _instance() as instance:
        items = [f for f in failed_items(instance, kind=args.kind) if not only or f.hospital_key in only]
    plan = retry_plan(items, INGESTION_CHILDREN)
    if args.dry_run or not plan:
        print(json.dumps({"would_retry" if args.dry_run else "retried": [
            {"assets": list(assets), "hospitals": keys} for assets, keys in plan.items()]}))
        return 0
    launched = [launch_bulk(args.url, list(assets), keys, trigger="retry-failed", priority=args.priority,
                            title=f"retry {len(keys)} failed hospitals: {','.join(assets)}")
                for assets, keys in plan.items()]
    print(json.dumps({"retried": launched}))
    return 0


# ---------------------------------------------------------------------------- wait (for scripts and tests)


def _setup_wait(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_ids", nargs="+")
    p.add_argument("--timeout", type=float, default=600)


@command("wait", help="wait until runs finish; exit 0 only if all succeeded",
         setup=_setup_wait)
def _run_wait(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    with _instance() as instance:
        while True:
            runs = [instance.get_run_by_id(r) for r in args.run_ids]
            if all(r is not None and r.is_finished for r in runs):
                for r in runs:
                    print(json.dumps({"run_id": r.run_id, "status": r.status.value}))
                return 0 if all(r.status.value == "SUCCESS" for r in runs) else 1
            if time.monotonic() > deadline:
                raise CliError("timed out waiting for runs")
            time.sleep(1)
