"""The one hospital-key normaliser: the catalog's keys go through it unchanged, long keys are cut
one way whichever source named them, and catalog and reconciliation fingerprint files alike."""

from __future__ import annotations

import hashlib

import pytest

from price_pipeline.demo import load_catalog
from price_pipeline.lib.discovery import VALID_KEY, normalize_key
from price_pipeline.lib.discovery.catalog import CatalogFile, CatalogHospital, files_fingerprint, hospital_key
from price_pipeline.lib.discovery.keys import slug
from price_pipeline.lib.discovery.reconcile import files_fingerprint as reconciled_fingerprint


def _sha8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_demo_catalog_keys_are_fixed_points_of_the_normaliser():
    hospitals = [CatalogHospital(id=h["id"], name=h["name"], ccn=h.get("ccn"), state=h.get("state"))
                 for h in load_catalog()]
    keys = [hospital_key(h) for h in hospitals]
    assert len(set(keys)) == len(keys) and all(VALID_KEY.match(k) for k in keys)
    assert [normalize_key(k) for k in keys] == keys


def test_a_long_catalog_key_is_cut_as_before():
    """The demo and the tests rely on the catalog's keys; routing them through the one normaliser
    keeps every one of them (a slug never holds ``_``, the only place the two cuts differed)."""
    name = "The " + "Very " * 20 + "Long Regional Medical Center North"
    full = f"{slug(name)}-tx"
    expected = f"{full[:55].rstrip('-')}-{_sha8(full)}"
    assert hospital_key(CatalogHospital(id="1", name=name, state="TX")) == expected
    assert len(expected) == 64


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        # the cut drops a trailing "_" as well as "-" (the catalog's own cut kept "_")
        ("a" * 54 + "_" + "b" * 20, "a" * 54 + "-" + _sha8("a" * 54 + "_" + "b" * 20)),
        ("a" * 54 + "-" + "b" * 20, "a" * 54 + "-" + _sha8("a" * 54 + "-" + "b" * 20)),
        ("Saint Mary's / Main_Campus", "saint-mary-s-main_campus"),
        ("---", "h-" + hashlib.sha256(b"---").hexdigest()[:12]),
        ("x" * 64, "x" * 64),
    ],
)
def test_normalize_key_pins_the_cut(raw, key):
    assert normalize_key(raw) == key
    assert VALID_KEY.match(key)


def test_catalog_and_reconciliation_fingerprint_files_alike():
    files = [CatalogFile(url="https://h.org/b.csv", size=10, retrieved_at="2025-01-01", sha256="ab"),
             CatalogFile(url="https://h.org/a.json")]
    hospital = CatalogHospital(id="1", name="H", files=files)
    as_dicts = [{"url": f.url, "size": f.size, "retrieved_at": f.retrieved_at, "sha256": f.sha256} for f in files]
    assert files_fingerprint(hospital) == reconciled_fingerprint(list(reversed(as_dicts)))
    assert len(files_fingerprint(hospital)) == 16
    assert files_fingerprint(hospital) != files_fingerprint(CatalogHospital(id="1", name="H", files=files[:1]))
