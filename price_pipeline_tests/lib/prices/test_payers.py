"""Payer canonicalisation (price_pipeline.lib.prices.payers) against a labelled set (issue 18 item 1).

``fixtures/payers/labelled_payers.csv`` holds payer/plan strings in the shapes real files use
(big national carriers and Blues plans, Medicare Advantage under Medicare-sounding names, brand
+ Managed Medicaid, camelCase, underscores, brackets, upper case, plan written into the payer)
with the class and canonical payer a reviewer expects. The class must be right for >= 95 % of
them. ``python -m price_pipeline_tests.lib.prices.test_payers`` prints the confusion table that
docs/analytics.md shows; a test checks the page carries the current one.
"""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import pytest

from price_pipeline.lib.prices import payers

HERE = Path(__file__).resolve().parent
LABELLED = HERE.parents[1] / "fixtures" / "payers" / "labelled_payers.csv"
DOC = HERE.parents[2] / "docs" / "analytics.md"
DOC_START, DOC_END = "<!-- payer-confusion:start -->", "<!-- payer-confusion:end -->"


def labelled() -> list[dict]:
    with open(LABELLED, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def predictions() -> list[tuple[dict, payers.PayerDecision]]:
    return [(r, payers.classify(r["payer_name"] or None, r["plan_name"] or None)) for r in labelled()]


def confusion_markdown() -> str:
    """The confusion table (expected class per row, predicted class per column) and accuracy."""
    results = predictions()
    counts = collections.Counter((r["expected_class"], d.payer_class) for r, d in results)
    classes = [c for c in payers.PAYER_CLASSES if any(c in pair for pair in counts)]
    correct = sum(n for (e, p), n in counts.items() if e == p)
    lines = [
        f"{len(results)} labelled payer/plan strings, class accuracy "
        f"{100 * correct / len(results):.1f} % ({correct}/{len(results)}). Rows: expected; columns: predicted.",
        "",
        "| expected \\ predicted | " + " | ".join(classes) + " |",
        "| --- |" + " ---: |" * len(classes),
    ]
    for e in classes:
        lines.append(f"| {e} | " + " | ".join(str(counts.get((e, p), 0) or "") for p in classes) + " |")
    return "\n".join(lines)


def test_labelled_set_is_large_and_covers_every_shape():
    rows = labelled()
    assert len(rows) >= 400
    shapes = collections.Counter(r["shape"] for r in rows)
    assert {"camelCase payer", "underscores, plan in payer", "brackets", "upper case", "issue 18 example"} <= set(shapes)
    assert {r["expected_class"] for r in rows} == set(payers.PAYER_CLASSES)  # every class, unknown included


def test_class_accuracy_at_least_95_percent():
    results = predictions()
    wrong = [(r["payer_name"], r["plan_name"], r["expected_class"], d.payer_class) for r, d in results
             if d.payer_class != r["expected_class"]]
    accuracy = 1 - len(wrong) / len(results)
    assert accuracy >= 0.95, f"{accuracy:.3f}: {wrong}"


def test_canonical_payer_accuracy():
    results = [(r, d) for r, d in predictions() if r["expected_payer"]]
    right = sum(d.payer_canonical == r["expected_payer"] for r, d in results)
    assert right / len(results) >= 0.95


@pytest.mark.parametrize(
    ("payer", "plan", "expected"),
    [
        # Medicare Advantage under a Medicare-sounding name is not traditional Medicare.
        ("Medicare Managed Care Plan", None, ("medicare_advantage", None)),
        ("Aetna", "Aetna Medicare Value Plan", ("medicare_advantage", "Aetna")),
        # The product word decides before the brand (WellCare is usually Medicare Advantage).
        ("WellCare", "Managed Medicaid", ("managed_medicaid", "Centene")),
        # camelCase and underscores no longer defeat word boundaries.
        ("Acme_MedicareAdvantage", None, ("medicare_advantage", None)),
        ("BlueCrossBlueShield", None, ("commercial", "Blue Cross Blue Shield")),
        ("Some_Medicaid_ Inpatient_Rate", None, ("medicaid_ffs", "Medicaid")),
        ("Medicare", None, ("medicare_ffs", "Medicare")),
        ("Humana Military", "TRICARE East", ("tricare", "Humana Military (TRICARE)")),
        ("Acme Benefit Trust", "Gold", ("commercial", None)),
        ("Zenith", "Plan 7", ("unknown", None)),
    ],
)
def test_issue_shapes(payer, plan, expected):
    decision = payers.classify(payer, plan)
    assert (decision.payer_class, decision.payer_canonical) == expected


def test_normalize_text():
    assert payers.normalize_text("Acme_MedicareAdvantage [HMO]") == "acme medicare advantage hmo"
    assert payers.normalize_text("BCBSTexas") == "bcbs texas"
    assert payers.normalize_text("Workers' Comp & Liability") == "workers comp and liability"
    assert payers.normalize_text(None) == ""


def test_products():
    assert payers.classify("Aetna", "Medicare Advantage HMO D-SNP").product == "SNP"
    assert payers.classify("Cigna", "Open Access Plus").product == "POS"
    assert payers.classify("Medicare", None).product == "FFS"


def test_docs_carry_the_current_confusion_table():
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(DOC_START) + len(DOC_START), text.index(DOC_END)
    assert text[start:end].strip() == confusion_markdown(), (
        "docs/analytics.md is stale: paste `python -m price_pipeline_tests.lib.prices.test_payers`"
    )


if __name__ == "__main__":
    print(confusion_markdown())
