"""The Great Expectations suite on a prices partition: failing expectations are reported."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.lib.lake.schemas import PRICES_SCHEMA


def _row(kind: str, amount=None, *, payer=None, percentage=None, setting="Outpatient", row=4) -> dict:
    record = {name: None for name in PRICES_SCHEMA.names}
    record.update(hospital_key="h1", file_sha256="a" * 64, source_row=row, description="Office visit",
                  setting=setting, billing_class="facility", primary_code="99213", primary_code_type="CPT",
                  charge_kind=kind, amount=amount, percentage=percentage, payer_name=payer,
                  plan_name="PPO" if payer else None)
    return record


def test_failing_expectations_are_reported_with_examples(tmp_path):
    from price_pipeline.lib.quality.expectations import run_price_expectations

    rows = [
        _row("gross", 100.0), _row("minimum", 50.0), _row("maximum", 40.0),  # min > max
        _row("median", 80.0, payer="Aetna"), _row("percentile_10th", 90.0, payer="Aetna"),  # p10 > median
        _row("percentile_90th", 120.0, payer="Aetna"),
        _row("negotiated_percentage", payer="Cigna"),  # percentage missing
        _row("gross", 99999999999.0, setting="somewhere", row=5),  # out of range, unknown setting
    ]
    path = tmp_path / "prices.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=PRICES_SCHEMA), path)
    outcome = run_price_expectations(path)
    assert outcome["success"] is False and outcome["rows"] == 8 and outcome["sampled"] is False
    failed = {
        (r["expectation"], r["kwargs"].get("column") or (r["kwargs"]["column_A"], r["kwargs"]["column_B"]))
        for r in outcome["results"] if not r["success"]
    }
    assert failed == {
        ("expect_column_pair_values_a_to_be_greater_than_b", ("maximum", "minimum")),
        ("expect_column_pair_values_a_to_be_greater_than_b", ("median", "percentile_10th")),
        ("expect_column_values_to_not_be_null", "percentage"),
        ("expect_column_values_to_be_between", "amount"),
        ("expect_column_values_to_be_in_set", "setting"),
    }
    setting = next(r for r in outcome["results"] if r["kwargs"].get("column") == "setting" and not r["success"])
    assert setting["unexpected_count"] == 1 and setting["examples"] == ["somewhere"]


def test_sampling_caps_rows_validated(tmp_path):
    from price_pipeline.lib.quality.expectations import run_price_expectations

    rows = [_row("gross", 10.0 + i, row=4 + i) for i in range(50)]
    path = tmp_path / "prices.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=PRICES_SCHEMA), path)
    outcome = run_price_expectations(path, max_rows=20)
    assert outcome["success"] and outcome["sampled"] and outcome["rows"] == 50 and outcome["rows_validated"] == 20


def test_great_expectations_imports_where_main_has_no_file():
    """With pyspark installed (the spark extra), ``import great_expectations`` in ``python -c``
    or a Dagster run worker exited the process (SystemExit 0 from pyspark.sql.connect's doctest
    guess): every expectations run failed. The import helper must return in such a process."""
    import subprocess
    import sys

    code = ("from price_pipeline.lib.quality.expectations import _import_great_expectations\n"
            "gx = _import_great_expectations()\n"
            "print('imported', gx.__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "imported great_expectations" in proc.stdout, proc.stderr[-2000:]


def test_one_process_validates_hospital_after_hospital_as_fresh_processes_would(tmp_path):
    """A batched run reuses one GX context for every hospital: a failing hospital between two
    passing ones changes neither their outcome nor its own, and each equals a fresh process's."""
    import json
    import subprocess
    import sys

    from price_pipeline.lib.quality.expectations import run_price_expectations

    good = [_row("gross", 100.0), _row("minimum", 50.0), _row("maximum", 60.0)]
    bad = [_row("gross", -5.0), _row("minimum", 50.0), _row("maximum", 40.0), _row("gross", 1.0, setting="x")]
    paths = []
    for name, rows in (("a", good), ("b", bad), ("c", good[:2])):
        paths.append(tmp_path / f"{name}.parquet")
        pq.write_table(pa.Table.from_pylist(rows, schema=PRICES_SCHEMA), paths[-1])
    in_one = [run_price_expectations(p) for p in paths]
    assert [o["success"] for o in in_one] == [True, False, True]
    fresh = [
        json.loads(subprocess.run(
            [sys.executable, "-c", "import json, sys\n"
             "from price_pipeline.lib.quality.expectations import run_price_expectations\n"
             "print(json.dumps(run_price_expectations(sys.argv[1]), default=str))", str(p)],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        for p in paths
    ]
    assert json.loads(json.dumps(in_one, default=str)) == fresh
