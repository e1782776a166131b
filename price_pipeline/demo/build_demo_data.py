"""Regenerate the bundled demo data (developer-only; runtime and tests read the committed files).

Usage::

    python -m price_pipeline.demo.build_demo_data [--out price_pipeline/demo/data]

Everything it reads is in the repository: the CMS official example files bundled in
``price_pipeline_tests/fixtures/cms`` and the project's deterministic v3.0 generator
``price_pipeline/demo/gen_mrf.py``. The script

* copies the six CMS examples byte-for-byte under CMS-convention names
  (``<EIN>[-<NPI>]_<hospital-name>_standardcharges.<ext>``),
* generates three synthetic v3.0 files with fixed seeds (tall ~2,000 rows, wide 500 rows x
  10 payers, JSON 300 items) and packs the wide one into a ``.zip`` that also carries a
  ``__MACOSX/._<name>`` AppleDouble junk member, as files zipped on a Mac do,
* writes one broken file: an HTML error page saved under a ``.csv`` name,
* writes ``catalog.json`` (hospitals -> file names), the single source the demo server reads.

Everything is deterministic (fixed seeds, fixed zip timestamps), so rerunning it produces
identical bytes and a clean ``git diff`` (a test rebuilds the data and compares it byte for byte).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
GEN_MRF = Path(__file__).resolve().parent / "gen_mrf.py"
# The CMS examples, byte-for-byte copies of cms-hpt/{v2,v3.0}/examples (as the test fixtures use them).
CMS_EXAMPLES = Path(__file__).resolve().parents[2] / "price_pipeline_tests" / "fixtures" / "cms"

# Fixed so that the catalog (and fingerprints derived from it) is stable across rebuilds.
RETRIEVED_AT = "2025-06-02T08:00:00Z"
LAST_MODIFIED = "2025-06-01T00:00:00Z"
ZIP_DATE_TIME = (2025, 6, 1, 0, 0, 0)

BROKEN_HTML = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>503 Service Temporarily Unavailable</title></head>
<body>
<h1>Service Temporarily Unavailable</h1>
<p>The page you requested is temporarily unavailable. Please try again later.</p>
<p>Reference #18.4f2d3e17.1717228800.2a1b3c</p>
</body>
</html>
"""

# (source kind, source, hospital fields, file name stem, served extension, cms version, layout)
# source kind: "cms" = copy an official example, "gen" = run gen_mrf.py, "html" = broken page.
HOSPITALS: list[dict] = [
    {
        "id": "demo-001",
        "ccn": "050901",
        "name": "West Mercy Hospital",
        "address": "1200 Alhambra Blvd",
        "city": "Sacramento",
        "state": "CA",
        "zip": "95816",
        "website": "https://west-mercy.example.org",
        "file": "951234567_west-mercy-hospital_standardcharges.csv",
        "source": ("cms", "v3.0/examples/V3.0.0_Tall_CSV_Format_Example.csv"),
        "demo": {"cms_version": "3.0.0", "layout": "csv_tall", "expect": "ok"},
    },
    {
        "id": "demo-002",
        "ccn": "050912",
        "name": "Harbor Valley Medical Center",
        "address": "3400 Harbor View Dr",
        "city": "San Diego",
        "state": "CA",
        "zip": "92101",
        "website": "https://harbor-valley.example.org",
        "file": "952345678_harbor-valley-medical-center_standardcharges.csv",
        "source": ("cms", "v3.0/examples/V3.0.0_Wide_CSV_Format_Example.csv"),
        "demo": {"cms_version": "3.0.0", "layout": "csv_wide", "expect": "ok"},
    },
    {
        "id": "demo-003",
        "ccn": "520188",
        "name": "Lakeshore Regional Hospital",
        "address": "77 N Lincoln Memorial Dr",
        "city": "Milwaukee",
        "state": "WI",
        "zip": "53202",
        "website": "https://lakeshore-regional.example.org",
        "file": "391234567_lakeshore-regional-hospital_standardcharges.json",
        "source": ("cms", "v3.0/examples/V3.0.0_JSON_Format_Example.json"),
        "demo": {"cms_version": "3.0.0", "layout": "json", "expect": "ok"},
    },
    {
        "id": "demo-004",
        "ccn": "380097",
        "name": "Pine Ridge Community Hospital",
        "address": "2500 NE Neff Rd",
        "city": "Bend",
        "state": "OR",
        "zip": "97701",
        "website": "https://pine-ridge.example.org",
        "file": "931234567_pine-ridge-community-hospital_standardcharges.csv",
        "source": ("cms", "v2/examples/V2.0.0_Tall_CSV_Format_Example.csv"),
        "demo": {"cms_version": "2.0.0", "layout": "csv_tall", "expect": "ok"},
    },
    {
        "id": "demo-005",
        "ccn": "450987",
        "name": "Saint Aurelia Medical Center",
        "address": "901 W 38th St",
        "city": "Austin",
        "state": "TX",
        "zip": "78705",
        "website": "https://saint-aurelia.example.org",
        "file": "741234567_saint-aurelia-medical-center_standardcharges.csv",
        "source": ("cms", "v2/examples/V2.0.0_Wide_CSV_Format_Example.csv"),
        "demo": {"cms_version": "2.0.0", "layout": "csv_wide", "expect": "ok"},
    },
    {
        "id": "demo-006",
        "ccn": "320099",
        "name": "Blue Mesa General Hospital",
        "address": "4400 Central Ave SE",
        "city": "Albuquerque",
        "state": "NM",
        "zip": "87108",
        "website": "https://blue-mesa.example.org",
        "file": "851234567_blue-mesa-general-hospital_standardcharges.json",
        "source": ("cms", "v2/examples/V2.0.0_JSON_Format_Example.json"),
        "demo": {"cms_version": "2.0.0", "layout": "json", "expect": "ok"},
    },
    {
        "id": "demo-007",
        "ccn": "360301",
        "name": "Riverbend Memorial Hospital",
        "address": "1 Riverbend Pkwy",
        "city": "Dayton",
        "state": "OH",
        "zip": "45409",
        "website": "https://riverbend-memorial.example.org",
        # EIN-NPI form: used by the CMS convention when several hospitals share one EIN.
        "file": "316123456-1234567893_riverbend-memorial-hospital_standardcharges.csv",
        "source": ("gen", ["--format", "tall", "--rows", "2000", "--payers", "6", "--seed", "7001"]),
        "demo": {"cms_version": "3.0.0", "layout": "csv_tall", "expect": "ok"},
    },
    {
        "id": "demo-008",
        "ccn": "340222",
        "name": "Cedar Hollow Health",
        "address": "509 Biltmore Ave",
        "city": "Asheville",
        "state": "NC",
        "zip": "28801",
        "website": "https://cedar-hollow.example.org",
        "file": "561234567_cedar-hollow-health_standardcharges.zip",
        "source": ("gen", ["--format", "wide", "--rows", "500", "--payers", "10", "--seed", "7002"]),
        "zip_member": "561234567_cedar-hollow-health_standardcharges.csv",
        "demo": {"cms_version": "3.0.0", "layout": "csv_wide", "expect": "ok", "container": "zip"},
    },
    {
        "id": "demo-009",
        "ccn": "300045",
        "name": "Granite Falls Medical Center",
        "address": "250 Pleasant St",
        "city": "Concord",
        "state": "NH",
        "zip": "03301",
        "website": "https://granite-falls.example.org",
        "file": "021234567_granite-falls-medical-center_standardcharges.json",
        "source": ("gen", ["--format", "json", "--rows", "300", "--payers", "8", "--seed", "7003"]),
        "demo": {"cms_version": "3.0.0", "layout": "json", "expect": "ok"},
    },
    {
        "id": "demo-010",
        "ccn": "170199",
        "name": "Sunny Prairie Hospital",
        "address": "929 N St Francis St",
        "city": "Wichita",
        "state": "KS",
        "zip": "67214",
        "website": "https://sunny-prairie.example.org",
        "file": "481234567_sunny-prairie-hospital_standardcharges.csv",
        "source": ("html", None),
        "demo": {"cms_version": None, "layout": None, "expect": "html_instead_of_data"},
    },
]


def _write_zip(target: Path, member_name: str, payload: Path) -> None:
    """A zip as produced by macOS Finder: the file plus an AppleDouble ``__MACOSX`` member."""
    # AppleDouble header (magic 0x00051607, version 2) followed by filler: parsers must skip it.
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 66
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in ((member_name, payload.read_bytes()), (f"__MACOSX/._{member_name}", apple_double)):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def build(out: Path) -> list[dict]:
    """Write every demo file and catalog.json into ``out``; return the catalog hospitals."""
    out.mkdir(parents=True, exist_ok=True)
    files_dir = out / "files"
    if files_dir.exists():
        shutil.rmtree(files_dir)
    files_dir.mkdir()
    catalog: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="pp-demo-") as tmp:
        for spec in HOSPITALS:
            kind, source = spec["source"]
            target = files_dir / spec["file"]
            if kind == "cms":
                shutil.copyfile(CMS_EXAMPLES / Path(source).name, target)
            elif kind == "gen":
                generated = Path(tmp) / (spec.get("zip_member") or spec["file"])
                subprocess.run(
                    [sys.executable, str(GEN_MRF), *source, "--out", str(generated)],
                    check=True,
                    capture_output=True,
                )
                if target.suffix == ".zip":
                    _write_zip(target, spec["zip_member"], generated)
                else:
                    shutil.copyfile(generated, target)
            else:
                target.write_text(BROKEN_HTML, encoding="utf-8")
            hospital = {
                k: spec[k] for k in ("id", "ccn", "name", "address", "city", "state", "zip", "website")
            }
            hospital["files"] = [
                {"name": spec["file"], "retrieved_at": RETRIEVED_AT, "last_modified": LAST_MODIFIED}
            ]
            hospital["demo"] = spec["demo"]
            catalog.append(hospital)
    doc = {
        "description": "Bundled offline demo catalog: fictional hospitals serving CMS example and "
        "synthetic MRFs. Regenerate with price_pipeline/demo/build_demo_data.py.",
        "hospitals": catalog,
    }
    (out / "catalog.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    hospitals = build(args.out)
    for h in hospitals:
        path = args.out / "files" / h["files"][0]["name"]
        print(f"{h['id']}  {path.stat().st_size:>9,d}  {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
