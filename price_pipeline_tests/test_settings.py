"""``price_pipeline/settings.py`` is the one reader of the environment, and the resource exposes
``Settings`` instead of copying it."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from price_pipeline.settings import PROJECT_ROOT, Settings, child_environment

PACKAGE = PROJECT_ROOT / "price_pipeline"
ENV_READ = re.compile(r"os\.environ|os\.getenv|getenv\(|from os import .*environ")
# A write, not a setting: Great Expectations' telemetry is switched off for the pipeline's process.
ALLOWED = {("lib/quality/expectations.py", 'os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")')}


def test_only_settings_reads_the_environment():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "settings.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ENV_READ.search(line) and not any(relative.endswith(f) and s in line for f, s in ALLOWED):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "environment read outside settings.py:\n" + "\n".join(found)


def test_resource_config_is_every_setting_but_the_secrets(tmp_path, monkeypatch):
    from price_pipeline.defs.resources import PricePipelineResource

    monkeypatch.delenv("PRICE_PIPELINE_CATALOG_API_KEY", raising=False)
    public = {f.name for f in dataclasses.fields(Settings) if f.repr and f.name != "extras"}
    assert set(PricePipelineResource.model_fields) == public
    settings = Settings(
        data_dir=tmp_path, lake_url=str(tmp_path / "lake"), registry_url="sqlite://", warehouse_path=tmp_path / "w",
        catalog_url="http://127.0.0.1:1/", download_deadline_seconds=12.0, request_deadline_seconds=3.0,
        download_min_bytes_per_second=7.0, analytics_max_wait_minutes=2.0, catalog_states=("CA", "TX"),
        user_agent="ua/1", ingest_batch_size=3,
    )
    # Every value survives the trip through resource config (the old copy reset five of them).
    assert PricePipelineResource.from_settings(settings).settings == settings


def test_dbt_target_follows_the_variable_then_the_lake(monkeypatch):
    monkeypatch.delenv("PRICE_PIPELINE_DBT_TARGET", raising=False)
    monkeypatch.setenv("PRICE_PIPELINE_LAKE_URL", "s3://bucket/lake")
    assert Settings.from_env().dbt_target == "production"
    monkeypatch.setenv("PRICE_PIPELINE_LAKE_URL", "/tmp/lake")
    assert Settings.from_env().dbt_target == "embedded"
    monkeypatch.setenv("PRICE_PIPELINE_DBT_TARGET", "production")
    assert Settings.from_env().dbt_target == "production"


def test_from_env_reads_a_given_mapping():
    settings = Settings.from_env({"PRICE_PIPELINE_INGEST_BATCH_SIZE": "4", "PRICE_PIPELINE_PRIORITY_HOSPITALS": " a, b ,"})
    assert settings.ingest_batch_size == 4 and settings.priority_hospitals == ("a", "b")


def test_child_environment_leaves_this_process_alone(monkeypatch):
    monkeypatch.setenv("PRICE_PIPELINE_TEST_KEEP", "1")
    before = dict(os.environ)
    child = child_environment({"PRICE_PIPELINE_TEST_SET": "x", "PRICE_PIPELINE_TEST_KEEP": None})
    assert child["PRICE_PIPELINE_TEST_SET"] == "x" and "PRICE_PIPELINE_TEST_KEEP" not in child
    assert dict(os.environ) == before


def test_dbt_runs_with_the_run_environment_without_changing_this_process(tmp_path, monkeypatch):
    """The models asset's dbt gets the run's lake, warehouse and target on its launcher's command
    line; the environment of the process that runs the asset is never touched."""
    from dagster_dbt import DbtCliResource

    from price_pipeline.dbt_env import ENV_FLAG, split_args
    from price_pipeline.defs.analytics.assets import DBT_EXECUTABLE, dbt_for_run, dbt_project
    from price_pipeline.defs.resources import PricePipelineResource

    monkeypatch.delenv("PRICE_PIPELINE_WAREHOUSE_PATH", raising=False)
    settings = Settings(data_dir=tmp_path, lake_url=str(tmp_path / "lake"), registry_url="sqlite://",
                        warehouse_path=tmp_path / "wh" / "w.duckdb", catalog_url="http://127.0.0.1:1/",
                        s3_endpoint_url="http://127.0.0.1:9", dbt_target="embedded")
    before = dict(os.environ)
    dbt = dbt_for_run(DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
                      PricePipelineResource.from_settings(settings))
    assert dict(os.environ) == before
    assert dbt.target == "embedded" and Path(dbt.dbt_executable).name == "price-pipeline-dbt"
    env, rest = split_args(dbt.global_config_flags)
    assert rest == [] and all(f.startswith(ENV_FLAG) for f in dbt.global_config_flags)
    assert env["PRICE_PIPELINE_WAREHOUSE_PATH"] == str(settings.warehouse_path)
    assert env["PRICE_PIPELINE_S3_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert Path(env["PRICE_PIPELINE_LAKE_URL"]) == tmp_path / "lake"
    # what the launcher gives the dbt it starts
    assert child_environment(env)["PRICE_PIPELINE_WAREHOUSE_PATH"] == str(settings.warehouse_path)


def test_a_runs_dbt_skips_the_version_process_and_the_adapter(tmp_path, monkeypatch):
    """A run's dbt resource knows the dbt version without starting `dbt --version` (a process
    that imports dbt and asks PyPI for the latest release) and builds no dbt adapter in the run's
    process (column metadata comes from the warehouse); the version is the one dbt reports as
    installed. dagster-dbt still calls the two internals it replaces."""
    import inspect

    import dagster_dbt.core.resource as dagster_dbt_resource
    from dagster_dbt import DbtCliResource

    from price_pipeline.defs.analytics.assets import (
        DBT_EXECUTABLE,
        RunDbtCliResource,
        dbt_for_run,
        dbt_project,
    )
    from price_pipeline.defs.resources import PricePipelineResource

    cli_source = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in cli_source and "self._initialize_dbt_core_adapter(" in cli_source
    settings = Settings(data_dir=tmp_path, lake_url=str(tmp_path / "lake"), registry_url="sqlite://",
                        warehouse_path=tmp_path / "w.duckdb", catalog_url="http://127.0.0.1:1/")
    dbt = dbt_for_run(DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
                      PricePipelineResource.from_settings(settings))
    assert isinstance(dbt, RunDbtCliResource)

    def no_process(*args, **kwargs):
        raise AssertionError(f"started {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", no_process)
    from dbt.version import get_installed_version

    assert str(dbt._cli_version) == get_installed_version().to_version_string(skip_matcher=True)
    assert dbt._initialize_dbt_core_adapter(["build"]) is None


def test_launcher_arguments():
    from price_pipeline.dbt_env import split_args

    assert split_args(["--version"]) == ({}, ["--version"])
    assert split_args(["--price-pipeline-env=A=1=2", "--price-pipeline-env=B=", "build", "--select", "x"]) == (
        {"A": "1=2", "B": ""}, ["build", "--select", "x"])
