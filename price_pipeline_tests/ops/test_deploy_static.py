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


# The keys this file sets, as the chart's values.yaml (version above) defines them.
HELM_KEYS = {
    "global": {"postgresqlSecretName"},
    "dagsterWebserver": {"replicaCount", "image", "service", "envSecrets"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "deployments"},
    "runLauncher": {"type", "config"},
    "postgresql": {"enabled", "postgresqlHost", "postgresqlUsername", "postgresqlDatabase", "postgresqlParams",
                   "service"},
    "generatePostgresqlPasswordSecret": None,
    "computeLogManager": {"type", "config"},
    "dagsterDaemon": {"enabled", "runCoordinator", "runMonitoring", "runRetries", "envSecrets"},
    "telemetry": {"enabled"},
}


def test_helm_values_use_the_charts_keys_and_match_the_instance_policy():
    values = yaml.safe_load((DEPLOY / "helm/values.yaml").read_text())
    assert HELM_CHART_VERSION in (DEPLOY / "helm/values.yaml").read_text()
    assert set(values) <= set(HELM_KEYS), set(values) - set(HELM_KEYS)
    for key, allowed in HELM_KEYS.items():
        if allowed is not None:
            assert set(values[key]) <= allowed, (key, set(values[key]) - allowed)
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
    helm_limits = coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert {t["key"] for t in helm_limits} == {t["key"] for t in production["concurrency"]["runs"]["tag_concurrency_limits"]}


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/production/dagster.yaml"])
def test_instance_configs_are_valid_dagster_instance_config(path):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema

    config = yaml.safe_load((PROJECT_ROOT / path).read_text())
    result = validate_config(dagster_instance_config_schema(), config)
    assert result.success, [e.message for e in result.errors]
    assert config["run_monitoring"]["enabled"] is True
    keys = {t["key"] for t in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert {"price_pipeline/hospital", "dagster/partition", "price_pipeline/host"} <= keys
    assert config["concurrency"]["pools"]["default_limit"] == 1  # duckdb_warehouse: single writer
    if "production" in path:
        assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
        assert config["compute_logs"]["class"] == "S3ComputeLogManager"
        assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
