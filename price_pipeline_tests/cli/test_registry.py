"""One command table and one error wrapper for every ``price-pipeline`` command; names come from
the definitions, not from copies."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import yaml

from price_pipeline.cli import COMMANDS, CliError, build_parser, main
from price_pipeline.cli.registry import command
from price_pipeline.settings import PROJECT_ROOT

EVERY_COMMAND = {
    "parse", "validate", "quarantine", "export", "add-hospitals", "launch", "backfill", "reexecute", "cancel",
    "runs", "failed-hospitals", "retry-failed", "wait",
}


def test_one_table_holds_every_command():
    assert set(COMMANDS) == EVERY_COMMAND
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == EVERY_COMMAND


def test_a_command_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        command("parse", help="again", setup=lambda p: None)(lambda args: 0)


REQUIRED_ARGS = {"parse": ["f", "--out", "o"], "validate": ["f"], "reexecute": ["r"], "cancel": ["r"], "wait": ["r"]}


@pytest.mark.parametrize("name", sorted(EVERY_COMMAND))
def test_every_command_runs_in_the_one_error_wrapper(name, monkeypatch, capsys):
    """main() runs whichever command through run_guarded: a CliError from any of them is one
    stderr line and its exit status, never a traceback."""
    from price_pipeline.cli import registry

    def refuse(args):
        raise CliError(f"{name} refused", status=3)

    monkeypatch.setitem(COMMANDS, name, registry.Command(name, COMMANDS[name].setup, refuse, COMMANDS[name].help))
    assert main([name, *REQUIRED_ARGS.get(name, [])]) == 3
    assert capsys.readouterr().err == f"price-pipeline: {name} refused\n"



def test_job_control_without_an_instance_is_an_error_line_not_a_traceback(monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["runs"]) == 1
    assert capsys.readouterr().err.startswith("price-pipeline: DAGSTER_HOME is not set")


def test_export_with_nothing_published_is_an_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRICE_PIPELINE_LAKE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("PRICE_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    assert main(["export", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("price-pipeline: ")


def test_ingestion_names_come_from_the_definitions():
    from price_pipeline.cli.jobs import ingestion_job
    from price_pipeline.defs.ingestion.jobs import INGESTION_ASSET_DEFS, ingest_hospital_job

    job, assets = ingestion_job()
    assert job == ingest_hospital_job.name
    assert assets == tuple(a.key.to_user_string() for a in INGESTION_ASSET_DEFS)


def test_location_names_are_the_workspace_ones():
    from price_pipeline.cli.jobs import ANALYTICS_LOCATION, INGESTION_LOCATION

    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    names = {e["python_module"]["attribute"]: e["python_module"]["location_name"] for e in workspace["load_from"]}
    assert (names["ingestion"], names["analytics"]) == (INGESTION_LOCATION, ANALYTICS_LOCATION)


def test_building_the_parser_imports_neither_dagster_nor_the_parser():
    """``price-pipeline validate`` (and its speed benchmark) must not pay for job control's imports."""
    script = ("import sys\nfrom price_pipeline.cli import build_parser\nbuild_parser()\n"
              "heavy = [m for m in sys.modules if m.split('.')[0] in ('dagster', 'pyarrow', 'duckdb')]\n"
              "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
