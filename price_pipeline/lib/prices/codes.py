"""Billing-code cleaning by code type, as DuckDB SQL macros (one definition for every caller).

The normaliser (:mod:`price_pipeline.lib.prices.normalize`) registers :data:`MACROS_SQL` on its
connection and cleans each distinct ``{code, type}`` pair once before choosing the primary code, so
``prices.codes``, ``primary_code`` and the dbt codes bridge all carry cleaned codes. The
source-faithful codes stay in ``mrf_parsed``.

Code types (``pp_clean_code_type``): trimmed, upper-cased, inner whitespace collapsed, and a
few spellings seen in the wild mapped to the CMS value: ``HCPC`` -> ``HCPCS``, ``MSDRG`` /
``MS DRG`` -> ``MS-DRG``, ``APRDRG`` / ``APR DRG`` -> ``APR-DRG``, ``REV`` / ``REV CODE`` /
``REVENUE`` / ``REVENUE CODE`` -> ``RC``.

Codes (``pp_clean_code(code, type)``), by cleaned type:

* ``CPT``, ``HCPCS``: whitespace removed, upper-cased (five characters); an all-digit code of
  1-4 digits is left-padded with zeros (a spreadsheet dropped them: ``100`` -> ``00100``); a
  code written with its modifier (``99213-26``) keeps the five-character code.
* ``MS-DRG``: a ``DRG`` / ``MS-DRG`` prefix is dropped and the number left-padded to three
  digits (``DRG 4`` -> ``004``); a four-digit form with a leading zero loses it
  (``0470`` -> ``470``).
* ``RC`` (revenue code): a number of 1-4 digits left-padded to four (``450`` -> ``0450``).
* ``DRG`` / ``CMS-DRG`` (labels hospitals use for MS-DRG): cleaned like MS-DRG; the label is kept.
* ``NDC``: to the 11-digit 5-4-2 form without separators. A trailing bracketed or
  parenthesised suffix (a package or chargemaster id: ``43598-426-60 [359385]``) and the
  ``N4`` qualifier of claim formats are stripped first. Hyphenated (or space-separated) 4-4-2,
  5-3-2 and 5-4-1 forms are padded segment by segment (``0002-1433-80`` -> ``00002143380``);
  11 digits are kept. A bare 10-digit NDC is ambiguous (which segment lost its zero is
  unknown) and is kept as published.
* ``LOCAL``: kept exactly as published.
* any other type (APR-DRG, APC, ICD, CDT, HIPPS, EAPG, CDM, ...): trimmed and upper-cased,
  except ``CDM`` (a hospital's own chargemaster number), kept trimmed only.

A value that still does not have the expected shape after cleaning is kept (cleaned), never
dropped: ``pp_code_well_formed(code, type)`` (:data:`WELL_FORMED_PATTERNS`) says which codes
have it (the dbt bridge exposes it as ``is_well_formed``).

Harmonised code system (``pp_code_system(code, type)``, used by the dbt cells so that one code
is one cell whatever label the hospital gave it), decided by the cleaned code's shape:

* a CPT- or HCPCS-labelled code of five digits, or four digits and ``F``/``T``/``U`` (CPT
  category II and III, PLA) is ``CPT`` (HCPCS Level I); a letter and four digits is ``HCPCS``
  (Level II); any other shape keeps its published type (it is malformed);
* DRG families: ``MS-DRG`` and the bare ``DRG`` / ``CMS-DRG`` labels are ``MS-DRG``;
  ``APR-DRG`` and the other DRG systems (``TRIS-DRG``, ``AP-DRG``, ...) keep their own label;
* every other type keeps its cleaned label.

Primary code (``pp_code_rank(code, type)``, lowest first): a well-formed code always ranks
before a malformed one, then the type priority of :data:`TYPE_PRIORITY` (CPT > HCPCS > MS-DRG >
APR-DRG > other DRGs > NDC > CDT > RC > any other type > LOCAL). The normaliser takes the first
code by this rank (ties keep the file's order).
"""

from __future__ import annotations

import duckdb

# Whitespace class used in patterns (space, tab, CR, LF, no-break space).
_WS_CHARS = r"\s\x{00A0}"
_WS = f"[{_WS_CHARS}]"

TYPE_SYNONYMS = {
    "HCPC": "HCPCS",
    "MSDRG": "MS-DRG",
    "MS DRG": "MS-DRG",
    "APRDRG": "APR-DRG",
    "APR DRG": "APR-DRG",
    "REV": "RC",
    "REV CODE": "RC",
    "REVENUE": "RC",
    "REVENUE CODE": "RC",
}

_synonym_cases = " ".join(f"WHEN '{raw}' THEN '{canonical}'" for raw, canonical in TYPE_SYNONYMS.items())

MACROS_SQL = f"""
CREATE OR REPLACE MACRO pp_norm_code_type(t) AS
  nullif(regexp_replace(upper(trim(t)), '{_WS}+', ' ', 'g'), '');

CREATE OR REPLACE MACRO pp_clean_code_type(t) AS
  CASE pp_norm_code_type(t) {_synonym_cases} ELSE pp_norm_code_type(t) END;

CREATE OR REPLACE MACRO pp_cpt_shape(v) AS
  CASE
    WHEN v IS NULL OR v = '' THEN NULL
    WHEN regexp_full_match(v, '[0-9]{{1,4}}') THEN lpad(v, 5, '0')
    WHEN regexp_full_match(v, '[0-9A-Z]{{5}}-[0-9A-Z]{{2}}') THEN left(v, 5)
    ELSE v END;
CREATE OR REPLACE MACRO pp_clean_cpt(c) AS pp_cpt_shape(upper(regexp_replace(c, '{_WS}+', '', 'g')));

CREATE OR REPLACE MACRO pp_drg_shape(v) AS
  CASE
    WHEN v IS NULL OR v = '' THEN NULL
    WHEN regexp_full_match(v, '[0-9]{{1,3}}') THEN lpad(v, 3, '0')
    WHEN regexp_full_match(v, '0[0-9]{{3}}') THEN right(v, 3)
    ELSE v END;
CREATE OR REPLACE MACRO pp_clean_drg(c) AS
  pp_drg_shape(regexp_replace(upper(trim(c)), '^(MS-?DRG|DRG){_WS}*[-:#]?{_WS}*', ''));

CREATE OR REPLACE MACRO pp_rc_shape(v) AS
  CASE
    WHEN v IS NULL OR v = '' THEN NULL
    WHEN regexp_full_match(v, '[0-9]{{1,4}}') THEN lpad(v, 4, '0')
    ELSE v END;
CREATE OR REPLACE MACRO pp_clean_rc(c) AS pp_rc_shape(upper(trim(c)));

CREATE OR REPLACE MACRO pp_ndc_shape(v) AS
  CASE
    WHEN v IS NULL OR v = '' THEN NULL
    WHEN regexp_full_match(v, '[0-9]{{4,5}}[-{_WS_CHARS}][0-9]{{3,4}}[-{_WS_CHARS}][0-9]{{1,2}}') THEN
      lpad(regexp_extract(v, '^([0-9]+)[^0-9]+([0-9]+)[^0-9]+([0-9]+)$', 1), 5, '0')
      || lpad(regexp_extract(v, '^([0-9]+)[^0-9]+([0-9]+)[^0-9]+([0-9]+)$', 2), 4, '0')
      || lpad(regexp_extract(v, '^([0-9]+)[^0-9]+([0-9]+)[^0-9]+([0-9]+)$', 3), 2, '0')
    ELSE v END;
CREATE OR REPLACE MACRO pp_ndc_unwrap(v) AS
  trim(regexp_replace(regexp_replace(v, '{_WS}*[\\[(].*$', ''), '^N4{_WS}*', ''));
CREATE OR REPLACE MACRO pp_clean_ndc(c) AS pp_ndc_shape(nullif(pp_ndc_unwrap(trim(c)), ''));

CREATE OR REPLACE MACRO pp_clean_code(c, t) AS
  CASE pp_clean_code_type(t)
    WHEN 'CPT' THEN pp_clean_cpt(c)
    WHEN 'HCPCS' THEN pp_clean_cpt(c)
    WHEN 'MS-DRG' THEN pp_clean_drg(c)
    WHEN 'DRG' THEN pp_clean_drg(c)
    WHEN 'CMS-DRG' THEN pp_clean_drg(c)
    WHEN 'RC' THEN pp_clean_rc(c)
    WHEN 'NDC' THEN pp_clean_ndc(c)
    WHEN 'LOCAL' THEN c
    WHEN 'CDM' THEN nullif(trim(c), '')
    ELSE nullif(upper(trim(c)), '')
  END;
"""

# Expected shape of a cleaned code, by cleaned type (types not listed have no fixed shape).
WELL_FORMED_PATTERNS = {
    "CPT": "[0-9A-Z]{5}",
    "HCPCS": "[0-9A-Z]{5}",
    "MS-DRG": "[0-9]{3}",
    "DRG": "[0-9]{3}",
    "CMS-DRG": "[0-9]{3}",
    "RC": "[0-9]{4}",
    "NDC": "[0-9]{11}",
}

_shape_cases = " ".join(f"WHEN '{t}' THEN regexp_full_match(code, '{p}')" for t, p in WELL_FORMED_PATTERNS.items())
WELL_FORMED_SQL = f"CASE code_type {_shape_cases} ELSE code IS NOT NULL END"

# Type priority of the primary code, lower first; other DRG systems rank 5, other types 9.
TYPE_PRIORITY = {"CPT": 1, "HCPCS": 2, "MS-DRG": 3, "APR-DRG": 4, "NDC": 6, "CDT": 7, "RC": 8, "LOCAL": 10}
_prio_cases = " ".join(f"WHEN '{t}' THEN {p}" for t, p in TYPE_PRIORITY.items())

# Macros over cleaned codes and types (see the module docstring).
MACROS_SQL += f"""
CREATE OR REPLACE MACRO pp_code_well_formed(code, code_type) AS
  coalesce({WELL_FORMED_SQL}, false);

CREATE OR REPLACE MACRO pp_code_rank(code, code_type) AS
  CASE WHEN pp_code_well_formed(code, code_type) THEN 0 ELSE 100 END
  + CASE code_type {_prio_cases}
      ELSE CASE WHEN code_type LIKE '%DRG%' THEN 5 ELSE 9 END END;

CREATE OR REPLACE MACRO pp_code_system(code, code_type) AS
  CASE
    WHEN code_type IN ('CPT', 'HCPCS') THEN
      CASE
        WHEN regexp_full_match(code, '[0-9]{{4}}[0-9FTU]') THEN 'CPT'
        WHEN regexp_full_match(code, '[A-Z][0-9]{{4}}') THEN 'HCPCS'
        ELSE code_type END
    WHEN code_type IN ('MS-DRG', 'DRG', 'CMS-DRG') THEN 'MS-DRG'
    ELSE code_type
  END;
"""


def register(con: duckdb.DuckDBPyConnection, *, schema: str | None = None) -> None:
    """Create the ``pp_*`` macros on a DuckDB connection.

    ``schema`` (``catalog.schema``) creates them there instead of the default schema: the dbt
    plugin puts them in an in-memory database attached once per dbt process, which every cursor
    of the process sees and the warehouse file does not keep (price_pipeline.lib.analytics.dbt_plugin).
    The macros call each other unqualified, so a connection that creates or calls them in
    ``schema`` must have it on its search_path.
    """
    con.execute(MACROS_SQL.replace("CREATE OR REPLACE MACRO ", f"CREATE OR REPLACE MACRO {schema}.") if schema
                else MACROS_SQL)


def _per_cleaned_pair(pairs: list[tuple[str | None, str | None]], columns: str) -> list[tuple]:
    """``columns`` (SQL over the cleaned ``code`` and ``code_type``) for each ``(code, type)`` pair,
    in input order, with the macros the normaliser and dbt use."""
    con = duckdb.connect()
    try:
        register(con)
        return [
            tuple(row)
            for row in con.execute(
                f"SELECT {columns} FROM ("  # noqa: S608 - columns are this module's constants
                " SELECT pp_clean_code(c.code, c.type) AS code, pp_clean_code_type(c.type) AS code_type, i"
                " FROM (SELECT unnest($pairs) AS c, generate_subscripts($pairs, 1) AS i)) ORDER BY i",
                {"pairs": [{"code": c, "type": t} for c, t in pairs]},
            ).fetchall()
        ]
    finally:
        con.close()


def clean_codes(pairs: list[tuple[str | None, str | None]]) -> list[tuple[str | None, str | None]]:
    """Clean ``(code, type)`` pairs with the same SQL the normaliser runs: ``[(code, type), ...]``."""
    return _per_cleaned_pair(pairs, "code, code_type")


def harmonise_codes(pairs: list[tuple[str | None, str | None]]) -> list[tuple[str | None, str | None, bool]]:
    """``(code, type)`` pairs -> ``(cleaned code, harmonised system, well formed)``, as dbt's cells."""
    return _per_cleaned_pair(pairs, "code, pp_code_system(code, code_type), pp_code_well_formed(code, code_type)")
