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
    path, out, part = sys.argv[1], sys.argv[2], sys.argv[4]
    def cpu():
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime
    if part == "parse":
        from price_pipeline.lib.parse.mrf import parse_to_parquet
        t0 = cpu()
        s = parse_to_parquet(path, out, json_full_parse_below=int(sys.argv[3]))
        result = {"ok": s.ok, "rules": sorted({f.rule for f in s.findings}), "parse_cpu": cpu() - t0,
                  "rows": s.rows_parsed}
    else:
        from price_pipeline.lib.validate import validate_file
        t0 = cpu()
        r = validate_file(path)
        result = {"valid": r.valid, "vrules": sorted(r.errors_by_rule), "validate_cpu": cpu() - t0,
                  "rows_checked": r.rows_checked}
    # This process's own peak (VmHWM of its address space), not ru_maxrss: at exec Linux carries
    # the parent's peak RSS into the child's ru_maxrss (subprocess vforks, so the child's old
    # address space is the pytest process's), and a pytest process that reached 1 GB in earlier
    # tests made this parse "peak" at 1,025 MB in a full-suite run (~240 MB alone).
    hwm = [int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")][0]
    print(json.dumps({**result, "rss_mb": hwm / 1024,
                      "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def run_limited(path: Path, tmp_path: Path, full_parse_below: int = 8 * 1024**2) -> dict:
    """parse and validate ``path``, each in a fresh child process (as a run worker does) under a
    4 GiB address-space limit (on main, the deep file grew to 24 GB and the long integer killed
    the interpreter with SIGSEGV). The two children run at the same time (the floods below take
    tens of CPU-seconds each, and a serial suite leaves the second core idle); CPU times are each
    child's own, ``rss_mb`` / ``ru_maxrss_mb`` the higher of the two children's own peaks,
    whatever this process's."""
    root = Path(__file__).resolve().parents[3]
    children = {
        part: subprocess.Popen([sys.executable, "-c", _LIMITED, str(path), str(tmp_path / "out.parquet"),
                                str(full_parse_below), part],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
        for part in ("parse", "validate")
    }
    results = {}
    try:
        for part, proc in children.items():
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, (part, proc.returncode, stderr[-2000:])
            results[part] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    parse, validate = results["parse"], results["validate"]
    return {**parse, **validate, "rss_mb": max(parse["rss_mb"], validate["rss_mb"]),
            "ru_maxrss_mb": max(parse["ru_maxrss_mb"], validate["ru_maxrss_mb"])}


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


def _reference_rules(data: bytes, *, max_depth: int, max_digits: int, check_depth: bool = True) -> set[str]:
    """Every rule a byte-by-byte reading of ``data`` breaks (the slow, obvious JsonGuard)."""
    found = set()
    if b"\x0b" in data or b"\x0c" in data:
        found.add("json_syntax_error")
    depth = run = 0
    in_str = escaped = False
    for c in data:
        if escaped:  # the byte after a backslash: neither a quote nor a digit
            escaped = False
            run = 0
            continue
        if c == 0x5C:
            escaped = True
            run = 0
            continue
        if 0x30 <= c <= 0x39:
            run += 1
            if run > max_digits and not in_str:
                found.add("number_too_long")
            continue
        run = 0
        if c == 0x22:
            in_str = not in_str
        elif not in_str and c in b"[{":
            depth += 1
            if depth > max_depth and check_depth:
                found.add("json_too_deep")
        elif not in_str and c in b"]}":
            depth -= 1
    return found


def test_json_guard_matches_a_byte_by_byte_reference():
    """Random JSON-ish bytes (quotes, escapes, brackets, digit runs around the limit) cut at
    random: the guard stops exactly when the byte-by-byte reading finds a broken limit, with one
    of the rules it finds (the digit check samples every 16th byte before its exact scan)."""
    import random

    rng = random.Random(19)
    pieces = [b"{", b"}", b"[", b"]", b'"', b"\\", b'\\"', b"\\\\", b",", b":", b" ", b"a", b"1.5", b"-0"]
    for case in range(600):
        max_digits = rng.choice((3, 17, 31, 32, 40, 100, 256))
        max_depth = rng.choice((2, 5, 64))
        out = []
        for _ in range(rng.randrange(1, 60)):
            if rng.random() < 0.25:
                out.append(b"7" * rng.choice((1, max_digits - 1, max_digits, max_digits + 1, 2 * max_digits + 3)))
            elif rng.random() < 0.01:
                out.append(b"\x0c")
            else:
                out.append(rng.choice(pieces))
        data = b"".join(out)
        check_depth = rng.random() < 0.7
        want = _reference_rules(data, max_depth=max_depth, max_digits=max_digits, check_depth=check_depth)
        g = JsonGuard(max_depth=max_depth, max_digits=max_digits)
        g.check_depth = check_depth
        got = "ok"
        try:
            i = 0
            while i < len(data):
                step = rng.choice((1, 2, 5, 16, 17, 100, 1000, len(data)))
                g.feed(data[i : i + step])
                i += step
        except InputLimit as e:
            got = e.rule
        assert (got == "ok") == (not want) and (got == "ok" or got in want), (case, got, want, data[:200])


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
def test_giant_line_peak_rss_under_1_gb(tmp_path):
    """One 96 MiB line after the header (the fuzz harness's giant_line): parse and validate stay
    under 1 GB peak RSS (1.03-1.4 GB before the record limit bounded Arrow's block; ~240 MB now,
    measured in the child alone: see run_limited)."""
    p = tmp_path / "giant.csv"
    with open(p, "wb") as f:
        f.write(tall_payload(1) + b'x,"')
        for _ in range(96):
            f.write(b"z" * 1024**2)
        f.write(b'",a,b\n')
    res = run_limited(p, tmp_path)
    assert not res["ok"] and "record_too_large" in res["rules"] and res["valid"] is False
    assert res["rss_mb"] < 1000, res


@pytest.mark.slow
def test_child_rss_figure_excludes_this_process_peak(tmp_path):
    """The measure itself: this process reaching a 1 GiB peak must not show in the child's figure
    (with ru_maxrss it did, and the giant-line test read 1,025 MB in a full-suite run)."""
    ballast = bytearray(1024**3)
    ballast[::4096] = b"\1" * (len(ballast) // 4096)  # touch every page: resident
    try:  # (held during the call: with fork or vfork, ru_maxrss then carries it)
        res = run_limited(JSON_EX, tmp_path)
    finally:
        del ballast
    assert res["ru_maxrss_mb"] >= 1024  # the flawed figure carries this process's peak ...
    assert res["rss_mb"] < 500, res  # ... the child's own does not (~120 MB for this small file)


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


# --- blank-line floods: no dearer than ordinary rows, row numbers unchanged ---------------------


def _flood(tmp_path: Path, name: str, line: bytes, size: int) -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(tall_payload(0) + line * (size // len(line)), 1))
    return p


@pytest.mark.slow
@pytest.mark.parametrize("line", [b"\n", b"\r\n", b" " * 64 + b"\n"], ids=["lf", "crlf", "spaces"])
def test_blank_line_flood_costs_about_what_ordinary_rows_cost(tmp_path, line):
    """Fuzz input #553 (family bomb): a header and 16 MiB of blank lines, gzipped to 17 KB. Each
    blank line was a row (or an invalid-row callback into Python) to Arrow: parse 31 s, validate
    49 s and 886 MB, against 2.2 s / 4.0 s / 230 MB for 16 MiB of ordinary rows of the same
    file. Measured in child processes (CPU time, so other load matters little), as a ratio."""
    size = 16 * 1024**2
    rows = tall_payload(1).splitlines(True)
    ordinary = tmp_path / "rows.csv.gz"
    body = b"".join(rows[3:])
    ordinary.write_bytes(gzip.compress(tall_payload(0) + body * (size // len(body)), 1))
    base = run_limited(ordinary, tmp_path)
    flood = run_limited(_flood(tmp_path, "flood.csv.gz", line, size), tmp_path)
    assert flood["ok"] and flood["valid"] and flood["vrules"] == [], flood  # (no data rows: an alert only)
    assert flood["parse_cpu"] < 2 * base["parse_cpu"] + 0.2, (flood, base)
    assert flood["validate_cpu"] < 2 * base["validate_cpu"] + 0.2, (flood, base)
    assert flood["rss_mb"] < 1.5 * base["rss_mb"], (flood, base)


@pytest.mark.slow
def test_a_flood_of_short_rows_is_read_in_bounded_memory(tmp_path):
    """A header and 400,000 one-field rows (0.8 MB): Arrow returns no batch for a body without
    one well-formed row and reads it whole inside open_csv, so every row waited in memory for a
    batch that never came (parser and validator ~1 GB each at a million rows). Now they are
    handed over every PENDING_INVALID_ROWS / PENDING_RECOVERED_ROWS rows; every row is still kept
    (padded, with a short_row finding) and checked. 400,000 rows (not a million: ~19 CPU-s
    instead of ~50) still separate the two: the code before that change peaks at 480 MB
    (parser) and 453 MB (validator) here, this code at ~195 MB whatever the row count."""
    n = 400_000
    p = tmp_path / "short_flood.csv.gz"
    p.write_bytes(gzip.compress(tall_payload(0) + b"x\n" * n, 1))
    res = run_limited(p, tmp_path)
    assert res["rows"] == n and res["rows_checked"] == n and "short_row" in res["rules"], res
    assert res["rss_mb"] < 320, res


def _blank_run_file(line_end: bytes, stray_quote: bool) -> bytes:
    """The tall example's rows with runs of blank lines (empty, or spaces and tabs) between them
    and around bad rows (short, long, non-numeric), a quoted value holding blank lines, blank
    lines at the end; with ``stray_quote`` a quote in the middle of a field first (text to
    Arrow), which makes the quote count wrong about the quoted value's blank lines."""
    lines = TALL.read_bytes().splitlines(True)
    ncols = lines[3].count(b",")
    out = [b"".join(lines[:3])]
    for i, r in enumerate(lines[3:]):
        out.append(r.rstrip(b"\r\n") + line_end)
        out.append((line_end, b"  \t" + line_end, line_end * 3, line_end + b" " + line_end * 2, b"")[i % 5])
        if i == 3:
            out.append(b"short,row" + line_end + line_end * 3)
        if i == 5:
            out.append(b"a" + b",x" * (ncols + 3) + line_end * 3)
        if i == 7:
            out.append(b'Quoted,"multi' + line_end * 4 + b'line"' + b"," * (ncols - 1) + line_end * 3)
        if i == 9 and stray_quote:
            out.append(b'Stray,ab"c,"q' + line_end * 3 + b'q"' + b"," * (ncols - 2) + line_end * 4)
        if i == 11:
            out.append(b"notnum" + b",zz" * ncols + line_end)
    out.append(line_end * 4 + b"  " + line_end + line_end * 2)
    return b"".join(out)


def _outcome(parse, path: Path) -> tuple:
    s, rows = parse(path)
    r = validate_file(path)
    return ((s.ok, s.rows_parsed, s.rows_quarantined, [(f.rule, f.severity, f.row, f.message) for f in s.findings]),
            sorted((x["source_row"], x["description"]) for x in rows),
            (r.valid, r.errors_by_rule, [(f["rule"], f["row"], f["cell"], f["message"]) for f in r.findings]))


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("stray_quote", [False, True], ids=["quotes", "stray-quote"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_blank_runs_keep_row_numbers_and_findings(parse, tmp_path, monkeypatch, line_end, stray_quote, gz):
    """Collapsing blank-line runs changes no finding, row number or count: the same outcome as
    with every blank line read by Arrow (the behaviour before, kept behind COLLAPSE_BLANK_RUNS),
    and the row numbers that behaviour gave (captured from it before the change)."""
    from price_pipeline.lib.parse.mrf import csv_reader

    data = _blank_run_file(line_end, stray_quote)
    p = tmp_path / ("blank_runs.csv.gz" if gz else "blank_runs.csv")
    p.write_bytes(gzip.compress(data) if gz else data)
    made = []
    real = csv_reader.BlankRunReader

    class Spy(real):
        def __init__(self, *a):
            super().__init__(*a)
            made.append(self)

    monkeypatch.setattr(csv_reader, "BlankRunReader", Spy)
    import price_pipeline.lib.validate.csv_body as csv_body
    monkeypatch.setattr(csv_body, "BlankRunReader", Spy)
    collapsed = _outcome(parse, p)
    assert made and all(b.inserted for b in made)  # runs were collapsed in parse and validate
    monkeypatch.setattr(csv_reader, "COLLAPSE_BLANK_RUNS", False)
    assert collapsed == _outcome(parse, p)
    (ok, n, quarantined, findings), rows, (valid, valid_rules, vfindings) = collapsed
    # the numbers the parser and validator gave before blank runs were collapsed (captured then)
    assert [(f[0], f[2]) for f in findings if f[0] != "non_numeric_amount"] == [
        ("short_row", 16), ("long_row", 23), ("blank_rows", None)]
    assert (ok, n, quarantined) == (True, 49 if stray_quote else 48, 1)
    assert [r for r, _d in rows][:8] == [4, 6, 8, 12, 16, 20, 21, 26]
    assert rows[-1][0] == (135 if stray_quote else 131)
    assert not valid and vfindings[0][:2] == ("cond_code_type_pair", 32)
    assert valid_rules == ({"allowed_value": 11, "cond_code_type_pair": 2, "cond_item_requires_charge": 3,
                            "invalid_count": 2, "invalid_number": 20, "required_value": 3} if stray_quote else
                           {"allowed_value": 10, "cond_code_type_pair": 2, "cond_item_requires_charge": 2,
                            "invalid_count": 2, "invalid_number": 20, "required_value": 2})


@pytest.mark.parametrize("fake", [b"\x1fprice-pipeline-blank-lines\x1f3:3,", b"\x1fprice-pipeline-blank-lines\x1fx"])
def test_a_record_that_looks_like_a_blank_run_mark_changes_nothing(parse, tmp_path, monkeypatch, fake):
    """Data that starts with the mark's text (well formed or not) is data: same outcome as with
    the blank lines read one by one."""
    from price_pipeline.lib.parse.mrf import csv_reader

    lines = tall_payload(1).splitlines(True)
    data = b"".join(lines[:6]) + b"\n\n\n" + fake + b"\n\n\n" + b"".join(lines[6:]) + b"\n\n"
    p = tmp_path / "fake_mark.csv"
    p.write_bytes(data)
    collapsed = _outcome(parse, p)
    monkeypatch.setattr(csv_reader, "COLLAPSE_BLANK_RUNS", False)
    assert collapsed == _outcome(parse, p)
