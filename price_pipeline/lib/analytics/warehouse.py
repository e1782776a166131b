"""Facts about the analytics warehouse (the DuckDB file dbt builds) that decide how to build it."""

from __future__ import annotations

from pathlib import Path

# Written by every build since the per-hospital tables became incremental (dbt_analytics,
# macros/incremental_by_hospital.sql); a warehouse without it holds tables of the older layout.
FINGERPRINT_TABLE = "int_hospital_fingerprints"


def needs_full_refresh(warehouse: str | Path) -> bool:
    """True when an incremental ``dbt build`` cannot start from this warehouse: it exists but was
    built before the per-hospital tables were incremental (no fingerprint table), so its
    intermediate tables lack the ``hospital_id`` / ``fingerprint`` columns an incremental run
    compares. A missing warehouse needs no flag (dbt's first build is a full one)."""
    import duckdb

    path = Path(warehouse)
    if not path.exists():
        return False
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
            [FINGERPRINT_TABLE],
        ).fetchone()[0]
    return found == 0
