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


def _hospitals_for_batching() -> dict[str, list[dict]]:
    """Hospitals whose batched results must equal their own validation's: a passing one with
    every kind, one with only gross charges (no wide items, no percentages), one with an all-null
    column (setting), one with drug units, a failing one, an empty one and one above max_rows."""
    full = [_row("gross", 100.0), _row("minimum", 50.0), _row("maximum", 60.0),
            _row("median", 80.0, payer="Aetna"), _row("percentile_10th", 70.0, payer="Aetna"),
            _row("percentile_90th", 90.0, payer="Aetna"), _row("negotiated_percentage", payer="Cigna", percentage=40.0),
            _row("negotiated_dollar", 75.0, payer="Cigna")]
    drugs = [{**_row("gross", 12.0), "drug_type_of_measurement": " ml ", "drug_unit_of_measurement": 2.0},
             _row("discounted_cash", 9.0, setting="BOTH")]
    return {
        "passing": full,
        "gross_only": [_row("gross", 10.0 + i, row=4 + i) for i in range(6)],
        "null_setting": [_row("gross", 5.0, setting=None), _row("minimum", 6.0, setting=None),
                         _row("maximum", 7.0, setting=None)],
        "drugs": drugs,
        "failing": [_row("gross", -5.0), _row("minimum", 50.0), _row("maximum", 40.0), _row("gross", 1.0, setting="x")],
        "empty": [],
        "large": [_row("gross", 10.0 + i, row=4 + i) for i in range(30)],
        "passing_again": full[:3],
    }


def _write(tmp_path, hospitals: dict[str, list[dict]]) -> dict[str, object]:
    paths = {}
    for key, rows in hospitals.items():
        paths[key] = tmp_path / f"{key}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=PRICES_SCHEMA), paths[key])
    return paths


def test_batched_results_equal_each_hospital_validated_alone(tmp_path, monkeypatch):
    """run_price_expectations_many validates the hospitals together but reports for each exactly
    what run_price_expectations reports for it alone: passing, failing, an all-null column, no
    wide items, empty, sampled (above max_rows). The passing ones must not be validated alone."""
    from price_pipeline.lib.quality import expectations

    paths = _write(tmp_path, _hospitals_for_batching())
    alone = {key: expectations.run_price_expectations(path, max_rows=20) for key, path in paths.items()}
    assert [k for k, o in alone.items() if not o["success"]] == ["failing", "empty"]
    assert alone["large"]["sampled"] and not alone["passing"]["sampled"]

    validated_alone = []
    lone = expectations.run_price_expectations
    monkeypatch.setattr(expectations, "run_price_expectations",
                        lambda path, **kw: validated_alone.append(path) or lone(path, **kw))
    batched = expectations.run_price_expectations_many(paths, max_rows=20)
    assert list(batched) == list(paths)
    assert batched == alone
    # failing shares its chunk with the passing ones: that chunk falls back, hospital by hospital
    assert set(validated_alone) >= {paths["failing"], paths["empty"], paths["large"]}

    passing = {k: paths[k] for k in ("passing", "gross_only", "null_setting", "drugs", "passing_again")}
    validated_alone.clear()
    batched = expectations.run_price_expectations_many(passing, max_rows=20, chunk_rows=12)
    assert validated_alone == [] and batched == {k: alone[k] for k in passing}
    null_setting = next(r for r in batched["null_setting"]["results"] if r["kwargs"].get("column") == "setting")
    assert null_setting["unexpected_percent"] is None  # GX: no non-null value to be in the set


def test_batched_hospitals_with_another_schema_are_validated_alone(tmp_path):
    """A Parquet file of another schema (here a column typed differently) is not combined with
    the others (a UNION would cast its values); its result is still its own validation's."""
    from price_pipeline.lib.quality import expectations

    paths = _write(tmp_path, {"a": _hospitals_for_batching()["passing"]})
    other = pa.schema([f.with_type(pa.float32()) if f.name == "amount" else f for f in PRICES_SCHEMA])
    paths["b"] = tmp_path / "b.parquet"
    pq.write_table(pa.Table.from_pylist(_hospitals_for_batching()["drugs"], schema=other), paths["b"])
    chunks, alone = expectations._plan_chunks(paths, 100, 100)
    assert sorted(len(c) for c in chunks) == [1, 1] and alone == []
    assert expectations.run_price_expectations_many(paths) == {
        k: expectations.run_price_expectations(p) for k, p in paths.items()}
