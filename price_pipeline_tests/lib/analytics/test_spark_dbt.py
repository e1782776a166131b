"""price_pipeline.lib.spark_dbt without a JVM: the UDFs' Python side and the dbt wrapper's routing.

The UDFs on a real Spark session are exercised by analytics/test_two_engines.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from price_pipeline.lib.analytics import spark_dbt
from price_pipeline.lib.prices import codes

PAIRS = [("99213", "CPT"), ("j1100", "hcpcs"), (" 470 ", "MS-DRG"), ("DRG 12", "drg"), ("250", "rev"),
         ("0002-1433-80", "NDC"), (None, "CPT"), ("A1234", None), ("  ", "cdm")]


def test_code_udfs_equal_the_normalisers_macros() -> None:
    cleaned = codes.clean_codes(PAIRS)
    harmonised = codes.harmonise_codes(PAIRS)
    for (code, code_type), (clean, clean_type), (_, system, well_formed) in zip(PAIRS, cleaned, harmonised, strict=True):
        assert spark_dbt.pp_clean_code(code, code_type) == clean
        assert spark_dbt.pp_clean_code_type(code_type) == clean_type
        assert spark_dbt.pp_code_system(clean, clean_type) == system
        assert spark_dbt.pp_code_well_formed(clean, clean_type) == well_formed


def test_lake_glob_lists_matching_files_only(tmp_path: Path) -> None:
    for key in ("b", "a"):
        folder = tmp_path / "prices_history" / f"hospital_key={key}"
        folder.mkdir(parents=True)
        (folder / f"file_sha256={key * 64}.parquet").write_bytes(b"x")
        (folder / "versions.parquet").write_bytes(b"x")
        (folder / ".tmp-1-file_sha256=x.parquet").write_bytes(b"x")
    found = spark_dbt.pp_lake_glob(f"{tmp_path}/prices_history/*/file_sha256=*.parquet")
    assert [Path(p).parent.name for p in found] == ["hospital_key=a", "hospital_key=b"]
    assert all(Path(p).name.startswith("file_sha256=") for p in found)
    assert spark_dbt.pp_lake_glob(f"{tmp_path}/conformance/*/report.parquet") == []
    assert spark_dbt.pp_lake_glob(None) == []


@pytest.mark.parametrize(
    ("argv", "env", "target"),
    [(["build", "--target", "spark"], None, "spark"), (["build", "--target=spark"], None, "spark"),
     (["build", "-t", "embedded"], "spark", "embedded"), (["build"], "spark", "spark"), (["build"], None, "embedded")],
)
def test_target_from_arguments_then_environment(argv, env, target, monkeypatch) -> None:
    if env is None:
        monkeypatch.delenv("PRICE_PIPELINE_DBT_TARGET", raising=False)
    else:
        monkeypatch.setenv("PRICE_PIPELINE_DBT_TARGET", env)
    assert spark_dbt._target(argv) == target


def test_spark_session_only_for_spark_builds(monkeypatch) -> None:
    started, ran = [], []
    monkeypatch.setattr(spark_dbt, "spark_session", lambda: started.append(1) or object())
    monkeypatch.setattr(spark_dbt, "register_udfs", lambda spark: None)
    monkeypatch.setattr(spark_dbt, "run_dbt", lambda argv: ran.append(argv) or 0)
    monkeypatch.delenv("PRICE_PIPELINE_DBT_TARGET", raising=False)
    assert spark_dbt.main(["build", "--target", "embedded"]) == 0
    assert spark_dbt.main(["parse", "--target", "spark"]) == 0
    assert started == []
    assert spark_dbt.main(["build", "--target", "spark"]) == 0
    assert started == [1] and len(ran) == 3
