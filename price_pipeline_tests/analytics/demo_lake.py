"""A small real lake: the bundled demo hospitals plus a few generated ones, through the pipeline's
own parser, normaliser and validator (no Dagster, no HTTP), laid out as the assets write it.

Used by the two-engine test (DuckDB and Spark build the same dbt project from it). The generated
hospitals (:mod:`price_pipeline.demo.gen_mrf`, deterministic) share their code pool, so many
distribution cells have three or more hospitals and are not suppressed; one of them has two
versions (the older superseded: trends, history), and one is removed from the catalog.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.lib.lake.schemas import PRICE_VERSIONS_SCHEMA, PRICES_SCHEMA
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.parse.mrf import parse_to_parquet
from price_pipeline.lib.prices.normalize import normalize_to_prices
from price_pipeline.lib.quality.conformance import _summary_row, write_summary_table
from price_pipeline.lib.validate import validate_file

DEMO = Path(__file__).resolve().parents[2] / "price_pipeline" / "demo" / "data"
VALIDATED_AT = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)

# key, name, state, status, [(format, rows, payers, seed, last_updated_on)] oldest first
GENERATED = (
    ("gen-tall-1", "Generated Tall One", "CA", "active", [("tall", 300, 6, 11, dt.date(2025, 3, 1)),
                                                          ("tall", 300, 6, 12, dt.date(2025, 9, 1))]),
    ("gen-wide-2", "Generated Wide Two", "CA", "active", [("wide", 250, 5, 21, dt.date(2025, 8, 1))]),
    ("gen-json-3", "Generated Json Three", "TX", "active", [("json", 120, 5, 31, dt.date(2025, 7, 1))]),
    ("gen-tall-4", "Generated Tall Four", "TX", "removed", [("tall", 150, 4, 41, dt.date(2025, 6, 1))]),
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _generate(work: Path, fmt: str, rows: int, payers: int, seed: int) -> Path:
    out = work / f"gen-{fmt}-{seed}.{'json' if fmt == 'json' else 'csv'}"
    subprocess.run([sys.executable, "-m", "price_pipeline.demo.gen_mrf", "--format", fmt, "--rows", str(rows),
                    "--payers", str(payers), "--seed", str(seed), "--out", str(out)], check=True, capture_output=True)
    return out


# Payers renamed in one generated hospital to names no rule or seed knows (and one with no
# plan), so the review queue (review_unmapped_payers) has rows on both engines.
UNKNOWN_PAYERS = {"gen-json-3": {"Oscar Health": ("Zyqa Mutual Benefit Trust", None),
                                 "Priority Health": ("Qorvent Plan Administrators", "Tier Q")}}


def _rename_payers(path: Path, renames: dict[str, tuple[str, str | None]]) -> None:
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        if row["payer_name"] in renames:
            row["payer_name"], row["plan_name"] = renames[row["payer_name"]]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def _report_rows(key: str, raw: Path, sha: str, url: str) -> dict:
    report = {"hospital_key": key, "file_sha256": sha, "url": url, "download_status": "ok",
              **validate_file(raw, max_findings=50).as_dict(),
              "report_key": f"conformance/hospital_key={key}/{sha}.json"}
    return _summary_row(key, report, VALIDATED_AT)


def _add_hospital(lake: Path, work: Path, key: str, versions: list[tuple[Path, dt.date]],
                  unusable: list[Path] = ()) -> int:
    """Parse, normalise and validate a hospital's versions (oldest first; the last is current),
    and validate its ``unusable`` files (listed, but with no rows to normalise)."""
    history = lake / "prices_history" / f"hospital_key={key}"
    history.mkdir(parents=True)
    rows_out, current_tables, report_rows = [], [], []
    for seq, (raw, updated) in enumerate(versions, start=1):
        sha = _sha(raw)
        parsed = work / f"{key}-{seq}.parsed.parquet"
        summary = parse_to_parquet(raw, parsed, file_sha256=sha).as_dict()
        assert summary["ok"], f"{raw.name}: {summary['findings'][:3]}"
        out = history / f"file_sha256={sha}.parquet"
        n = normalize_to_prices([(parsed, summary.get("header") or {}, sha)], out, hospital_key=key)
        if key in UNKNOWN_PAYERS:
            _rename_payers(out, UNKNOWN_PAYERS[key])
        current = seq == len(versions)
        seen = dt.datetime.combine(updated, dt.time(6), dt.UTC)
        rows_out.append({
            "hospital_key": key, "file_sha256": sha, "version_seq": seq, "url": f"https://{key}.example.org/{raw.name}",
            "last_updated_on": updated, "template_version": (summary.get("header") or {}).get("version") or "3.0.0",
            "rows": n, "is_current": current, "first_seen_at": seen, "last_seen_at": seen,
            "superseded_at": None if current else seen + dt.timedelta(days=90),
        })
        if current:
            current_tables.append(pq.read_table(out))
            report_rows.append(_report_rows(key, raw, sha, rows_out[-1]["url"]))
    report_rows += [_report_rows(key, raw, _sha(raw), f"https://{key}.example.org/{raw.name}") for raw in unusable]
    if not rows_out:  # nothing to normalise: only the conformance reports
        history.rmdir()
        write_summary_table(LocalLake(lake), key, report_rows)
        return 0
    pq.write_table(pa.Table.from_pylist(rows_out, schema=PRICE_VERSIONS_SCHEMA), history / "versions.parquet")
    prices = lake / "prices" / f"hospital_key={key}"
    prices.mkdir(parents=True)
    pq.write_table(pa.concat_tables(current_tables).cast(PRICES_SCHEMA), prices / "prices.parquet")
    write_summary_table(LocalLake(lake), key, report_rows)
    return sum(r["rows"] for r in rows_out)


def build_demo_lake(lake: Path, work: Path) -> dict[str, int]:
    """Write the lake; returns price rows (all versions) per hospital."""
    work.mkdir(parents=True, exist_ok=True)
    catalog = json.loads((DEMO / "catalog.json").read_text())["hospitals"]
    hospitals, counts = [], {}
    for h in catalog:
        key = f"ccn-{h['ccn']}" if h.get("ccn") else h["id"]
        raws, unusable = [], []
        for f in h["files"]:
            raw = DEMO / "files" / f["name"]
            if not raw.exists():
                continue
            summary = parse_to_parquet(raw, work / "probe.parquet", file_sha256=_sha(raw)).as_dict()
            if summary["ok"] and summary["rows_parsed"] > 0:
                raws.append((raw, dt.date.fromisoformat(f["last_modified"][:10])))
            else:  # the demo has broken files on purpose: reported, no prices
                unusable.append(raw)
        if not raws and not unusable:
            continue
        counts[key] = _add_hospital(lake, work, key, raws, unusable)
        hospitals.append((key, h.get("ccn"), h["name"], h.get("address"), h.get("city"), h.get("state"),
                          h.get("zip"), h.get("website"), "active"))
    for i, (key, name, state, status, versions) in enumerate(GENERATED):
        raws = [(_generate(work, fmt, rows, payers, seed), updated) for fmt, rows, payers, seed, updated in versions]
        counts[key] = _add_hospital(lake, work, key, raws)
        hospitals.append((key, f"99000{i}", name, f"{i} Test Rd", "Testville", state, "90001",
                          f"https://{key}.example.org", status))
    columns = ("hospital_key", "ccn", "name", "address", "city", "state", "zip", "website", "status")
    (lake / "catalog").mkdir(parents=True)
    pq.write_table(pa.table({c: [h[i] for h in hospitals] for i, c in enumerate(columns)}),
                   lake / "catalog" / "hospitals.parquet")
    (work / "probe.parquet").unlink(missing_ok=True)
    return counts
