"""The fuzz harness's seed files: valid MRFs from the repository, plus larger generated ones.

Sources, all inside the repository (never /work/shared, never the network):

* ``price_pipeline_tests/fixtures/cms``: the CMS official examples and templates, v2.0 and v3.0,
  tall CSV, wide CSV and JSON (byte-for-byte copies);
* ``price_pipeline_tests/fixtures/broken``: the same small file in other encodings and line
  endings (cp1252, UTF-16, BOM, CRLF, CR-only, quoted line breaks in the header);
* generated MRFs the repository carries: the demo hospitals' files in
  ``price_pipeline/demo/data/files`` (``price_pipeline/demo/build_demo_data.py`` runs the
  project's ``gen_mrf.py`` with fixed seeds) and ``fixtures/validate/gen_*``;
* :func:`synthesize`: bigger files generated here from the v3.0 examples (rows / items repeated
  with varied amounts, codes and descriptions holding quotes, commas, line breaks and non-ASCII
  text), deterministic, so truncation and corruption land deep inside long files too.

Archives in the repository (zip, gzip) contribute their payload: the harness wraps payloads
itself.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import gzip
import io
import json
import random
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "price_pipeline_tests" / "fixtures"
DEMO_FILES = ROOT / "price_pipeline" / "demo" / "data" / "files"


@dataclass(frozen=True)
class Seed:
    """One valid (or deliberately awkward but well-formed) MRF payload."""

    name: str
    kind: str  # "csv" | "json"
    data: bytes
    encoding: str  # how to decode it to text for the oracle's structural checks


def _encoding_of(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        data.decode("utf-8")
        return "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def _kind_of(data: bytes, encoding: str) -> str:
    head = data[:4096].decode(encoding, "replace").lstrip("\ufeff \t\r\n")
    return "json" if head[:1] in ("{", "[") else "csv"


def _payloads(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return [(path.name, gzip.decompress(data))]
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(path) as zf:
            return [(f"{path.name}!{i.filename}", zf.read(i)) for i in zf.infolist()
                    if i.filename.lower().endswith((".csv", ".json")) and not i.filename.startswith("__MACOSX/")]
    return [(path.name, data)]


def _repo_files() -> list[Path]:
    broken_ok = ("bom_utf8.csv", "cp1252.csv", "cr_only.csv", "crlf.csv", "dirty_numbers.csv",
                 "odd_header_wide.csv", "quoted_newlines_header.csv", "short_rows.csv", "small_tall.csv",
                 "utf16.csv", "small_tall.csv.gz", "macosx_junk.zip")
    files = sorted((FIXTURES / "cms").iterdir())
    files += [FIXTURES / "broken" / n for n in broken_ok]
    files += sorted((FIXTURES / "validate").glob("gen_*"))
    files += sorted(p for p in DEMO_FILES.iterdir() if p.is_file())
    return files


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


_ODD_TEXT = ('with "quotes", commas', "line one\nline two", "Ünïcödé — 中文 ✓", "trailing space ", "a|b|c",
             "tab\there", "semi;colon", "=SUM(A1:A9)")


def _vary_row(row: list[str], cols: list[str], k: int, rng: random.Random) -> list[str]:
    out = list(row)
    for j, col in enumerate(cols[: len(out)]):
        v = out[j]
        if col == "description" and v:
            out[j] = f"{v} {k}" if rng.random() < 0.85 else f"{v} {rng.choice(_ODD_TEXT)} {k}"
        elif col.startswith(("code|", "code |")) and not col.endswith("type") and v:
            out[j] = f"{v}{k % 97}" if not v.isdigit() else str((int(v) + k) % 99999).zfill(len(v))
        elif col.startswith("standard_charge") and v:
            with contextlib.suppress(ValueError):
                out[j] = f"{float(v) * (1 + (k % 37) / 100):.2f}"
    return out


def _synth_csv(template: bytes, rows: int, seed: int, *, crlf: bool = False, bom: bool = False) -> bytes:
    rng = random.Random(seed)
    table = _csv_rows(template)
    head, body = table[:3], [r for r in table[3:] if any(c.strip() for c in r)]
    cols = [c.strip().lower() for c in head[2]]
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    w.writerows(head)
    for k in range(rows):
        w.writerow(_vary_row(body[k % len(body)], cols, k, rng))
    text = buf.getvalue()
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def _synth_json(template: bytes, items: int, seed: int, *, indent: int | None) -> bytes:
    rng = random.Random(seed)
    doc = json.loads(template)
    base = doc["standard_charge_information"]
    out = []
    for k in range(items):
        item = copy.deepcopy(base[k % len(base)])
        desc = item.get("description") or "item"
        item["description"] = f"{desc} {k}" if rng.random() < 0.85 else f"{desc} {rng.choice(_ODD_TEXT)} {k}"
        for sc in item.get("standard_charges", []):
            for key in ("gross_charge", "discounted_cash", "minimum", "maximum"):
                if isinstance(sc.get(key), (int, float)):
                    sc[key] = round(sc[key] * (1 + (k % 37) / 100), 2)
            for p in sc.get("payers_information", []) or []:
                if isinstance(p.get("standard_charge_dollar"), (int, float)):
                    p["standard_charge_dollar"] = round(p["standard_charge_dollar"] * (1 + (k % 23) / 100), 2)
        out.append(item)
    doc["standard_charge_information"] = out
    return json.dumps(doc, indent=indent, ensure_ascii=rng.random() < 0.5).encode("utf-8")


def synthesize() -> list[Seed]:
    """Generated seeds (deterministic): long v3.0 tall/wide CSVs and a long JSON."""
    cms = FIXTURES / "cms"
    tall = (cms / "V3.0.0_Tall_CSV_Format_Example.csv").read_bytes()
    wide = (cms / "V3.0.0_Wide_CSV_Format_Example.csv").read_bytes()
    js = (cms / "V3.0.0_JSON_Format_Example.json").read_bytes()
    return [
        Seed("synth_tall_1500.csv", "csv", _synth_csv(tall, 1500, 11), "utf-8"),
        Seed("synth_tall_400_crlf_bom.csv", "csv", _synth_csv(tall, 400, 12, crlf=True, bom=True), "utf-8-sig"),
        Seed("synth_wide_600.csv", "csv", _synth_csv(wide, 600, 13), "utf-8"),
        Seed("synth_items_250.json", "json", _synth_json(js, 250, 14, indent=None), "utf-8"),
        Seed("synth_items_120_indent.json", "json", _synth_json(js, 120, 15, indent=2), "utf-8"),
    ]


@cache
def seeds() -> tuple[Seed, ...]:
    """Every seed, in a fixed order (the order is part of what a fuzz seed number means)."""
    out: list[Seed] = []
    seen: set[bytes] = set()
    for path in _repo_files():
        for name, data in _payloads(path):
            if not data.strip() or data.lstrip()[:1] == b"<" or data in seen:
                continue  # empty, an HTML page, or a copy (the demo serves some CMS examples as-is)
            seen.add(data)
            enc = _encoding_of(data)
            out.append(Seed(name, _kind_of(data, enc), data, enc))
    out.extend(synthesize())
    return tuple(out)
