"""The checks on each per-hospital ingestion layer, as plain functions (no Dagster).

Each is named as its check and takes what its asset's step has just produced (the files manifest,
the parsed versions, the prices file, the conformance reports) and returns a :class:`CheckOutcome`; the assets turn them
into Dagster check results inside their own steps (``defs/ingestion/checks.py``), so a hospital's
run pays no extra step, no extra process work and no extra event writes per check.

Metadata values that are lists or dicts are shown as JSON in the UI; everything else as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from price_pipeline.lib.quality import MIN_ROW_RATIO, row_count_collapsed

if TYPE_CHECKING:
    from price_pipeline.lib.fetch import FilesManifest
    from price_pipeline.lib.parse import ParsedVersion

# Examples kept in a check's metadata.
MAX_PROBLEMS = 20
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict on one hospital: passed, what it saw, and why it failed (in words)."""

    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


def mrf_files_has_a_price_file(manifest: FilesManifest) -> CheckOutcome:
    """At least one listed file downloaded as data (not an error page) and stored by sha256.
    ``conformance_recorded``: with no price file, ``mrf_files`` recorded the conformance summary
    of the rejected/failed files itself (conformance_reports is skipped)."""
    problems = [{"url": f.url, "status": f.status, "error": f.error} for f in manifest.files if f.status != "ok"]
    return CheckOutcome(
        passed=bool(manifest.ok_files),
        metadata={
            "files_ok": len(manifest.ok_files),
            "problems": problems[:MAX_PROBLEMS],
            "conformance_recorded": not manifest.ok_files,
        },
    )


def no_rows_reason(rows: int, unreadable: list) -> str | None:
    """Why a hospital has no charge rows, in words (None when it has some)."""
    if rows > 0:
        return None
    if unreadable:
        return f"no current file could be parsed ({len(unreadable)} unreadable)"
    return "header present, no data rows"


def mrf_parsed_has_rows(versions: Iterable[ParsedVersion]) -> CheckOutcome:
    """Some current file parsed as a CMS MRF with at least one charge row."""
    versions = list(versions)
    rows = sum(v.summary.rows_parsed for v in versions if v.summary.ok)
    unreadable = [
        {"file_sha256": v.file_sha256, "url": v.url, "findings": [f.as_dict() for f in v.summary.findings[:3]]}
        for v in versions
        if not v.summary.ok
    ]
    reason = no_rows_reason(rows, unreadable)
    return CheckOutcome(
        passed=rows > 0,
        description=reason,
        metadata={"rows": rows, "unreadable_files": unreadable, **({"reason": reason} if reason else {})},
    )


def mrf_parsed_row_count_not_collapsed(
    versions: Iterable[ParsedVersion], published_rows: int | None, *, drop_accepted: bool
) -> CheckOutcome:
    """Fails when the current parse has less than :data:`MIN_ROW_RATIO` of ``published_rows``
    (the rows of the parsed version behind the published prices), unless the operator accepted
    the drop (``drop_accepted``: the run tag ``price_pipeline/accept_row_drop=true``)."""
    current = sum(v.summary.rows_parsed for v in versions)  # as mrf_parsed's dagster/row_count
    collapsed = row_count_collapsed(published_rows, current)
    accepted = collapsed and drop_accepted
    return CheckOutcome(
        passed=not collapsed or accepted,
        metadata={
            "rows": current,
            "published_rows": published_rows,
            "ratio": round(current / published_rows, 4) if published_rows else None,
            "min_ratio": MIN_ROW_RATIO,
            "held_back": collapsed and not accepted,
            "accepted_by_tag": accepted,
        },
        description=(
            f"{current} rows is less than {MIN_ROW_RATIO:.0%} of the {published_rows} rows behind the published "
            "prices: the new version is held back" if collapsed and not accepted else None
        ),
    )


def mrf_parsed_has_no_error_findings(versions: Iterable[ParsedVersion]) -> CheckOutcome:
    """Passes when parsing recorded no error-severity finding (a warning: the data still flows)."""
    errors = [f.as_dict() for v in versions for f in v.summary.findings if f.severity == "error"]
    return CheckOutcome(
        passed=not errors,
        metadata={"error_findings": len(errors), "examples": errors[:MAX_EXAMPLES]},
    )


def prices_schema_and_lineage_complete(path: str | Path, con=None) -> CheckOutcome:
    """The prices file at ``path`` has the canonical columns, rows, and lineage (file sha256 plus
    source row or JSON path) and a charge kind and hospital on every row.

    ``path`` is a local path (read with pyarrow), or a lake URI with ``con`` a connection that reads the lake
    (``connect_duckdb``): DuckDB then reads the footer and the four columns' pages only, not the
    whole object. The file's own columns are read, never values DuckDB would take from a folder
    named like a hive partition (``prices/hospital_key=<k>/``), which would hide a NULL hospital.
    """
    from price_pipeline.lib.lake import PRICES_SCHEMA

    if con is None:
        return _lineage_outcome(*_count_lineage_with_arrow(path, PRICES_SCHEMA.names))
    columns = [name for (name, *_) in con.execute(
        "DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)", [str(path)]).fetchall()]
    missing_columns = [name for name in PRICES_SCHEMA.names if name not in columns]
    if missing_columns:  # a failure to report, not to crash on: the counts below need them
        (total,) = con.execute("SELECT count(*) FROM read_parquet(?, hive_partitioning = false)",
                               [str(path)]).fetchone()
        missing_lineage = missing_kind = None
    else:
        total, missing_lineage, missing_kind = con.execute(
            "SELECT count(*), "
            "count(*) FILTER (WHERE file_sha256 IS NULL OR (source_row IS NULL AND source_path IS NULL)), "
            "count(*) FILTER (WHERE charge_kind IS NULL OR hospital_key IS NULL) "
            "FROM read_parquet(?, hive_partitioning = false)",
            [str(path)],
        ).fetchone()
    return _lineage_outcome(total, missing_columns, missing_lineage, missing_kind)


def _count_lineage_with_arrow(path: str | Path, required: list[str]) -> tuple[int, list[str], int | None, int | None]:
    """:func:`prices_schema_and_lineage_complete`'s counts of a local file, read with pyarrow:
    a new DuckDB connection and its three queries cost ~40 ms of CPU per hospital, more than a
    small hospital's whole check. Reads the footer and the five columns, a batch at a time."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with pq.ParquetFile(str(path)) as parquet:
        columns = parquet.schema_arrow.names
        missing_columns = [name for name in required if name not in columns]
        total = parquet.metadata.num_rows
        if missing_columns:  # a failure to report, not to crash on: the counts below need them
            return total, missing_columns, None, None
        missing_lineage = missing_kind = 0
        for batch in parquet.iter_batches(
                columns=["file_sha256", "source_row", "source_path", "charge_kind", "hospital_key"]):
            null = {name: pc.is_null(batch.column(name)) for name in batch.schema.names}
            no_source = pc.and_(null["source_row"], null["source_path"])
            missing_lineage += pc.sum(pc.or_(null["file_sha256"], no_source)).as_py() or 0
            missing_kind += pc.sum(pc.or_(null["charge_kind"], null["hospital_key"])).as_py() or 0
    return total, missing_columns, missing_lineage, missing_kind


def _lineage_outcome(total: int, missing_columns: list[str], missing_lineage: int | None,
                     missing_kind: int | None) -> CheckOutcome:
    import json

    return CheckOutcome(
        passed=total > 0 and not missing_columns and missing_lineage == 0 and missing_kind == 0,
        metadata={
            "rows": total,
            "rows_without_lineage": missing_lineage,
            "rows_without_kind": missing_kind,
            # a JSON string, as the check has always shown it
            "missing_columns": json.dumps(missing_columns),
        },
    )


def conformance_reports_files_conform(reports: list[dict]) -> CheckOutcome:
    """Passes when every current file was validated and conforms to the CMS rules (a warning:
    non-conformance is reported in the compliance marts, prices are not held back)."""
    failing = [r for r in reports if not r.get("valid")]
    return CheckOutcome(
        passed=bool(reports) and not failing,
        metadata={
            "files": len(reports),
            "non_conformant_files": len(failing),
            "examples": [
                {
                    "url": r.get("url"),
                    "download_status": r.get("download_status"),
                    "errors_by_rule": r.get("errors_by_rule"),
                    "first_errors": [f for f in r.get("findings", []) if f.get("severity") == "error"][:5],
                }
                for r in failing[:MAX_EXAMPLES]
            ],
        },
    )


def conformance_reports_no_cms_alerts(reports: list[dict]) -> CheckOutcome:
    """Passes when no current file raised a CMS alert (or one of the validator's own)."""
    alerts: dict[str, int] = {}
    for r in reports:
        for rule, n in (r.get("alerts_by_rule") or {}).items():
            alerts[rule] = alerts.get(rule, 0) + n
    examples = [f for r in reports for f in r.get("findings", []) if f.get("severity") == "alert"][:MAX_EXAMPLES]
    return CheckOutcome(
        passed=not alerts,
        metadata={"alerts": sum(alerts.values()), "alerts_by_rule": alerts, "examples": examples},
    )
