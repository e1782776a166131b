"""Table-wide checks in SQL over every hospital's prices at once (DuckDB over the lake's Parquet).

Each check returns a :class:`TableCheck`: the number of flagged rows, up to ``EXAMPLES`` examples
with lineage (hospital, file sha256, source row / JSON path) and the flagged rows themselves for
the ``quality/price_anomalies.parquet`` table. The checks warn; none of them blocks.

* ``duplicate_prices`` — the same fact (hospital, file, item, payer/plan, charge kind) published
  more than once from different source rows/paths; ``conflicting`` counts those with different values.
  The item includes every published code (``codes``): two drugs that differ only in their NDC
  are different items, not duplicates.
* ``placeholder_values`` — amounts or percentages that are placeholders rather than prices: an
  integer part of six or more nines (999999, 999999999, 9999999.99 — CMS' "nine 9s" and its
  cousins) or a negative value.
* ``negotiated_above_gross`` — a payer's negotiated dollar rate above the same item's gross
  charge in the same file (gross > 0).
* ``extreme_outliers`` — per code × code type × setting × charge kind (gross, negotiated dollar),
  each hospital's median is compared with the other hospitals' by robust z-score
  ``0.6745 · (x − median) / MAD`` (Iglewicz–Hoaglin); ``|z| > 3.5`` with at least
  ``MIN_HOSPITALS`` hospitals in the cell (and MAD > 0) is flagged.
* ``extreme_amounts`` — any dollar amount above a ceiling (``extreme_amount_ceiling``, setting
  ``PRICE_PIPELINE_EXTREME_AMOUNT_CEILING``, default $10 M: above the gross charge of the most
  expensive inpatient stays) in any hospital, whatever its code or cell, so a lone $310 M rate is
  caught even where no other hospital prices the code; the items are listed (``stats["items"]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from price_pipeline.lib.analytics.exports import quote_identifier

EXAMPLES = 10
MIN_HOSPITALS = 5
Z_THRESHOLD = 3.5
MAX_STORED_ROWS = 100_000  # flagged rows kept per check in price_anomalies.parquet
EXTREME_AMOUNT_CEILING = 10_000_000.0  # dollars; Settings.extreme_amount_ceiling overrides it
MAX_LISTED_ITEMS = 50

# The item: the same columns dbt's item_key uses, within one file version.
ITEM_COLUMNS = (
    "hospital_key", "file_sha256", "description", "primary_code", "primary_code_type", "setting",
    "billing_class", "modifiers", "drug_unit_of_measurement", "drug_type_of_measurement", "codes",
)
FACT_COLUMNS = (*ITEM_COLUMNS, "payer_name", "plan_name", "charge_kind", "methodology")

# Columns of every flagged row (the anomalies table).
ANOMALY_COLUMNS = (
    "check_name", "hospital_key", "file_sha256", "source_row", "source_path", "primary_code",
    "primary_code_type", "charge_kind", "payer_name", "plan_name", "amount", "detail",
)


@dataclass
class TableCheck:
    name: str
    description: str
    flagged: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.flagged == 0


def _cols(names) -> str:
    return ", ".join(quote_identifier(c) for c in names)


def _same(names, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote_identifier(c)} IS NOT DISTINCT FROM {right}.{quote_identifier(c)}"
                        for c in names)


def _flag_sql(name: str, *, ceiling: float = EXTREME_AMOUNT_CEILING) -> str:
    """SELECT producing ANOMALY_COLUMNS for the named check over the view ``prices``."""
    q = quote_identifier
    if name == "extreme_amounts":
        return f"""
            SELECT '{name}' AS check_name, hospital_key, file_sha256, source_row, source_path, primary_code,
                   primary_code_type, charge_kind, payer_name, plan_name, amount,
                   'amount ' || round(amount, 2) || ' above the ceiling ' || {float(ceiling)!r}
                   || ': ' || coalesce(description, '(no description)') AS detail
            FROM prices
            WHERE amount IS NOT NULL AND isfinite(amount) AND amount > {float(ceiling)!r}
        """  # noqa: S608 - built from constants and a float
    if name == "duplicate_prices":
        return f"""
            WITH groups AS (
                SELECT {_cols(FACT_COLUMNS)}, count(*) AS n,
                       count(DISTINCT coalesce(amount::VARCHAR, '') || '|' || coalesce(percentage::VARCHAR, '')
                             || '|' || coalesce(value_text, '')) AS n_values
                FROM prices GROUP BY ALL HAVING count(*) > 1
            )
            SELECT '{name}' AS check_name, p.hospital_key, p.file_sha256, p.source_row, p.source_path,
                   p.primary_code, p.primary_code_type, p.charge_kind, p.payer_name, p.plan_name, p.amount,
                   'published ' || g.n || ' times' || CASE WHEN g.n_values > 1
                       THEN ' with ' || g.n_values || ' different values' ELSE '' END AS detail
            FROM prices AS p JOIN groups AS g ON {_same(FACT_COLUMNS, 'p', 'g')}
        """  # noqa: S608 - built from constants and quoted identifiers
    if name == "placeholder_values":
        nines = "regexp_matches(CAST(trunc(abs({v})) AS HUGEINT)::VARCHAR, '^9{{6,}}$')"
        return f"""
            SELECT '{name}' AS check_name, hospital_key, file_sha256, source_row, source_path, primary_code,
                   primary_code_type, charge_kind, payer_name, plan_name, amount,
                   CASE WHEN coalesce(amount, percentage) < 0 THEN 'negative value'
                        ELSE 'placeholder ' || coalesce(amount, percentage)::VARCHAR END AS detail
            FROM prices
            WHERE (amount IS NOT NULL AND isfinite(amount) AND ({nines.format(v='amount')} OR amount < 0))
               OR (percentage IS NOT NULL AND isfinite(percentage)
                   AND ({nines.format(v='percentage')} OR percentage < 0))
        """  # noqa: S608 - built from constants and quoted identifiers
    if name == "negotiated_above_gross":
        return f"""
            WITH gross AS (
                SELECT {_cols(ITEM_COLUMNS)}, max(amount) AS gross_charge
                FROM prices WHERE charge_kind = 'gross' AND amount > 0 GROUP BY ALL
            )
            SELECT '{name}' AS check_name, p.hospital_key, p.file_sha256, p.source_row, p.source_path,
                   p.primary_code, p.primary_code_type, p.charge_kind, p.payer_name, p.plan_name, p.amount,
                   'negotiated ' || p.amount || ' > gross ' || g.gross_charge
                   || ' (x' || round(p.amount / g.gross_charge, 2) || ')' AS detail
            FROM prices AS p JOIN gross AS g ON {_same(ITEM_COLUMNS, 'p', 'g')}
            WHERE p.charge_kind = 'negotiated_dollar' AND p.amount > g.gross_charge
        """  # noqa: S608 - built from constants and quoted identifiers
    if name == "extreme_outliers":
        cell = ("primary_code", "primary_code_type", "setting", "charge_kind")
        return f"""
            WITH per_hospital AS (
                SELECT {_cols(cell)}, hospital_key, median(amount) AS value
                FROM prices
                WHERE charge_kind IN ('gross', 'negotiated_dollar') AND amount > 0 AND isfinite(amount)
                  AND primary_code IS NOT NULL
                GROUP BY ALL
            ),
            centre AS (
                SELECT {_cols(cell)}, median(value) AS med, count(*) AS n_hospitals
                FROM per_hospital GROUP BY ALL HAVING count(*) >= {MIN_HOSPITALS}
            ),
            spread AS (
                SELECT {", ".join(f"h.{q(c)}" for c in cell)}, c.med, c.n_hospitals,
                       median(abs(h.value - c.med)) AS mad
                FROM per_hospital AS h JOIN centre AS c ON {_same(cell, 'h', 'c')}
                GROUP BY ALL
            ),
            scored AS (
                SELECT h.*, s.med, s.mad, s.n_hospitals, 0.6745 * (h.value - s.med) / s.mad AS z
                FROM per_hospital AS h JOIN spread AS s ON {_same(cell, 'h', 's')}
                WHERE s.mad > 0
            )
            SELECT '{name}' AS check_name, s.hospital_key, NULL::VARCHAR AS file_sha256,
                   NULL::BIGINT AS source_row, NULL::VARCHAR AS source_path, s.primary_code,
                   s.primary_code_type, s.charge_kind, NULL::VARCHAR AS payer_name, NULL::VARCHAR AS plan_name,
                   s.value AS amount,
                   'hospital median ' || round(s.value, 2) || ' vs median of ' || s.n_hospitals
                   || ' hospitals ' || round(s.med, 2) || ', robust z ' || round(s.z, 1) AS detail
            FROM scored AS s WHERE abs(s.z) > {Z_THRESHOLD}
        """  # noqa: S608 - built from constants and quoted identifiers
    raise KeyError(name)


CHECKS: dict[str, str] = {
    "duplicate_prices": "The same price fact published more than once (different source rows).",
    "placeholder_values": "Amounts/percentages that are placeholders (six or more 9s) or negative.",
    "negotiated_above_gross": "Negotiated dollar rate above the item's gross charge in the same file.",
    "extreme_outliers": "A hospital's median for a code far from other hospitals' (robust z-score > 3.5).",
    "extreme_amounts": "A dollar amount above the configured ceiling (default $10 M), in any cell; items listed.",
}


def run_table_checks(con, prices_source: str, *,
                     extreme_amount_ceiling: float = EXTREME_AMOUNT_CEILING) -> tuple[list[TableCheck], Any]:
    """Run every check on ``prices_source`` (a FROM-able SQL expression, e.g. ``read_parquet(...)``).

    Returns the checks and an Arrow table of the flagged rows (ANOMALY_COLUMNS, capped per check).
    """
    con.execute(f"CREATE OR REPLACE TEMP VIEW prices AS SELECT * FROM {prices_source}")  # noqa: S608
    con.execute(
        "CREATE OR REPLACE TEMP TABLE anomalies (check_name VARCHAR, hospital_key VARCHAR, file_sha256 VARCHAR, "
        "source_row BIGINT, source_path VARCHAR, primary_code VARCHAR, primary_code_type VARCHAR, "
        "charge_kind VARCHAR, payer_name VARCHAR, plan_name VARCHAR, amount DOUBLE, detail VARCHAR)"
    )
    results = []
    order = "hospital_key, file_sha256, source_row NULLS LAST, source_path NULLS LAST, primary_code, charge_kind"
    for name, description in CHECKS.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE flagged AS {_flag_sql(name, ceiling=extreme_amount_ceiling)}")
        flagged = con.execute("SELECT count(*) FROM flagged").fetchall()[0][0]
        cursor = con.execute(f"SELECT * FROM flagged ORDER BY {order} LIMIT {EXAMPLES}")  # noqa: S608
        columns = [d[0] for d in cursor.description]
        examples = [
            {k: v for k, v in zip(columns, row, strict=True) if v is not None and k != "check_name"}
            for row in cursor.fetchall()
        ]
        by_hospital = dict(
            con.execute("SELECT hospital_key, count(*) FROM flagged GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20").fetchall()
        )
        con.execute(f"INSERT INTO anomalies SELECT * FROM flagged ORDER BY {order} LIMIT {MAX_STORED_ROWS}")  # noqa: S608
        stats: dict[str, Any] = {"by_hospital": by_hospital}
        if name == "extreme_amounts":
            stats["ceiling"] = extreme_amount_ceiling
            stats["items"] = [
                dict(zip(("hospital_key", "primary_code", "primary_code_type", "detail", "max_amount"), row,
                         strict=True))
                for row in con.execute(
                    "SELECT hospital_key, primary_code, primary_code_type, any_value(detail), max(amount) "
                    "FROM flagged GROUP BY ALL ORDER BY max(amount) DESC LIMIT ?", [MAX_LISTED_ITEMS]
                ).fetchall()
            ]
        results.append(TableCheck(name, description, flagged, examples, stats))
    rows = con.execute("SELECT count(*) FROM prices").fetchall()[0][0]
    hospitals = con.execute("SELECT count(DISTINCT hospital_key) FROM prices").fetchall()[0][0]
    for r in results:
        r.stats.update(rows_checked=rows, hospitals_checked=hospitals)
    return results, con.sql("SELECT * FROM anomalies").to_arrow_table()
