"""Payer and plan canonicalisation: one owner of the rules, used by dbt and by the tests.

Real files spell the same payer many ways (``BlueCrossBlueShield``, ``Acme_MedicareAdvantage``,
``Some_Medicaid_ Inpatient_Rate``, ``AETNA [PPO]``), and the big carriers sell commercial,
Medicare Advantage, Medicaid and marketplace products under one brand. So:

1. :func:`normalize_text` turns payer and plan text into lower-case words: camelCase and
   letter-digit boundaries split, ``&`` read as "and", apostrophes dropped, underscores,
   brackets and every other punctuation mark turned into spaces, whitespace collapsed.
2. The **class** is decided on ``"<payer> <plan>"`` by product-type words first
   (:data:`CLASS_RULES`, in order: Medicare supplement, Medicare Advantage — including managed
   care written under a Medicare name, a SNP, or a private carrier's Medicare product —,
   managed Medicaid, traditional Medicare, Medicaid, marketplace, TRICARE/VA, workers' comp,
   self-pay, other programmes), and only then by the brand (``default_class`` of the first
   matching row of the ``payer_brands`` dbt seed), then by generic commercial words
   (PPO, HMO, employer, ...); else ``unknown``.
3. The **canonical payer** is the first carrier brand (seed order: specific brands before their
   parents) found in the payer or plan text; a programme row (Medicare, Medicaid, TRICARE, workers' comp, self-pay)
   names the payer only when the class is that programme's own class, so "Medicare Managed
   Care Plan" is Medicare Advantage with no canonical payer (the review queue lists it) rather
   than "Medicare".
4. The **product** (HMO, PPO, EPO, POS, HDHP, PFFS, SNP, FFS, unknown) is read from the same
   text.

The brand table is ``dbt_analytics/seeds/payer_brands.csv`` (also loaded as a dbt seed, so it
is in the warehouse and tested there); dbt calls :func:`classify` through a DuckDB Python UDF
registered by :mod:`price_pipeline.lib.analytics.dbt_plugin`, once per distinct payer/plan pair.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

BRANDS_CSV = Path(__file__).resolve().parents[3] / "dbt_analytics" / "seeds" / "payer_brands.csv"

PAYER_CLASSES = (
    "commercial", "medicare_advantage", "managed_medicaid", "medicare_ffs", "medicaid_ffs", "exchange",
    "tricare", "workers_comp", "self_pay", "other", "unknown",
)
PRODUCTS = ("HMO", "PPO", "EPO", "POS", "HDHP", "PFFS", "SNP", "FFS", "unknown")

_MEDICARE = r"\bmedicare\b"
_MEDICAID = r"\b(medicaid|medi ?cal|mass ?health|badger ?care|sooner ?care|husky|apple health|medical assistance)\b"

# (rule name, class, pattern over the normalised "payer plan" text); first match wins.
CLASS_RULES: tuple[tuple[str, str, str], ...] = (
    # Medigap pays after traditional Medicare; it is private (commercial) insurance.
    ("medicare_supplement", "commercial", r"\b(medicare supplement|medigap|med ?supp|medicare supp)\b"),
    ("medicare_advantage_words", "medicare_advantage",
     r"\b(medicare advantage|medicare adv|med ?adv|mapd|ma ?pd|medicare replacement|senior advantage"
     r"|medicare part c|part c|[dci] ?snp|snp|special needs|dual complete|dual eligible special)\b"),
    ("medicare_managed_care", "medicare_advantage",
     r"\bmedicare (hmo|ppo|pffs|msa|pos|epo|managed|mco|health plan|choice|complete|plus|gold|value|premier"
     r"|assure|secure|essential|group|retiree|employer|select|saver|advantage)\b"
     r"|\b(hmo|ppo|pffs|managed care|managed|mco|ma)\b.*\bmedicare\b|\bmedicare\b.*\b(hmo|ppo|pffs|managed care|mco)\b"),
    ("managed_medicaid_words", "managed_medicaid",
     r"\b(managed medicaid|medicaid managed|community plan|mmc|chip|star ?plus|star kids|star health|star chip|tenn ?care|ahcccs"
     r"|healthy louisiana|kan ?care|hoosier healthwise|hoosier care connect|medicaid advantage|medi ?cal managed)\b"
     r"|\bmedicaid (hmo|mco|managed care|health plan|plan|ppo)\b"
     r"|\b(hmo|mco|managed care|managed)\b.*" + _MEDICAID + r"|" + _MEDICAID + r".*\b(hmo|mco|managed care|managed)\b"),
    ("medicare_by_carrier", "medicare_advantage", None),  # Medicare + a private carrier brand (below)
    ("medicaid_by_carrier", "managed_medicaid", None),  # Medicaid + a private carrier brand (below)
    ("medicare", "medicare_ffs", _MEDICARE),
    ("medicaid", "medicaid_ffs", _MEDICAID),
    ("exchange", "exchange",
     r"\b(exchange|marketplace|market place|on exchange|off exchange|aca|affordable care act|covered california"
     r"|individual and family|individual market|ifp|obamacare|qhp|bronze|silver)\b"),
    ("tricare", "tricare",
     r"\b(tricare|champus|champ ?va|va community care|veterans affairs|veterans administration|va ccn|tri ?west)\b"),
    ("workers_comp", "workers_comp",
     r"\b(workers comp|workers compensation|workmans comp|work comp|workcomp|wc|labor and industries)\b"),
    ("self_pay", "self_pay", r"\b(self ?pay|uninsured|cash|private pay|no insurance)\b"),
    ("other_programme", "other",
     r"\b(auto|automobile|motor vehicle|pip|liability|charity|indigent|indian health|ihs|corrections|jail)\b"),
    # An explicit commercial product word outranks the brand's usual line of business.
    ("commercial_product", "commercial", r"\b(commercial|employer|self funded|fehb|federal employees?)\b"),
    ("brand_default", None, None),  # the first matching brand's default class
    ("commercial_words", "commercial",
     r"\b(commercial|ppo|hmo|epo|pos|hdhp|hsa|employer|group|choice plus|open access|network|health ?plan"
     r"|insurance|insurer|indemnity|tpa|administrators?|benefits?|trust|union)\b"),
)

_PRODUCT_RULES = (
    ("SNP", r"\b([dci] ?snp|snp|special needs)\b"),
    ("PFFS", r"\b(pffs|private fee for service)\b"),
    ("HDHP", r"\b(hdhp|high deductible|hsa)\b"),
    ("EPO", r"\b(epo|exclusive provider)\b"),
    ("POS", r"\b(pos|point of service|open access)\b"),
    ("HMO", r"\b(hmo|health maintenance)\b"),
    ("PPO", r"\b(ppo|preferred provider|choice plus)\b"),
    ("FFS", r"\b(ffs|fee for service|traditional|original medicare|indemnity)\b"),
)


@dataclass(frozen=True)
class Brand:
    rule_priority: int
    pattern: re.Pattern
    payer_canonical: str
    default_class: str
    is_program: bool


@dataclass(frozen=True)
class PayerDecision:
    payer_canonical: str | None
    payer_class: str
    product: str
    class_rule: str  # which rule decided the class ("none" when unknown)
    brand_source: str  # where the canonical payer came from: payer, plan, program, none
    normalized: str


def normalize_text(text: str | None) -> str:
    """Lower-case words of a payer or plan string (see the module docstring)."""
    if not text:
        return ""
    s = unicodedata.normalize("NFKC", str(text))
    s = s.replace("&", " and ").replace("'", "").replace("\u2019", "")
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", s)  # MedicareAdvantage -> Medicare Advantage
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", s)  # BCBSTexas -> BCBS Texas
    s = re.sub(r"([A-Za-z])([0-9])", r"\1 \2", s)  # Plan2024 -> Plan 2024
    s = s.lower()
    return re.sub(r"[^a-z0-9]+", " ", s).strip()


@functools.lru_cache(maxsize=4)
def load_brands(path: str | None = None) -> tuple[Brand, ...]:
    """The ``payer_brands`` seed rows, by rule_priority."""
    with open(path or BRANDS_CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    brands = [
        Brand(int(r["rule_priority"]), re.compile(r["pattern"]), r["payer_canonical"], r["default_class"],
              r["is_program"].strip().lower() == "true")
        for r in rows
    ]
    return tuple(sorted(brands, key=lambda b: b.rule_priority))


_COMPILED_RULES = tuple((name, cls, re.compile(p) if p else None) for name, cls, p in CLASS_RULES)
_COMPILED_PRODUCTS = tuple((name, re.compile(p)) for name, p in _PRODUCT_RULES)


def _first_brand(text: str, brands: tuple[Brand, ...], *, programs: bool) -> Brand | None:
    if not text:
        return None
    return next((b for b in brands if b.is_program == programs and b.pattern.search(text)), None)


def product_from_text(text: str) -> str:
    """The insurance product named in normalised text; SNP and PFFS before HMO/PPO."""
    return next((name for name, pattern in _COMPILED_PRODUCTS if pattern.search(text)), "unknown")


def classify(payer_name: str | None, plan_name: str | None, brands: tuple[Brand, ...] | None = None) -> PayerDecision:
    """Canonical payer, payer class and product of a raw payer/plan pair."""
    brands = load_brands() if brands is None else brands
    payer_text, plan_text = normalize_text(payer_name), normalize_text(plan_name)
    text = f"{payer_text} {plan_text}".strip()
    # The most specific carrier brand (seed order) anywhere in the text: "Aetna" + "Aetna Better
    # Health Managed Medicaid" is Aetna Better Health.
    carrier = _first_brand(text, brands, programs=False)
    brand_source = "none" if carrier is None else "payer" if carrier.pattern.search(payer_text) else "plan"

    payer_class, class_rule = "unknown", "none"
    for name, cls, pattern in _COMPILED_RULES:
        if name == "medicare_by_carrier":
            hit = carrier is not None and re.search(_MEDICARE, text) is not None
        elif name == "medicaid_by_carrier":
            hit = carrier is not None and re.search(_MEDICAID, text) is not None
        elif name == "brand_default":
            hit = carrier is not None and bool(carrier.default_class)
            cls = carrier.default_class if carrier else None
        else:
            hit = bool(text) and pattern.search(text) is not None
        if hit:
            payer_class, class_rule = cls, name
            break

    canonical = carrier.payer_canonical if carrier else None
    if canonical is None:
        program = _first_brand(text, brands, programs=True)
        if program is not None and program.default_class == payer_class:
            canonical, brand_source = program.payer_canonical, "program"
    product = product_from_text(text)
    if product == "unknown" and payer_class in ("medicare_ffs", "medicaid_ffs"):
        product = "FFS"
    return PayerDecision(canonical, payer_class, product, class_rule, brand_source, text)


def classify_struct(payer_name: str | None, plan_name: str | None) -> dict:
    """:func:`classify` as the dict the DuckDB UDF returns (a STRUCT)."""
    d = classify(payer_name, plan_name)
    return {"payer_canonical": d.payer_canonical, "payer_class": d.payer_class, "product": d.product,
            "class_rule": d.class_rule, "brand_source": d.brand_source, "normalized": d.normalized}


UDF_RETURN_TYPE = (
    "STRUCT(payer_canonical VARCHAR, payer_class VARCHAR, product VARCHAR, class_rule VARCHAR, "
    "brand_source VARCHAR, normalized VARCHAR)"
)


def register_udf(con) -> None:
    """Register ``pp_payer_classify(payer_name, plan_name)`` on a DuckDB connection."""
    con.create_function("pp_payer_classify", classify_struct, ["VARCHAR", "VARCHAR"], UDF_RETURN_TYPE,
                        null_handling="special", side_effects=False)
