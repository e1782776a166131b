"""Issue 19 items 1-3: broken and hostile files are never marked good and never crash or starve
the process. Each test reproduces one reported failure (it failed on main before the fix):

1. cut-off data reported as a good parse (a thread's error taken for end of file, bytes after a
   JSON document, a vertical tab taken for JSON whitespace, a CSV ending inside quotes);
2. hostile JSON (deep nesting that grew the process to 24 GB, a 4,301-digit integer that crashed
   the interpreter): refused with a finding, memory flat;
3. archive errors as tracebacks, no per-file guard in the ingest, a long record crashing the
   validator or reported as an empty file, the configured caps never reaching the parser.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from price_pipeline.lib.parse.mrf.limits import MAX_RECORD_BYTES, InputLimit, JsonGuard
from price_pipeline.lib.validate import validate_file

from ..conftest import CMS

TALL = CMS / "V3.0.0_Tall_CSV_Format_Example.csv"
JSON_EX = CMS / "V3.0.0_JSON_Format_Example.json"


def rules(summary) -> set[str]:
    return {f.rule for f in summary.findings}


def vrules(report) -> set[str]:
    return set(report.errors_by_rule)


def tall_payload(copies: int) -> bytes:
    lines = TALL.read_bytes().splitlines(True)
    return b"".join(lines[:3]) + b"".join(lines[3:]) * copies


def check_both(parse, path, rule: str, **kw):
    """parse and validate ``path``: both must end not ok / invalid with ``rule``."""
    s, _rows = parse(path, **kw)
    assert not s.ok and rule in rules(s), s.findings[:5]
    r = validate_file(path, **({"max_decompressed_bytes": kw["max_decompressed_bytes"]}
                               if "max_decompressed_bytes" in kw else {}))
    assert not r.valid and rule in vrules(r), r.errors_by_rule
    return s, r


# --- 1. cut-off data is never a good parse ---------------------------------------------------


def test_truncated_gzip_is_not_ok(parse, tmp_path):
    """The issue's reproduction: a gzip cut at 60 % parsed ok with the rows read so far (the
    prefetch thread's EOFError looked like the end of the file)."""
    g = gzip.compress(tall_payload(2000))
    p = tmp_path / "t.csv.gz"
    p.write_bytes(g[: len(g) * 6 // 10])
    s, r = check_both(parse, p, "truncated_archive")
    assert s.rows_parsed > 0  # rows were read before the cut: kept for inspection, not published (ok false)


def _zip(tmp_path, name: str, data: bytes, method=zipfile.ZIP_DEFLATED) -> Path:
    p = tmp_path / name
    with zipfile.ZipFile(p, "w", method) as z:
        z.writestr("prices.csv", data)
    return p


def _patch_zip(path: Path, *, crc: int | None = None, flag: int | None = None, method: int | None = None) -> None:
    """Rewrite fields of the single member in both the local header and the central directory."""
    b = bytearray(path.read_bytes())
    loc = b.find(b"PK\x03\x04")
    cen = b.find(b"PK\x01\x02")
    for off, (f_flag, f_method, f_crc) in ((loc, (6, 8, 14)), (cen, (8, 10, 16))):
        if flag is not None:
            struct.pack_into("<H", b, off + f_flag, struct.unpack_from("<H", b, off + f_flag)[0] | flag)
        if method is not None:
            struct.pack_into("<H", b, off + f_method, method)
        if crc is not None:
            struct.pack_into("<I", b, off + f_crc, crc)
    path.write_bytes(bytes(b))


def test_bad_crc_zip_is_not_ok(parse, tmp_path):
    """A zip with a wrong CRC parsed ok with 264,099 of 360,000 rows."""
    p = _zip(tmp_path, "crc.zip", tall_payload(2000))
    _patch_zip(p, crc=0x12345678)
    check_both(parse, p, "bad_crc")


def test_decompression_limit_in_the_reader_thread_is_not_ok(parse, tmp_path):
    """The ratio cap fired inside the prefetch thread and the parse ended ok with the rows so far."""
    p = tmp_path / "bomb.csv.gz"
    p.write_bytes(gzip.compress(tall_payload(3000)))  # ~13 MiB of rows, very repetitive
    s, _rows = parse(p, max_ratio=5, ratio_grace_bytes=2 * 1024**2)
    assert not s.ok and "decompression_limit" in rules(s)
    r = validate_file(p, max_ratio=5)  # (its grace is the parser's 64 MiB: capped by bytes instead)
    assert r.valid is not None
    r = validate_file(p, max_decompressed_bytes=4 * 1024**2)
    assert not r.valid and "decompression_limit" in vrules(r)


def test_json_bytes_after_the_document_parallel_reader(parse, tmp_path):
    """The chunked JSON reader's tail check said ok on bytes after the document (and on a
    document cut off right after the charges array)."""
    doc = JSON_EX.read_bytes().rstrip()
    for bad in (doc + b' {"x": 1}', doc[:-1].rstrip(), doc + b"]"):
        p = tmp_path / "t.json"
        p.write_bytes(bad)
        s, _rows = parse(p, json_full_parse_below=0, json_chunk_bytes=4096)
        assert not s.ok and "json_syntax_error" in rules(s), bad[-20:]
    p.write_bytes(doc)
    s, rows = parse(p, json_full_parse_below=0, json_chunk_bytes=4096)
    assert s.ok and rows


@pytest.mark.parametrize("where", ["between_tokens", "after_document"])
def test_json_vertical_tab_is_not_whitespace(parse, tmp_path, where):
    """yajl skips VT and FF as whitespace; JSON allows only space, tab, LF and CR."""
    doc = JSON_EX.read_bytes()
    bad = doc.replace(b'"hospital_name":', b'"hospital_name":\x0b', 1) if where == "between_tokens" else doc + b"\x0c"
    p = tmp_path / "vt.json"
    p.write_bytes(bad)
    for kw in ({}, {"json_full_parse_below": 0, "json_chunk_bytes": 4096}):
        s, _rows = parse(p, **kw)
        assert not s.ok and "json_syntax_error" in rules(s)
    r = validate_file(p)
    assert not r.valid and "invalid_json" in vrules(r)


def test_csv_ending_inside_a_quoted_field_is_not_ok(parse, tmp_path):
    """Arrow ends an unterminated quoted field silently at the end of the input: the cut-off last
    record was published as a row."""
    data = tall_payload(3) + b'Cut off,"an opening quote that never closes\nmore text'
    p = tmp_path / "open.csv"
    p.write_bytes(data)
    check_both(parse, p, "unterminated_field")
    (tmp_path / "closed.csv").write_bytes(data + b'"\n')  # the same file with the quote closed
    s, _rows = parse(tmp_path / "closed.csv")
    assert s.ok


# --- 2. hostile JSON: bounded, never a crash ------------------------------------------------

_LIMITED = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))
    from price_pipeline.lib.parse.mrf import parse_to_parquet
    from price_pipeline.lib.validate import validate_file
    path, out = sys.argv[1], sys.argv[2]
    s = parse_to_parquet(path, out, json_full_parse_below=int(sys.argv[3]))
    r = validate_file(path)
    print(json.dumps({"ok": s.ok, "rules": sorted({f.rule for f in s.findings}), "valid": r.valid,
                      "vrules": sorted(r.errors_by_rule),
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def run_limited(path: Path, tmp_path: Path, full_parse_below: int = 8 * 1024**2) -> dict:
    """parse + validate ``path`` in a child process under a 4 GiB address-space limit (on main,
    the deep file grew to 24 GB and the long integer killed the interpreter with SIGSEGV)."""
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", _LIMITED, str(path), str(tmp_path / "out.parquet"),
                           str(full_parse_below)], capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("full_parse_below", [8 * 1024**2, 0])
def test_deep_json_is_refused_with_flat_memory(tmp_path, full_parse_below):
    p = tmp_path / "deep.json"
    p.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    res = run_limited(p, tmp_path, full_parse_below)
    assert not res["ok"] and "json_too_deep" in res["rules"]
    assert res["valid"] is False and "json_too_deep" in res["vrules"]
    p.write_bytes(b'{"hospital_name": "x", "standard_charge_information": [{"description": '
                  + b"[" * 50_000 + b"]" * 50_000 + b"}]}")
    res = run_limited(p, tmp_path, full_parse_below)
    assert not res["ok"] and "json_too_deep" in res["rules"] and "json_too_deep" in res["vrules"]
    assert res["rss_mb"] < 1024


@pytest.mark.parametrize("full_parse_below", [8 * 1024**2, 0])
def test_4301_digit_integer_never_reaches_ijson(tmp_path, full_parse_below):
    p = tmp_path / "num.json"
    p.write_bytes(b'{"hospital_name":"x","type_2_npi":[' + b"9" * 4301 + b"]}")
    res = run_limited(p, tmp_path, full_parse_below)
    assert not res["ok"] and "number_too_long" in res["rules"]
    assert res["valid"] is False and "number_too_long" in res["vrules"]


def test_json_guard_limits_and_chunk_boundaries():
    """The guard gives the same verdict however the bytes are cut (escapes, strings, digit runs
    and brackets split across chunks), and ignores brackets and digits inside strings."""
    def verdict(data: bytes, step: int, **kw) -> str:
        g = JsonGuard(**kw)
        try:
            for i in range(0, len(data), step):
                g.feed(data[i : i + step])
        except InputLimit as e:
            return e.rule
        return "ok"

    cases = [
        (b"[" * 64 + b"]" * 64, "ok"), (b"[" * 65 + b"]" * 65, "json_too_deep"),
        (b'{"a":"' + b"[" * 100 + b'"}', "ok"), (b'{"a":"\\"' + b"[" * 100 + b'"}', "ok"),
        (b'{"a":"\\\\"' + b"[" * 100 + b"]" * 100 + b"}", "json_too_deep"),
        (b'{"a":' + b"9" * 256 + b"}", "ok"), (b'{"a":-1.' + b"9" * 4301 + b"}", "number_too_long"),
        (b'{"a":"' + b"9" * 5000 + b'"}', "ok"), (b'{"a":\x0b1}', "json_syntax_error"),
    ]
    for data, want in cases:
        for step in (1, 3, 7, 64, len(data)):
            assert verdict(data, step) == want, (data[:30], step)
    assert verdict(b'{"a":"' + b"x" * 100 + b'"}', 7, max_token=50) == "token_too_long"
    assert verdict(b'{"a":"' + b"x" * 40 + b'"}', 7, max_token=50) == "ok"


# --- 3. archive errors, the ingest guard, long records, caps ---------------------------------


def test_encrypted_and_deflate64_members_are_findings(parse, tmp_path):
    p = _zip(tmp_path, "enc.zip", tall_payload(2))
    _patch_zip(p, flag=0x1)
    check_both(parse, p, "encrypted_archive")
    p = _zip(tmp_path, "d64.zip", tall_payload(2))
    _patch_zip(p, method=9)
    check_both(parse, p, "unsupported_compression")


def test_small_truncated_and_corrupt_gzip_are_findings(parse, tmp_path):
    """Errors while reading the first MiB (the sample) escaped as tracebacks."""
    g = gzip.compress(tall_payload(2))
    p = tmp_path / "cut.csv.gz"
    p.write_bytes(g[: len(g) // 2])
    check_both(parse, p, "truncated_archive")
    bad = bytearray(g)
    for i in range(20, 60):
        bad[i] ^= 0x55
    p = tmp_path / "corrupt.csv.gz"
    p.write_bytes(bytes(bad))
    s, _ = parse(p)
    assert not s.ok and rules(s) & {"bad_archive", "bad_crc", "truncated_archive"}
    r = validate_file(p)
    assert not r.valid and vrules(r) & {"bad_archive", "bad_crc", "truncated_archive"}
    p = tmp_path / "trailing.csv.gz"
    p.write_bytes(g + b"garbage after the stream")
    check_both(parse, p, "bad_archive")


def test_unterminated_quoted_field_over_the_record_limit(parse, tmp_path):
    """A valid header then an unterminated quoted field longer than the record limit: parse was ok
    with 0 rows and validate crashed (ArrowInvalid "straddling object")."""
    p = tmp_path / "field.csv"
    with open(p, "wb") as f:
        f.write(tall_payload(1) + b'x,"')
        for _ in range(3 * MAX_RECORD_BYTES // 1024**2 + 4):  # ~100 MB as in the issue
            f.write(b"y" * 1024**2)
    check_both(parse, p, "record_too_large")


def test_line_without_newline_is_not_an_empty_file(parse, tmp_path):
    """A 65 MiB line without a line break (over main's 64 MiB header scan) was reported as
    ``empty_file``; now it is a record over the limit."""
    p = tmp_path / "line.csv"
    with open(p, "wb") as f:
        for _ in range(65):
            f.write(b"a" * 1024**2)
    s, _rows = parse(p)
    assert not s.ok and "record_too_large" in rules(s) and "empty_file" not in rules(s)
    r = validate_file(p)
    assert not r.valid and "record_too_large" in vrules(r)


def test_record_longer_than_a_block_still_validates(tmp_path):
    """A 3 MiB record (over the validator's 1 MiB Arrow block, under the limit) crashed validate;
    it is now read with bigger blocks, like the parser does."""
    lines = TALL.read_bytes().splitlines(True)
    row = lines[3].split(b",", 1)
    long_row = b'"' + b"d" * (3 * 1024**2) + b'",' + row[1]
    p = tmp_path / "long.csv"
    p.write_bytes(b"".join(lines[:3]) + long_row + b"".join(lines[4:]))
    r = validate_file(p)
    assert r.rows_checked == len([x for x in lines[3:] if x.strip()])


def test_ingest_parses_each_file_on_its_own_with_the_configured_caps(tmp_path, monkeypatch):
    """One file that fails never stops the hospital's others (no per-file guard before), and
    PRICE_PIPELINE_MAX_DECOMPRESSION_RATIO reaches the parser (it always used 200:1)."""
    from price_pipeline.lib.fetch.files import FileOutcome, FilesManifest
    from price_pipeline.lib.lake import layout
    from price_pipeline.lib.lake.storage import LocalLake
    from price_pipeline.lib.parse import versions as parse_versions
    from price_pipeline.lib.parse.mrf import parse_to_parquet as real_parse
    from price_pipeline.settings import Settings

    lake = LocalLake(tmp_path / "lake")
    files = {"boom": b"whatever", "bomb": gzip.compress(tall_payload(3000)), "good": TALL.read_bytes()}
    outcomes = []
    for name, data in files.items():
        key = f"raw/{name}"
        lake.put_bytes(data, key)
        outcomes.append(FileOutcome(url=f"https://h.example/{name}", status="ok", sha256=name * 4,
                                           raw_key=key))
    lake.put_bytes(FilesManifest("h1", outcomes).to_json(), layout.files_manifest_key("h1"))

    def flaky(path, out, **kw):  # an unexpected failure of the parser on one file
        if Path(path).read_bytes() == b"whatever":
            raise RuntimeError("parser bug")
        return real_parse(path, out, **kw)

    monkeypatch.setattr(parse_versions, "parse_to_parquet", flaky)
    monkeypatch.setenv("PRICE_PIPELINE_MAX_DECOMPRESSION_RATIO", "5")
    monkeypatch.setenv("PRICE_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    settings = Settings.from_env()
    assert settings.archive_limits()["max_ratio"] == 5
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    versions = {v.url.rsplit("/", 1)[1]: v.summary for v in
                parse_versions.parse_hospital_files("h1", lake=lake, scratch_dir=scratch, settings=settings)}
    assert set(versions) == {"boom", "bomb", "good"}
    assert not versions["boom"].ok and versions["boom"].findings[0].rule == "parse_failed"
    # 13 MiB at ~60:1 passes the built-in 200:1 but not the configured 5:1 (after the 64 MiB
    # grace, which the ratio cap keeps): the bytes cap is the other configured limit
    monkeypatch.setenv("PRICE_PIPELINE_MAX_DOWNLOAD_BYTES", str(4 * 1024**2))
    settings = Settings.from_env()
    versions = {v.url.rsplit("/", 1)[1]: v.summary for v in
                parse_versions.parse_hospital_files("h1", lake=lake, scratch_dir=scratch, settings=settings)}
    assert not versions["bomb"].ok
    assert "decompression_limit" in {f.rule for f in versions["bomb"].findings}
    assert versions["good"].ok and versions["good"].rows_parsed > 0


def test_header_only_csv_is_not_a_crash(parse, tmp_path):
    """Header rows and no data rows: a complete file, parsed ok with no rows (the hospital-level
    check mrf_parsed_has_rows says "header present, no data rows", on main) and the validator's
    min_rows; the end record appended after the payload never becomes a row."""
    lines = TALL.read_bytes().splitlines(True)
    p = tmp_path / "head.csv"
    p.write_bytes(b"".join(lines[:3]))
    s, rows = parse(p)
    assert s.ok and rows == [] and s.rows_parsed == 0 and not s.findings
    r = validate_file(p)
    assert not r.valid and "min_rows" in vrules(r)


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="open (issue 19): alone this peaks at ~200-235 MB, but in one full-suite "
                   "run on 2026-12-07 it peaked at 1,025 MB; the cause is not yet found")
def test_giant_line_peak_rss_under_1_gb(tmp_path):
    """One 96 MiB line after the header (the fuzz harness's giant_line): parse and validate stay
    under 1 GB peak RSS (1.03-1.4 GB before the record limit bounded Arrow's block)."""
    p = tmp_path / "giant.csv"
    with open(p, "wb") as f:
        f.write(tall_payload(1) + b'x,"')
        for _ in range(96):
            f.write(b"z" * 1024**2)
        f.write(b'",a,b\n')
    res = run_limited(p, tmp_path)
    assert not res["ok"] and "record_too_large" in res["rules"] and res["valid"] is False
    assert res["rss_mb"] < 1000, res


def test_payload_limit_message_is_readable():
    with pytest.raises(InputLimit) as e:
        JsonGuard(max_depth=2).feed(b"[[[]]]")
    assert e.value.rule == "json_too_deep" and "2 deep" in e.value.message


def test_corrupt_zip_member_offset_is_a_finding(parse, tmp_path):
    """A zip whose directory points before the start of the file: zipfile's seek fails with a bare
    OSError (EINVAL), which escaped both parse and validate (found by the fuzz slice)."""
    p = _zip(tmp_path, "off.zip", tall_payload(2))
    b = bytearray(p.read_bytes())
    eocd = b.rfind(b"PK\x05\x06")
    struct.pack_into("<I", b, eocd + 16, struct.unpack_from("<I", b, eocd + 16)[0] + 1000)
    p.write_bytes(bytes(b))
    check_both(parse, p, "bad_archive")


def test_hostile_header_values_are_not_exceptions(parse, tmp_path):
    """Found by the fuzz slice: a ``code | 999…9`` column (20,000 digits) passed Python's int()
    limit in the parser's and the validator's column handling, and a header field over the csv
    module's 128 KiB field limit raised csv.Error."""
    lines = TALL.read_bytes().splitlines(True)
    cols = lines[2].replace(b"code | 1", b"code | " + b"9" * 20_000, 1)
    assert cols != lines[2]
    p = tmp_path / "digits.csv"
    p.write_bytes(lines[0] + lines[1] + cols + b"".join(lines[3:]))
    s, _rows = parse(p)
    assert s.format == "csv_tall"
    r = validate_file(p)
    assert not r.valid
    p = tmp_path / "field.csv"
    p.write_bytes(lines[0] + b'"' + b"h" * (1024**2) + b'",' + lines[1] + b"".join(lines[2:]))
    s, _rows = parse(p)
    assert s.format == "csv_tall"
    assert validate_file(p).valid is False


def test_stray_quote_in_the_header_rows_is_a_finding(parse):
    """Found by the full fuzz run (input 4228, saved as a fixture): a quote inside an unquoted field
    of rows 1-3 made the record scanner and the csv module split the rows differently, and the
    parser raised IndexError (``ends[col_row]``)."""
    from ..conftest import BROKEN

    p = BROKEN / "fuzz_stray_quote_header.csv"
    s, _rows = parse(p)
    assert not s.ok and "not_an_mrf" in rules(s)
    assert validate_file(p).valid is False
