"""Header handling: CSV rows 1-2 (file-level fields), row 3 (column layout), JSON top level.

Column names are normalised before matching: lower case, stripped, whitespace runs collapsed
and spaces around ``|`` removed, so ``Code | 1 | Type`` matches ``code|1|type``. Payer and
plan names of wide headers are taken from the *raw* header, only stripped of surrounding
whitespace, so they stay exactly as published.

Wide payer columns are recognised by vocabulary, never by counting pipes:
``standard_charge|<payer>|<plan>|{negotiated_dollar,negotiated_percentage,negotiated_algorithm,
methodology}`` (known prefix *and* suffix) and ``{median_amount,10th_percentile,90th_percentile,
count,estimated_amount,additional_payer_notes}|<payer>|<plan>`` (known prefix). The middle part
is ``payer|plan``. The spec forbids pipes inside names; if the middle still has more than two
parts the first part is the payer and the rest (re-joined with ``|``) the plan, with an
``ambiguous_payer_plan`` finding; a single part is a payer without plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from price_pipeline.lib.lake.text import clean_json

from .values import parse_bool, parse_date

_WS_PIPE = re.compile(r"\s*\|\s*")
_WS = re.compile(r"\s+")



def _numeric_key(k: str) -> tuple[int, str]:
    """Sort key ordering ASCII digit strings by value (anything else as 0)."""
    if k.isascii() and k.isdigit():
        k = k.lstrip("0")
        return len(k), k
    return 0, ""

def norm_name(name: str) -> str:
    """Normalised column name: lower, stripped, no spaces around pipes, single spaces."""
    s = (name or "").replace("\ufeff", "").strip().lower()
    s = _WS_PIPE.sub("|", s)
    return _WS.sub(" ", s)


# Normalised tall/base column name -> PARSED_SCHEMA field.
BASE_COLUMNS = {
    "description": "description",
    "setting": "setting",
    "billing_class": "billing_class",
    "modifiers": "modifiers",
    "drug_unit_of_measurement": "drug_unit_of_measurement",
    "drug_type_of_measurement": "drug_type_of_measurement",
    "standard_charge|gross": "gross_charge",
    "standard_charge|discounted_cash": "discounted_cash",
    "standard_charge|min": "minimum",
    "standard_charge|minimum": "minimum",
    "standard_charge|max": "maximum",
    "standard_charge|maximum": "maximum",
    "payer_name": "payer_name",
    "plan_name": "plan_name",
    "standard_charge|negotiated_dollar": "negotiated_dollar",
    "standard_charge|negotiated_percentage": "negotiated_percentage",
    "standard_charge|negotiated_algorithm": "negotiated_algorithm",
    "estimated_amount": "estimated_amount",
    "median_amount": "median_amount",
    "10th_percentile": "percentile_10th",
    "90th_percentile": "percentile_90th",
    "count": "count",
    "standard_charge|methodology": "methodology",
    "additional_payer_notes": "additional_payer_notes",
    "additional_generic_notes": "additional_generic_notes",
}
PAYER_FIELDS = (
    "negotiated_dollar", "negotiated_percentage", "negotiated_algorithm", "estimated_amount",
    "median_amount", "percentile_10th", "percentile_90th", "count", "methodology", "additional_payer_notes",
)
# Wide: standard_charge|<payer>|<plan>|<suffix>
WIDE_SUFFIX = {
    "negotiated_dollar": "negotiated_dollar",
    "negotiated_percentage": "negotiated_percentage",
    "negotiated_algorithm": "negotiated_algorithm",
    "methodology": "methodology",
}
# Wide: <prefix>|<payer>|<plan>
WIDE_PREFIX = {
    "median_amount": "median_amount",
    "10th_percentile": "percentile_10th",
    "90th_percentile": "percentile_90th",
    "count": "count",
    "estimated_amount": "estimated_amount",
    "additional_payer_notes": "additional_payer_notes",
}
NUMERIC_FIELDS = frozenset({
    "drug_unit_of_measurement", "gross_charge", "discounted_cash", "minimum", "maximum",
    "negotiated_dollar", "negotiated_percentage", "estimated_amount", "median_amount",
    "percentile_10th", "percentile_90th",
})
_CODE_RE = re.compile(r"^code\|(\d+|\[i\])$")
_CODE_TYPE_RE = re.compile(r"^code\|(\d+|\[i\])\|type$")


@dataclass
class Group:
    """The columns of one payer/plan in a wide file."""

    payer: str | None
    plan: str | None
    cols: dict[str, int] = field(default_factory=dict)  # field -> column index
    headers: dict[str, str] = field(default_factory=dict)  # field -> raw header


@dataclass
class Layout:
    """Where each field is in the CSV columns."""

    fmt: str  # "csv_tall" | "csv_wide"
    ncols: int
    base: dict[str, int]
    codes: list[tuple[int | None, int | None]]
    groups: list[Group]
    raw_names: list[str]


def looks_like_column_row(row: list[str]) -> bool:
    """True when ``row`` is the data column header row (row 3 of a CMS CSV)."""
    names = {norm_name(c) for c in row}
    if "description" not in names:
        return False
    known = sum(1 for n in names if n in BASE_COLUMNS or _CODE_RE.match(n) or n.startswith("standard_charge|"))
    return known >= 2


def classify_columns(raw: list[str], findings) -> Layout:
    """Build the :class:`Layout` of a row-3 header; unknown columns give an info finding."""
    base: dict[str, int] = {}
    codes: dict[str, list] = {}
    groups: dict[str, Group] = {}
    unknown = []
    for i, name in enumerate(raw):
        n = norm_name(name)
        if not n:
            continue
        if n in BASE_COLUMNS:
            fld = BASE_COLUMNS[n]
            if fld in base:
                findings.add("duplicate_column", "warning", f"column {name!r} appears more than once; first kept",
                             column=name)
            else:
                base[fld] = i
            continue
        m = _CODE_RE.match(n)
        if m:
            codes.setdefault(m.group(1), [None, None])[0] = i
            continue
        m = _CODE_TYPE_RE.match(n)
        if m:
            codes.setdefault(m.group(1), [None, None])[1] = i
            continue
        parts = [p.strip() for p in name.split("|")]
        low = [p.lower() for p in parts]
        fld = None
        middle: list[str] = []
        if len(parts) >= 3 and low[0] == "standard_charge" and low[-1] in WIDE_SUFFIX:
            fld, middle = WIDE_SUFFIX[low[-1]], parts[1:-1]
        elif len(parts) >= 2 and low[0] in WIDE_PREFIX:
            fld, middle = WIDE_PREFIX[low[0]], parts[1:]
        if fld is None:
            unknown.append(name)
            continue
        key = "|".join(middle)
        g = groups.get(key)
        if g is None:
            if len(middle) == 2:
                payer, plan = middle
            elif len(middle) == 1:
                payer, plan = middle[0], None
                findings.add("payer_without_plan", "warning", f"wide header {name!r} has no plan name", column=name)
            else:
                payer, plan = middle[0], "|".join(middle[1:])
                findings.add("ambiguous_payer_plan", "warning",
                             f"wide header {name!r} has pipes inside payer/plan; payer={payer!r} plan={plan!r}",
                             column=name)
            g = groups[key] = Group(payer or None, plan or None)
        if fld in g.cols:
            findings.add("duplicate_column", "warning", f"column {name!r} appears more than once; first kept",
                         column=name)
        else:
            g.cols[fld] = i
            g.headers[fld] = name
    for name in unknown[:50]:
        findings.add("unknown_column", "info", f"column {name!r} is not a CMS data element; ignored", column=name)
    # numeric order without int() (a hostile "code | 999…9" passes Python's 4,300-digit int limit)
    code_list = [tuple(codes[k]) for k in sorted(codes, key=_numeric_key)]
    fmt = "csv_wide" if groups else "csv_tall"
    if groups and ("payer_name" in base or "plan_name" in base):
        findings.add("mixed_tall_wide", "warning", "file has both payer_name columns and wide payer columns")
    if "description" not in base:
        findings.add("missing_column", "error", "no description column")
    return Layout(fmt, len(raw), base, code_list, list(groups.values()), list(raw))


def _split_pipes(v: str | None) -> list[str] | None:
    if v is None or not str(v).strip():
        return None
    return [p.strip() for p in str(v).split("|") if p.strip()]


def _date_str(v) -> str | None:
    d = parse_date(v)
    if d is not None:
        return d.isoformat()
    s = None if v is None else str(v).strip()
    return s or None


def empty_header() -> dict:
    """Header dict with every key present."""
    return {
        "hospital_name": None, "last_updated_on": None, "version": None, "location_name": None,
        "hospital_address": None, "license_number": None, "license_state": None, "type_2_npi": None,
        "attestation": None, "attester_name": None, "general_contract_provisions": None,
        "financial_aid_policy": None,
    }


def parse_csv_header(row1: list[str], row2: list[str], findings) -> dict:
    """File-level fields from CSV rows 1 (names) and 2 (values)."""
    h = empty_header()
    extra = {}
    for i, raw_name in enumerate(row1):
        name = norm_name(raw_name)
        if not name:
            continue
        val = row2[i].strip() if i < len(row2) else ""
        val = val or None
        if name in ("hospital_name", "version", "attester_name", "general_contract_provisions",
                    "financial_aid_policy"):
            h[name] = val
        elif name == "last_updated_on":
            h[name] = _date_str(val)
        elif name in ("location_name", "hospital_location"):
            h["location_name"] = _split_pipes(val)
        elif name == "hospital_address":
            h["hospital_address"] = _split_pipes(val)
        elif name == "type_2_npi":
            h["type_2_npi"] = _split_pipes(val)
        elif name.startswith("license_number"):
            h["license_number"] = val
            parts = raw_name.split("|")
            state = parts[1].strip() if len(parts) > 1 else None
            h["license_state"] = None if not state or state.startswith("[") else state.upper()
        elif name.startswith("to the best of its knowledge"):
            h["attestation"] = parse_bool(val)
        else:
            extra[name] = val
    if extra:
        h["other"] = extra
    return clean_header(h, findings)


def clean_header(h: dict, findings=None) -> dict:
    """The header with NUL characters and lone surrogates removed from every text value.

    Neither can be stored everywhere the header goes (the registry's claims, Parquet, the
    warehouse); each cleaned field gets a ``text_cleaned`` warning naming it.
    """
    cleaned, fixes = clean_json(h)
    if findings is not None:
        for fix in fixes:
            findings.add("text_cleaned", "warning", f"file header {fix.field}: {fix.describe()}", column=fix.field)
    return cleaned


def json_header(top: dict, findings=None) -> dict:
    """File-level fields from the top-level scalars/objects of a JSON MRF (text cleaned, see
    :func:`clean_header`; the fixes are recorded in ``findings`` when given)."""
    h = empty_header()
    h["hospital_name"] = _s(top.get("hospital_name"))
    h["last_updated_on"] = _date_str(top.get("last_updated_on"))
    h["version"] = _s(top.get("version"))
    loc = top.get("location_name", top.get("hospital_location"))
    h["location_name"] = _list(loc)
    h["hospital_address"] = _list(top.get("hospital_address"))
    h["type_2_npi"] = _list(top.get("type_2_npi"))
    lic = top.get("license_information")
    if isinstance(lic, dict):
        h["license_number"] = _s(lic.get("license_number"))
        h["license_state"] = _s(lic.get("state"))
    att = top.get("attestation") or top.get("affirmation")
    if isinstance(att, dict):
        h["attestation"] = parse_bool(att.get("confirm_attestation", att.get("confirm_affirmation")))
        h["attester_name"] = _s(att.get("attester_name"))
    gcp = top.get("general_contract_provisions")
    if isinstance(gcp, list):
        parts = []
        for p in gcp:
            if isinstance(p, dict):
                who = " / ".join(x for x in (_s(p.get("payer_name")), _s(p.get("plan_name"))) if x)
                txt = _s(p.get("provisions"))
                parts.append(f"{who}: {txt}" if who else (txt or ""))
        h["general_contract_provisions"] = "\n".join(parts) or None
    else:
        h["general_contract_provisions"] = _s(gcp)
    h["financial_aid_policy"] = _s(top.get("financial_aid_policy"))
    return clean_header(h, findings)


def _s(v) -> str | None:
    if v is None or isinstance(v, (dict, list)):
        return None
    s = str(v).strip()
    return s or None


def _list(v) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, list):
        out = [str(x).strip() for x in v if x is not None and str(x).strip()]
        return out or None
    return _split_pipes(str(v))
