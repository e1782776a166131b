"""The container and Kubernetes files, validated statically (no container engine runs here):
they parse, name every service, and every command points at a real module, attribute, file or
configuration key."""

import importlib
import re
import shlex

import dagster as dg
import pytest
import yaml

from price_pipeline.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
HELM_CHART_VERSION = "1.13.27"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_has_every_service_and_real_commands():
    compose = _compose()
    services = compose["services"]
    assert {"webserver", "daemon", "ingestion", "analytics", "postgres", "minio"} <= set(services)
    for name in ("webserver", "daemon", "ingestion", "analytics"):
        service = services[name]
        assert service["image"] == "price-pipeline:latest"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["build"]["context"] == ".." and (PROJECT_ROOT / "deploy/Dockerfile").exists()
        env = service["environment"]
        assert env["PRICE_PIPELINE_MODE"] == "production" and env["DAGSTER_PG_URL"].startswith("postgresql")
        assert env["PRICE_PIPELINE_LAKE_URL"].startswith("s3://")
    for name in ("ingestion", "analytics"):
        command = services[name]["command"]
        module = command[command.index("-m") + 1]
        attribute = command[command.index("-a") + 1]
        assert command[command.index("--location-name") + 1] == name
        assert isinstance(getattr(importlib.import_module(module), attribute)(), dg.Definitions)
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[0] in ("dagster-webserver", "dagster-daemon")
        workspace = command[command.index("-w") + 1]
        assert workspace.startswith("/app/")
        path = PROJECT_ROOT / workspace.removeprefix("/app/")
        locations = {e["grpc_server"]["host"]: e["grpc_server"] for e in yaml.safe_load(path.read_text())["load_from"]}
        assert set(locations) == {"ingestion", "analytics"}
        for host, entry in locations.items():
            served = services[host]["command"]
            assert str(entry["port"]) == served[served.index("-p") + 1]
    assert services["postgres"]["healthcheck"] and (DEPLOY / "compose/init-databases.sql").exists()
    # every ${VAR} used has a default or is documented
    docs = (PROJECT_ROOT / "docs/operations.md").read_text()
    for var in set(re.findall(r"\$\{(\w+)(?::-[^}]*)?\}", (DEPLOY / "docker-compose.yml").read_text())):
        assert var in docs, f"{var} used by the compose file but not documented"


def test_dockerfile_copies_what_the_services_need():
    text = (DEPLOY / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (.+) \S+$", text, flags=re.MULTILINE)
    for sources in copied:
        for source in shlex.split(sources):
            assert (PROJECT_ROOT / source).exists(), source
    assert "deploy/production/dagster.yaml" in text and "FROM python:3.11" in text
    assert re.search(r"^USER \w+", text, flags=re.MULTILINE)  # not root
    cmd = re.search(r'^CMD (\[.*\])$', text, flags=re.MULTILINE).group(1)
    assert yaml.safe_load(cmd)[0] == "dagster-webserver"
    # PYTHONDONTWRITEBYTECODE and a non-root user: bytecode only exists if the build compiles it
    # (else ~3 CPU-s more per run worker start), for the dependencies and for price_pipeline/.
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert re.search(r"uv pip install --system [^\n]*--compile-bytecode[^\n]*-r /tmp/requirements.txt", text)
    assert "python -m compileall -q price_pipeline" in text


# The keys and types deploy/helm/values.yaml uses, written from a reading of the chart's
# values.schema.json (dagster-io/dagster helm/dagster/values.schema.json at commit
# bdb8547fab497826eeec292bc160b549a0a329ef, the newest stored chart schema found for the 1.13 line;
# the values validated against those definitions with jsonschema when this was written). Stricter
# than the chart on purpose: every object is closed, so a misspelt key fails here even where the
# chart's schema would let it through (e.g. the top level and S3ComputeLogManager are open there).
HELM_SCHEMA_CHECKED_AGAINST = "bdb8547fab497826eeec292bc160b549a0a329ef"


def _obj(required: dict | None = None, optional: dict | None = None) -> dict:
    props = {**(required or {}), **(optional or {})}
    return {"type": "object", "properties": props, "required": sorted(required or {}), "additionalProperties": False}


_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_PULL = {"enum": ["Always", "IfNotPresent", "Never"]}
_IMAGE = _obj({"repository": _STR, "tag": {"type": ["string", "integer"]}, "pullPolicy": _PULL})
_SECRETS = {"type": "array", "items": _obj({"name": _STR}), "minItems": 1}
_RESOURCES = _obj(optional={"requests": {"type": "object"}, "limits": {"type": "object"}})
_TAG_LIMIT = _obj(
    {"key": _STR, "limit": _INT},
    {"value": {"anyOf": [_STR, _obj({"applyLimitPerUniqueValue": _BOOL})]}},
)
HELM_VALUES_SCHEMA = _obj({
    "global": _obj({"postgresqlSecretName": _STR}),
    "dagsterWebserver": _obj({
        "replicaCount": _INT, "image": _IMAGE,
        "service": _obj({"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "port": _INT}),
        "envSecrets": _SECRETS,
    }),
    "dagster-user-deployments": _obj({
        "enabled": _BOOL, "enableSubchart": _BOOL,
        "deployments": {"type": "array", "minItems": 1, "items": _obj(
            {"name": _STR, "image": _IMAGE, "dagsterApiGrpcArgs": {"type": "array", "items": _STR}, "port": _INT},
            {"envSecrets": _SECRETS, "resources": _RESOURCES},
        )},
    }),
    "runLauncher": _obj({
        "type": {"const": "K8sRunLauncher"},
        "config": _obj({"k8sRunLauncher": _obj(optional={
            "envSecrets": _SECRETS,
            "runK8sConfig": _obj(optional={"containerConfig": _obj(optional={"resources": _RESOURCES})}),
        })}),
    }),
    "postgresql": _obj({
        "enabled": _BOOL, "postgresqlHost": _STR, "postgresqlUsername": _STR, "postgresqlDatabase": _STR,
        "postgresqlParams": {"type": "object"}, "service": _obj({"port": _INT}),
    }),
    "generatePostgresqlPasswordSecret": _BOOL,
    "computeLogManager": _obj({
        "type": {"const": "S3ComputeLogManager"},
        "config": _obj({"s3ComputeLogManager": _obj({"bucket": _STR}, {"prefix": _STR, "skipEmptyFiles": _BOOL})}),
    }),
    # the chart's top-level `concurrency` (rendered into dagster.yaml's concurrency block)
    "concurrency": _obj(optional={"pools": _obj(optional={
        "defaultLimit": _INT, "granularity": {"enum": ["op", "run"]}, "opGranularityRunBuffer": _INT})}),
    "dagsterDaemon": _obj({
        "enabled": _BOOL,
        "runCoordinator": _obj({
            "enabled": _BOOL, "type": {"const": "QueuedRunCoordinator"},
            "config": _obj({"queuedRunCoordinator": _obj(
                {"maxConcurrentRuns": _INT, "tagConcurrencyLimits": {"type": "array", "items": _TAG_LIMIT}},
                {"dequeueIntervalSeconds": _INT, "dequeueUseThreads": _BOOL, "dequeueNumWorkers": _INT},
            )}),
        }),
        # free-form objects in the chart; these are the instance's run_monitoring / run_retries keys
        "runMonitoring": _obj({"enabled": _BOOL}, {k: _INT for k in (
            "startTimeoutSeconds", "pollIntervalSeconds", "maxResumeRunAttempts", "maxRuntimeSeconds")}),
        "runRetries": _obj({"enabled": _BOOL}, {"maxRetries": _INT}),
        "envSecrets": _SECRETS,
    }),
    "telemetry": _obj({"enabled": _BOOL}),
})


def _helm_schema_errors(values: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(HELM_VALUES_SCHEMA)
    return ["/".join(map(str, e.absolute_path)) + ": " + e.message for e in validator.iter_errors(values)]


def test_the_helm_values_schema_rejects_a_typo_and_a_wrong_type():
    values = yaml.safe_load((DEPLOY / "helm/values.yaml").read_text())
    assert _helm_schema_errors(values) == []
    typo = yaml.safe_load((DEPLOY / "helm/values.yaml").read_text())
    typo["computeLogManager"]["config"]["s3ComputeLogManager"]["skipEmptyFile"] = True
    assert any("skipEmptyFile" in e for e in _helm_schema_errors(typo))
    wrong_type = yaml.safe_load((DEPLOY / "helm/values.yaml").read_text())
    wrong_type["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] = "25"
    assert any("maxConcurrentRuns" in e for e in _helm_schema_errors(wrong_type))
    misplaced = yaml.safe_load((DEPLOY / "helm/values.yaml").read_text())
    misplaced["dagsterWebserver"]["runCoordinator"] = {}
    assert _helm_schema_errors(misplaced)


def test_helm_values_use_the_charts_keys_and_match_the_instance_policy():
    values = yaml.safe_load((DEPLOY / "helm/values.yaml").read_text())
    assert HELM_CHART_VERSION in (DEPLOY / "helm/values.yaml").read_text()
    assert _helm_schema_errors(values) == []
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert set(values["runLauncher"]["config"]) == {"k8sRunLauncher"}
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert set(values["computeLogManager"]["config"]) == {"s3ComputeLogManager"}
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator" and set(coordinator["config"]) == {"queuedRunCoordinator"}
    deployments = {d["name"]: d for d in values["dagster-user-deployments"]["deployments"]}
    assert set(deployments) == {"ingestion", "analytics"}
    for name, d in deployments.items():
        assert {"name", "image", "dagsterApiGrpcArgs", "port"} <= set(d)
        args = d["dagsterApiGrpcArgs"]
        module, attribute = args[args.index("--module-name") + 1], args[args.index("--attribute") + 1]
        assert attribute == name and callable(getattr(importlib.import_module(module), attribute))
    # the same tag limits as the production instance
    production = yaml.safe_load((DEPLOY / "production/dagster.yaml").read_text())
    queued = coordinator["config"]["queuedRunCoordinator"]
    helm_limits = queued["tagConcurrencyLimits"]
    production_limits = production["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {(t["key"], str(t.get("value"))) for t in helm_limits} == {
        (t["key"], str(t.get("value"))) for t in production_limits}
    # the same dequeue loop: short batch runs should not wait out Dagster's 5 s default for a slot
    production_queue = production["run_coordinator"]["config"]
    assert (queued["dequeueIntervalSeconds"], queued["dequeueUseThreads"], queued["dequeueNumWorkers"]) == (
        production_queue["dequeue_interval_seconds"], production_queue["dequeue_use_threads"],
        production_queue["dequeue_num_workers"])
    # bulk work leaves one slot free there too, and the warehouse pool is single-writer
    bulk = next(t for t in helm_limits if t["key"] == "price_pipeline/bulk")
    assert bulk["value"] == "true" and bulk["limit"] == queued["maxConcurrentRuns"] - 1
    assert values["concurrency"]["pools"]["defaultLimit"] == production["concurrency"]["pools"]["default_limit"] == 1


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/production/dagster.yaml"])
def test_instance_configs_are_valid_dagster_instance_config(path):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema

    config = yaml.safe_load((PROJECT_ROOT / path).read_text())
    result = validate_config(dagster_instance_config_schema(), config)
    assert result.success, [e.message for e in result.errors]
    assert config["run_monitoring"]["enabled"] is True
    keys = {t["key"] for t in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert {"price_pipeline/hospital", "dagster/partition", "price_pipeline/host", "price_pipeline/bulk"} <= keys
    runs = config["concurrency"]["runs"]
    bulk = next(t for t in runs["tag_concurrency_limits"] if t["key"] == "price_pipeline/bulk")
    assert bulk["value"] == "true" and bulk["limit"] == runs["max_concurrent_runs"] - 1  # one slot stays free
    assert config["concurrency"]["pools"]["default_limit"] == 1  # duckdb_warehouse: single writer
    assert config.get("freshness", {}).get("enabled", True) is True  # the freshness daemon evaluates policies
    # sensors tick side by side: a slow tick (a change sweep, a catalog fetch) delays only its own sensor
    assert config["sensors"]["use_threads"] is True and config["sensors"]["num_workers"] >= 2
    if "production" in path:
        assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
        assert config["compute_logs"]["class"] == "S3ComputeLogManager"
        assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
        assert config["freshness"] == {"enabled": True}


def test_the_embedded_queue_dequeues_every_two_seconds_within_its_limits(tmp_path):
    """dagster.yaml's run_queue block only shortens the dequeue interval (5 s by default): the
    daemon still reads max_concurrent_runs and the tag limits from ``concurrency``."""
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 2
        queue = instance.get_concurrency_config().run_queue_config
        config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["concurrency"]["runs"]
        assert queue.max_concurrent_runs == config["max_concurrent_runs"] == 2
        assert [t["key"] for t in queue.tag_concurrency_limits] == [t["key"] for t in config["tag_concurrency_limits"]]
    production = yaml.safe_load((PROJECT_ROOT / "deploy/production/dagster.yaml").read_text())
    assert production["run_coordinator"]["config"]["dequeue_interval_seconds"] == 2
