"""Fuzz inputs: one deterministic input per (master seed, index), and what it may legitimately do.

:func:`generate` picks a mutation *family* round-robin from :data:`FAMILIES` (so every slice of
consecutive indices covers every family) and everything else from ``random.Random(f"{seed}:{index}")``
— an input is rebuilt from its two numbers alone, in any process, in any order.

Each :class:`FuzzInput` carries its oracle:

``must_fail``
    A reason, when the bytes are truncated or corrupt in a way a reader can see: then
    ``parse_to_parquet`` must not return ``ok: true`` and ``validate_file`` must not return
    ``valid: true``. Decided from the bytes, not from the parser:

    * a gzip or zip that the standard library's decoder (CRC-32 and sizes checked) rejects —
      truncated anywhere, corrupt data or headers, bad CRC, trailing garbage, an encrypted
      member, a compression method it cannot read (deflate64, AES, zstd, ...);
    * an archive with no MRF in it (only a prose readme, images, an empty or junk member);
    * a decompression bomb: more than ``RATIO_GRACE_BYTES`` (64 MiB) of output at more than
      ``DEFAULT_MAX_RATIO`` (200:1), the parser's own documented limits;
    * a JSON payload that is not one complete JSON document (Python's :func:`json.loads`,
      lenient: control characters in strings, NaN and any number length allowed; text
      decoded as UTF-8, else cp1252 as the parser does): a truncated document, a broken token,
      unbalanced nesting, trailing garbage;
    * a CSV payload that ends inside a quoted field (RFC 4180 quote state at end of file):
      an unterminated quote, a cut inside a quoted field.

    Legitimately undetectable, so no ``ok`` constraint (crash/hang/memory still apply): a plain
    CSV cut at a row boundary or inside an unquoted field (a valid, smaller or shorter-rowed
    file), bytes flipped inside CSV cells, valid JSON whose values changed, flips the gzip
    format does not cover (MTIME, XFL, OS bytes; unused bits of the last deflate byte) or that
    leave the decoded payload identical, a damaged junk member of a zip that is not read,
    deep nesting and huge numbers in otherwise valid JSON, an archive inside an archive.

``compare_plain``
    The payload is a valid seed, only re-packed (other gzip level or header fields, several
    gzip members, stored/deflate/bzip2/lzma zip members, zip64, extra junk or non-MRF members
    smaller than the MRF): parse and validate must give what the plain seed gives (ok, rows,
    quarantined rows, format, version; valid, error counts by rule).
"""

from __future__ import annotations

import io
import json
import random
import re
import zipfile
from dataclasses import dataclass, field

from . import archives
from .corpus import Seed, seeds

# The parser's documented decompression limits (price_pipeline/lib/parse/mrf/sniff.py). Copied, not
# imported: the harness can run against another checkout's code (--code-root) without importing
# it in the generating process.
MAX_RATIO = 200.0
RATIO_GRACE_BYTES = 64 * 1024**2

# must_fail reasons (the key is what a failure's signature shows).
REASONS = {
    "empty": "nothing but whitespace/NUL/BOM in the payload",
    "json_incomplete": "JSON payload is not one complete document (truncated, broken token, unbalanced)",
    # The parser must fail it; the validator may call it valid with a trailing_data alert (the
    # official validator stops reading at the end of the document: docs/quality.md).
    "json_trailing": "a complete JSON document followed by other bytes",
    "csv_open_quote": "CSV payload ends inside a quoted field",
    "gzip_corrupt": "gzip stream truncated or corrupt (the standard library's decoder rejects it)",
    "zip_unreadable": "zip directory unreadable, or no member to read",
    "zip_member_unreadable": "zip member unreadable: truncated, corrupt, bad CRC, encrypted or unsupported method",
    "zip_no_mrf": "zip archive holds no MRF (prose, images, empty or junk members only)",
    "bomb": "decompression bomb: over 64 MiB of output at more than 200:1",
}

# (family, weight): one round of the schedule lists each family ``weight`` times.
FAMILIES: list[tuple[str, int]] = [
    ("truncate", 12),
    ("truncate_row_boundary", 4),
    ("truncate_in_quotes", 4),
    ("flip", 12),
    ("insert", 8),
    ("delete", 6),
    ("splice", 4),
    ("nest", 6),
    ("inflate_number", 6),
    ("unterminated", 4),
    ("giant_line", 2),
    ("reencode", 2),
    ("gzip_truncate", 8),
    ("gzip_corrupt", 8),
    ("gzip_trailing", 2),
    ("zip_truncate", 6),
    ("zip_corrupt", 8),
    ("zip_bad_crc", 4),
    ("zip_encrypted", 2),
    ("zip_unsupported_method", 2),
    ("zip_non_mrf", 2),
    ("zip_mixed", 2),
    ("recompress", 6),
    ("double_wrap", 2),
    ("bomb", 1),
]
# One round of the schedule: each family ``weight`` times, spread evenly over the round (a family
# of weight w sits at fractions (k + 0.5) / w), so short slices still see every family.
SCHEDULE: list[str] = [name for _pos, _i, name in sorted(
    ((k + 0.5) / w, i, name) for i, (name, w) in enumerate(FAMILIES) for k in range(w))]

_SPECIAL = [b'"', b",", b"\n", b"\r", b"{", b"}", b"[", b"]", b":", b"\\", b"\x00", b"\xff", b"\xc3", b"|",
            b"\t", b"-", b"e", b"0", b"9", b".", b"'", b"\xef\xbb\xbf", b"\xe2\x80", b"\xfe\xff"]
_INSERTS = [b'"', b'""', b'\\', b'\\u', b'\\ud800', b'"\\ud800"', b"\n\n", b"\r", b",,,,,,", b"\x00" * 7,
            b"\xef\xbb\xbf", b"NaN", b"-Infinity", b"1e999999", b"{", b"[", b"]]]]", b"}", b"null",
            b'{"a":', b"<html>", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"=cmd|' /C calc'!A0"]
_JSON_VALUE = re.compile(rb'\s*(?:"(?:[^"\\]|\\.)*"|[-0-9.eE+]+|true|false|null)')
_NUMBER = re.compile(rb"(?<![\w.\"])[1-9][0-9]{0,12}(?:\.[0-9]+)?(?![\w.])")
_PROSE = (b"Standard charges for this hospital are published at the link below.\n"
          b"This archive contains documentation only. Contact billing for questions.\n") * 8


@dataclass
class Repeat:
    """``count`` copies of ``chunk`` (giant inputs are written streamed, never held whole)."""

    chunk: bytes
    count: int

    def __len__(self) -> int:
        return len(self.chunk) * self.count


@dataclass
class FuzzInput:
    """One fuzz input and its oracle (see the module docstring)."""

    index: int
    seed: str
    kind: str  # payload kind: "csv" | "json"
    family: str
    steps: list[str]
    parts: list  # bytes | Repeat, concatenated
    ext: str
    must_fail: str | None = None
    compare_plain: bool = False
    stream_wrap: str | None = None  # "gzip" | "zip": wrap ``parts`` while writing (giant inputs)
    payload_bytes: int = 0  # decompressed size, for the time limit
    parse_opts: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.family}:{'+'.join(self.steps)}"

    def data(self) -> bytes:
        """The whole input in memory (only for inputs without ``Repeat`` parts)."""
        return b"".join(p if isinstance(p, bytes) else p.chunk * p.count for p in self.parts)

    def _chunks(self):
        for p in self.parts:
            if isinstance(p, bytes):
                yield p
            else:
                block = p.chunk * max(1, (1 << 20) // max(1, len(p.chunk)))
                per = len(block) // len(p.chunk)
                full, rest = divmod(p.count, per)
                for _ in range(full):
                    yield block
                if rest:
                    yield p.chunk * rest

    def write(self, path: str) -> int:
        """Write the input file; returns its size in bytes. A bomb's verdict is settled here, from
        the real compressed size (see the ``bomb`` family)."""
        with open(path, "wb") as f:
            if self.stream_wrap == "gzip":
                archives.gzip_stream(self._chunks(), f, level=9)
            elif self.stream_wrap == "zip":
                archives.zip_stream("prices.json" if self.kind == "json" else "prices.csv", self._chunks(), f)
            else:
                for c in self._chunks():
                    f.write(c)
            size = f.tell()
        if self.family == "bomb":
            ratio = self.payload_bytes / max(1, size)
            self.steps.append(f"ratio={ratio:.0f}")
            self.must_fail = "bomb" if self.payload_bytes > RATIO_GRACE_BYTES and ratio > MAX_RATIO else None
        return size


# -- oracle helpers -----------------------------------------------------------------------------


def decode_text(data: bytes, encoding: str) -> str:
    """Payload text the way the parser reads it: the seed's encoding, UTF-8 falling back to cp1252."""
    if encoding.startswith("utf-16"):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


_CSV_TOKENS = re.compile(r'[",\r\n]')


def csv_quote_scan(text: str) -> tuple[bool, list[int], list[int]]:
    """RFC 4180 quote state over ``text``: (ends inside a quoted field, positions just after each
    record end outside quotes, positions inside quoted fields). A quote opens a quoted field only
    at the start of a field; inside one, ``""`` is an escaped quote."""
    in_q = False
    field_start = True
    row_ends: list[int] = []
    inside: list[int] = []
    i = 0  # just after the previous token
    n = len(text)
    while True:
        m = _CSV_TOKENS.search(text, i)
        if m is None:
            break
        p = m.start()
        c = text[p]
        if in_q:
            if c == '"':
                if p + 1 < n and text[p + 1] == '"':
                    i = p + 2
                    continue
                in_q = False
                field_start = False
            elif len(inside) < 4096:
                inside.append(p)
            i = p + 1
            continue
        if p > i:
            field_start = False  # ordinary characters since the previous token
        if c == '"':
            if field_start:
                in_q = True
                if len(inside) < 4096:
                    inside.append(p + 1)
            field_start = False
        elif c == ",":
            field_start = True
        else:
            field_start = True
            if len(row_ends) < 100000:
                row_ends.append(p + 1)
        i = p + 1
    return in_q, row_ends, inside


def csv_unterminated(data: bytes, encoding: str) -> bool:
    """Does the CSV payload end inside a quoted field?"""
    return csv_quote_scan(decode_text(data, encoding))[0]


def json_complete(data: bytes, encoding: str) -> bool:
    """Is the payload exactly one complete JSON document (leniently)?"""
    text = decode_text(data, encoding).lstrip("\ufeff")
    try:
        json.loads(text, strict=False, parse_int=len, parse_float=len, parse_constant=len)
        return True
    except (ValueError, RecursionError):
        return False


def json_then_bytes(data: bytes, encoding: str) -> bool:
    """Is the payload one complete JSON document followed by something other than whitespace?"""
    text = decode_text(data, encoding).lstrip("\ufeff").lstrip(" \t\r\n")
    try:
        _doc, end = json.JSONDecoder(strict=False, parse_int=len, parse_float=len,
                                     parse_constant=len).raw_decode(text)
    except (ValueError, RecursionError):
        return False
    return bool(text[end:].strip(" \t\r\n"))


def payload_expectation(data: bytes, seed: Seed) -> str | None:
    """The must-fail reason of a (possibly mutated) plain payload, or None."""
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf"):
        return "empty"
    if seed.kind == "json":
        if json_complete(data, seed.encoding):
            return None
        return "json_trailing" if json_then_bytes(data, seed.encoding) else "json_incomplete"
    return "csv_open_quote" if csv_unterminated(data, seed.encoding) else None


# -- payload mutations ------------------------------------------------------------------------


def _pos(rng: random.Random, n: int) -> int:
    return rng.randrange(n) if n > 0 else 0


def _flip(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    k = rng.choice((1, 1, 1, 2, 3, 5, 8))
    how = []
    for _ in range(k):
        p = _pos(rng, len(b))
        if not b:
            break
        r = rng.random()
        if r < 0.4:
            b[p] ^= 1 << rng.randrange(8)
            how.append(f"bit@{p}")
        elif r < 0.7:
            s = rng.choice(_SPECIAL)
            b[p : p + 1] = s[:1]
            how.append(f"set@{p}={s[:1]!r}")
        else:
            b[p] = rng.randrange(256)
            how.append(f"byte@{p}")
    return bytes(b), "flip(" + ",".join(how) + ")"


def _insert(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    p = _pos(rng, len(data) + 1)
    if rng.random() < 0.6:
        ins = rng.choice(_INSERTS)
    else:
        ins = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 16, 64))))
    return data[:p] + ins + data[p:], f"insert@{p}({len(ins)}B)"


def _delete(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if len(data) < 2:
        return data, "delete(noop)"
    n = min(len(data) - 1, rng.choice((1, 1, 2, 3, 8, 64, 512, 4096)))
    p = _pos(rng, len(data) - n)
    return data[:p] + data[p + n :], f"delete@{p}({n}B)"


def _splice(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if len(data) < 4:
        return data, "splice(noop)"
    a = _pos(rng, len(data) - 1)
    n = min(len(data) - a, rng.choice((2, 16, 256, 4096, 65536)))
    chunk = data[a : a + n]
    p = _pos(rng, len(data) + 1)
    return data[:p] + chunk + data[p:], f"splice[{a}:{a + n}]@{p}"


def _truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    r = rng.random()
    if r < 0.15:
        cut = rng.randrange(min(64, len(data)) + 1)
    elif r < 0.3:
        cut = max(0, len(data) - rng.randrange(1, 33))
    else:
        cut = _pos(rng, len(data))
    return data[:cut], f"truncate@{cut}/{len(data)}"


def _inflate_number(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    nums = [m.span() for m in _NUMBER.finditer(data, 0, min(len(data), 4 << 20))]
    digits = rng.choice((4299, 4300, 4301, 4302, 5000, 20000, 100000, 1000000))
    lead = bytes([rng.choice(b"123456789")])
    big = lead + b"9" * (digits - 1)
    r = rng.random()
    if r < 0.2:
        big += b"." + b"9" * rng.choice((10, 5000))
    elif r < 0.35:
        big += b"e" + rng.choice((b"999999999", b"-999999999", b"+400"))
    elif r < 0.45:
        big = b"-" + big
    if not nums:
        return data + big, f"inflate(append,{digits}d)"
    a, b = rng.choice(nums)
    return data[:a] + big + data[b:], f"inflate@{a}({digits}d)"


def _reencode(data: bytes, seed: Seed, rng: random.Random) -> tuple[bytes, str]:
    text = decode_text(data, seed.encoding)
    r = rng.random()
    if r < 0.3:
        return text.encode("utf-16"), "utf16"
    if r < 0.5:
        return b"\xef\xbb\xbf" + text.lstrip("\ufeff").encode("utf-8"), "bom"
    if r < 0.7:
        return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"), "crlf"
    if r < 0.85:
        return text.encode("cp1252", "replace"), "cp1252"
    return text.replace("\r\n", "\n").replace("\n", "\r").encode("utf-8"), "cr_only"


_MUTATORS = {"flip": _flip, "insert": _insert, "delete": _delete, "splice": _splice, "truncate": _truncate,
             "inflate_number": _inflate_number}


def _nest(seed: Seed, rng: random.Random) -> tuple[bytes, str, bool]:
    """Deep nesting; returns (payload, step, balanced)."""
    depth = rng.choice((64, 512, 1000, 1024, 5000, 20000, 100000, 400000))
    r = rng.random()
    balanced = rng.random() < 0.75
    close_a = b"]" * depth if balanced else b"]" * rng.randrange(depth)
    if r < 0.3:
        return b"[" * depth + close_a, f"nest_array_doc({depth},{'balanced' if balanced else 'open'})", balanced
    if r < 0.45:
        close = b"}" * depth if balanced else b"}" * rng.randrange(depth)
        return b'{"a":' * depth + b"1" + close, f"nest_object_doc({depth})", balanced
    data = seed.data if seed.kind == "json" else seeds()[0].data
    # Replace one value of the document (after a key) with a deep array.
    keys = [m.end() for m in re.finditer(rb'"\s*:\s*', data[: 4 << 20])]
    if not keys:
        return b"[" * depth + close_a, f"nest_array_doc({depth})", balanced
    p = rng.choice(keys)
    m = re.compile(rb'"(?:[^"\\]|\\.)*"|[-0-9.eE+]+|true|false|null|\{|\[').match(data, p)
    end = m.end() if m and m.group()[:1] not in (b"{", b"[") else p
    return (data[:p] + b"[" * depth + close_a + data[end:],
            f"nest_value@{p}({depth},{'balanced' if balanced else 'open'})", balanced)


def _unterminated(data: bytes, seed: Seed, rng: random.Random) -> tuple[bytes, str]:
    text_tail = rng.choice((b"unterminated", b"a,b,c\nnext line", b"x" * 5000))
    if seed.kind == "json":
        strings = [m.start() + 1 for m in re.finditer(rb'"', data[: 4 << 20])]
        p = rng.choice(strings) if strings else len(data)
        return data[:p] + text_tail, f"cut_in_string@{p}"
    r = rng.random()
    if r < 0.5:
        body = data.rstrip(b"\r\n")
        return body + b',"' + text_tail, "append_open_quote"
    starts = [m.end() for m in re.finditer(rb"(?:^|[,\n])", data[: 4 << 20])]
    p = rng.choice(starts)
    return data[:p] + b'"' + data[p:], f"open_quote@{p}"


def _giant_line(seed: Seed, rng: random.Random) -> tuple[list, str, str | None, int]:
    """(parts, step, must_fail, payload size): one line of 1-96 MiB."""
    mib = rng.choice((1, 2, 4, 8, 8, 16, 32, 64, 96))
    n = mib << 20
    head = seed.data
    if seed.kind == "json":
        r = rng.random()
        p = head.find(b'"description"')
        if p < 0 or r < 0.25:  # a JSON document that is one giant string
            return [b'{"hospital_name":"', Repeat(b"A", n), b'"}'], f"json_giant_string({mib}MiB)", None, n + 20
        v = head.find(b":", p) + 1
        close = b'"' if r < 0.8 else b""
        m = _JSON_VALUE.match(head, v)
        q = m.end() if m else v  # end of the description's value
        parts = [head[:v], b'"', Repeat(b"B", n), close, head[q:] if close else b""]
        return (parts, f"json_giant_description({mib}MiB,{'closed' if close else 'open'})",
                None if close else "json_incomplete", len(head) + n)
    # Cut points are record ends outside quotes (a header cell may hold a quoted line break).
    _, ends, _ = csv_quote_scan(decode_text(head, seed.encoding))
    text = decode_text(head, seed.encoding)
    enc = "utf-8-sig" if seed.encoding == "utf-8-sig" else seed.encoding
    head3 = text[: ends[2] if len(ends) > 2 else len(text)].encode(enc, "replace")
    if not head3.endswith((b"\n", b"\r")):
        head3 += b"\n"
    r = rng.random()
    if r < 0.35:  # header rows, then one giant line without a newline
        return [head3, Repeat(b"x", n)], f"csv_giant_tail_line({mib}MiB)", None, n
    if r < 0.5:  # nothing but one giant line
        return [Repeat(rng.choice((b"a", b",", b" ", b"\x00")), n)], f"csv_one_giant_line({mib}MiB)", None, n
    if r < 0.8 and len(ends) > 3:  # a giant quoted field, terminated, in the middle of the file
        k = ends[rng.randrange(2, len(ends) - 1)]
        pre, post = text[:k].encode(enc, "replace"), text[k:].encode(seed.encoding.replace("-sig", ""), "replace")
        return ([pre, b'"', Repeat(b"q", n), b'",x\n', post], f"csv_giant_quoted_field({mib}MiB)",
                None, len(head) + n)
    # a giant quoted field that never ends
    return ([head3, b'"', Repeat(b"u", n)], f"csv_giant_unterminated({mib}MiB)",
            "csv_open_quote", n)


# -- archives ---------------------------------------------------------------------------------


def _member_name(seed: Seed) -> str:
    return "prices.json" if seed.kind == "json" else "prices.csv"


def _wrap_valid(data: bytes, seed: Seed, rng: random.Random) -> tuple[bytes, str, str]:
    """A valid archive of ``data``: (bytes, ext suffix, step)."""
    r = rng.random()
    if r < 0.5:
        lvl = rng.choice((0, 1, 6, 9))
        return archives.gzip_bytes(data, lvl), ".gz", f"gzip{lvl}"
    method = rng.choice((zipfile.ZIP_DEFLATED, zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2,
                         zipfile.ZIP_LZMA))
    return archives.zip_bytes([(_member_name(seed), data, method)]), ".zip", f"zip{method}"


def zip_choice(data: bytes) -> str | None:
    """The member the parser reads (its documented rule in sniff.py: skip directories,
    ``__MACOSX/`` and dotfiles; prefer csv/json/txt/xlsx names; the largest), or None when the
    archive's directory cannot be read or holds nothing to read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except Exception:
        return None

    def junk(name: str) -> bool:
        base = name.rstrip("/").rsplit("/", 1)[-1]
        return name.startswith("__MACOSX/") or "/__MACOSX/" in name or base.startswith(".")

    real = [i for i in infos if not junk(i.filename)]
    pool = [i for i in real if i.filename.lower().endswith((".csv", ".json", ".txt", ".xlsx"))] or real
    return max(pool, key=lambda i: i.file_size).filename if pool else None


def zip_expectation(data: bytes, payload: bytes, payload_fail: str | None) -> str | None:
    """must_fail of a zip input whose MRF member should hold ``payload``."""
    member = zip_choice(data)
    if member is None:
        return "zip_unreadable"
    got = archives.reference_zip_member(data, member)
    if got is None:
        return "zip_member_unreadable"
    if got == payload:
        return payload_fail
    return None  # a different, intact member is read: nothing the reader could notice


def gzip_expectation(data: bytes, payload: bytes, payload_fail: str | None) -> str | None:
    got = archives.reference_gzip(data)
    if got is None:
        return "gzip_corrupt"
    return payload_fail if got == payload else None


# -- the generator ------------------------------------------------------------------------------


def family_of(index: int) -> str:
    return SCHEDULE[index % len(SCHEDULE)]


def _pick_seed(rng: random.Random, family: str) -> Seed:
    pool = seeds()
    if family == "nest":
        pool = tuple(s for s in pool if s.kind == "json") or pool
    if family in ("truncate_row_boundary", "truncate_in_quotes", "giant_line"):
        pool = tuple(s for s in pool if s.kind == "csv" and not s.encoding.startswith("utf-16")) or pool
    if family == "bomb":
        pool = tuple(s for s in pool if not s.encoding.startswith("utf-16"))
    return rng.choice(pool)


def generate(index: int, master_seed: int = 1) -> FuzzInput:
    """Input number ``index`` of the run seeded ``master_seed`` (deterministic)."""
    family = family_of(index)
    rng = random.Random(f"{master_seed}:{index}")
    seed = _pick_seed(rng, family)
    ext = ".json" if seed.kind == "json" else ".csv"
    inp = FuzzInput(index, seed.name, seed.kind, family, [], [], ext)
    data = seed.data
    if seed.kind == "json" and rng.random() < 0.35:
        # The chunked two-thread JSON reader, which normally starts at 8 MiB, on small inputs.
        inp.parse_opts = {"json_full_parse_below": 0, "json_chunk_bytes": rng.choice((256, 1024, 4096, 65536))}
        inp.steps.append(f"json_parallel({inp.parse_opts['json_chunk_bytes']})")

    if family in ("truncate", "flip", "insert", "delete", "splice", "inflate_number", "truncate_row_boundary",
                  "truncate_in_quotes", "unterminated", "nest", "reencode"):
        if family == "nest":
            data, step, balanced = _nest(seed, rng)
            inp.kind, inp.ext = "json", ".json"
            inp.steps.append(step)
            fail = None if balanced else "json_incomplete"
        elif family == "truncate_row_boundary":
            _, ends, _ = csv_quote_scan(decode_text(data, seed.encoding))
            text = decode_text(data, seed.encoding)
            cut = rng.choice(ends[2:] or ends or [len(text)])
            data = text[:cut].encode("utf-8-sig" if seed.encoding == "utf-8-sig" else seed.encoding, "replace")
            inp.steps.append(f"truncate_row@{cut}")
            fail = payload_expectation(data, seed)
        elif family == "truncate_in_quotes":
            text = decode_text(data, seed.encoding)
            _, _, inside = csv_quote_scan(text)
            cut = rng.choice(inside) if inside else _pos(rng, len(text))
            data = text[:cut].encode("utf-8-sig" if seed.encoding == "utf-8-sig" else seed.encoding, "replace")
            inp.steps.append(f"truncate_in_quotes@{cut}")
            fail = payload_expectation(data, seed)
        elif family == "unterminated":
            data, step = _unterminated(data, seed, rng)
            inp.steps.append(step)
            fail = payload_expectation(data, seed)
        elif family == "reencode":
            data, step = _reencode(data, seed, rng)
            inp.steps.append(step)
            enc = {"utf16": "utf-16", "cp1252": "cp1252"}.get(step, "utf-8")
            fail = payload_expectation(data, Seed(seed.name, seed.kind, data, enc))
        else:
            n = 1 if rng.random() < 0.75 else rng.choice((2, 3))
            for k in range(n):
                fam = family if k == 0 else rng.choice(("flip", "insert", "delete", "truncate"))
                data, step = _MUTATORS[fam](data, rng)
                inp.steps.append(step)
            fail = payload_expectation(data, seed)
        inp.payload_bytes = len(data)
        if rng.random() < 0.3 and len(data) < (8 << 20):
            data, suffix, step = _wrap_valid(data, seed, rng)
            inp.ext += suffix
            inp.steps.append(step)
        inp.parts = [data]
        inp.must_fail = fail
        return inp

    if family == "giant_line":
        parts, step, fail, size = _giant_line(seed, rng)
        inp.parts, inp.must_fail, inp.payload_bytes = parts, fail, size
        inp.steps.append(step)
        if rng.random() < 0.25:
            inp.stream_wrap = "gzip"
            inp.ext += ".gz"
            inp.steps.append("gzip_stream")
        return inp

    inp.payload_bytes = len(data)
    payload_fail = None
    if rng.random() < 0.25 and family not in ("recompress", "zip_mixed", "bomb"):
        # Corrupt payload inside a container: the payload's own verdict must survive the packing.
        data, step = _MUTATORS[rng.choice(("truncate", "flip", "delete"))](data, rng)
        inp.steps.append(step)
        payload_fail = payload_expectation(data, seed)

    if family in ("gzip_truncate", "gzip_corrupt", "gzip_trailing"):
        lvl = rng.choice((1, 6, 9))
        hdr = rng.random() < 0.3
        gz = archives.gzip_bytes(data, lvl, name=b"prices" + ext.encode() if hdr else None,
                                 comment=b"exported" if hdr and rng.random() < 0.5 else None)
        inp.ext += ".gz"
        if family == "gzip_truncate":
            r = rng.random()
            cut = (rng.randrange(1, min(30, len(gz))) if r < 0.2 else len(gz) - rng.randrange(1, 9) if r < 0.4
                   else rng.randrange(1, len(gz)))
            inp.steps.append(f"gzip{lvl}_truncate@{cut}/{len(gz)}")
            gz = gz[:cut]
        elif family == "gzip_corrupt":
            region = rng.random()
            b = bytearray(gz)
            for _ in range(rng.choice((1, 1, 2, 4))):
                if region < 0.1:
                    p = rng.randrange(min(10, len(b)))
                elif region < 0.25:
                    p = len(b) - 1 - rng.randrange(min(8, len(b)))
                else:
                    p = rng.randrange(10, max(11, len(b) - 8))
                b[p] ^= 1 << rng.randrange(8)
            gz = bytes(b)
            inp.steps.append(f"gzip{lvl}_flip")
        else:
            tail = rng.choice((b"\0" * 8, b"garbage", bytes(rng.randrange(256) for _ in range(64)), gz[:20]))
            gz += tail
            inp.steps.append(f"gzip{lvl}_trailing({len(tail)}B)")
        inp.parts = [gz]
        inp.must_fail = gzip_expectation(gz, data, payload_fail)
        return inp

    if family in ("zip_truncate", "zip_corrupt", "zip_bad_crc", "zip_encrypted", "zip_unsupported_method"):
        name = _member_name(seed)
        inp.ext += ".zip"
        if family == "zip_encrypted":
            if rng.random() < 0.7:
                z = archives.raw_zip(name, data, password=b"hospital", method=rng.choice((0, 8)))
                inp.steps.append("zipcrypto")
            else:
                z = archives.patch_member(archives.zip_bytes([(name, data, zipfile.ZIP_DEFLATED)]), name, flag_bits=1)
                inp.steps.append("encrypted_flag")
        elif family == "zip_unsupported_method":
            method = rng.choice((9, 9, 99, 93, 95, 98, 77))
            z = archives.raw_zip(name, data, method=method)
            inp.steps.append(f"method{method}")
        else:
            members = [(name, data, rng.choice((zipfile.ZIP_DEFLATED, zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED)))]
            if rng.random() < 0.4:
                members.append((f"__MACOSX/._{name}", b"\0\x05\x16\x07" + bytes(40), zipfile.ZIP_STORED))
            z = archives.zip_bytes(members, zip64=rng.random() < 0.15)
            if family == "zip_truncate":
                r = rng.random()
                cut = (rng.randrange(1, min(40, len(z))) if r < 0.15 else len(z) - rng.randrange(1, 23) if r < 0.35
                       else rng.randrange(1, len(z)))
                inp.steps.append(f"zip_truncate@{cut}/{len(z)}")
                z = z[:cut]
            elif family == "zip_bad_crc":
                if rng.random() < 0.5:
                    z = archives.patch_member(z, name, crc_xor=1 << rng.randrange(32))
                    inp.steps.append("crc_field")
                else:
                    span = archives.member_data_span(z, name)
                    b = bytearray(z)
                    if span and span[1] > span[0]:
                        p = rng.randrange(*span)
                        b[p] ^= 1 << rng.randrange(8)
                        inp.steps.append(f"member_data_flip@{p}")
                    z = bytes(b)
            else:
                b = bytearray(z)
                for _ in range(rng.choice((1, 1, 2, 3))):
                    p = rng.randrange(len(b))
                    b[p] ^= 1 << rng.randrange(8) if rng.random() < 0.6 else rng.randrange(1, 256)
                z = bytes(b)
                inp.steps.append("zip_flip")
        inp.parts = [z]
        inp.must_fail = zip_expectation(z, data, payload_fail)
        return inp

    if family == "zip_non_mrf":
        choice = rng.random()
        if choice < 0.3:
            members = [("readme.txt", _PROSE, zipfile.ZIP_DEFLATED)]
        elif choice < 0.5:
            members = [("logo.png", b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(2000)), 8),
                       ("report.pdf", b"%PDF-1.4\n" + bytes(rng.randrange(256) for _ in range(3000)), 8)]
        elif choice < 0.65:
            members = [("prices.csv", b"", zipfile.ZIP_STORED)]
        elif choice < 0.8:
            members = [(f"__MACOSX/._{_member_name(seed)}", b"\0\x05\x16\x07" + bytes(80), 0),
                       (".DS_Store", bytes(200), 0)]
        else:
            members = [("data/", b"", 0), ("empty/", b"", 0)]
        z = archives.zip_bytes(members)
        inp.ext = ".zip"
        inp.steps.append("non_mrf:" + ",".join(m[0] for m in members))
        inp.parts = [z]
        inp.must_fail = "zip_no_mrf"
        return inp

    if family in ("zip_mixed", "recompress"):
        name = _member_name(seed)
        if family == "zip_mixed":
            extra = [("logo.png", b"\x89PNG\r\n\x1a\n" + bytes(len(data) + 5000), 8),
                     (f"__MACOSX/._{name}", bytes(len(data) + 100), 0),
                     (".hidden.csv", bytes(len(data) + 100), 0),
                     ("readme.txt", _PROSE[: max(1, len(data) // 2)], 8)]
            members = [(name, data, zipfile.ZIP_DEFLATED)] + rng.sample(extra, rng.randrange(1, len(extra) + 1))
            rng.shuffle(members)
            z = archives.zip_bytes(members)
            inp.ext += ".zip"
            inp.steps.append("mixed:" + ",".join(m[0] for m in members))
            inp.parts = [z]
        else:
            r = rng.random()
            if r < 0.45:
                if rng.random() < 0.3 and len(data) > 3:
                    k = rng.randrange(1, len(data))
                    blob = archives.gzip_bytes(data[:k], 6) + archives.gzip_bytes(data[k:], 1)
                    inp.steps.append(f"gzip_two_members@{k}")
                else:
                    lvl = rng.choice((0, 1, 9))
                    blob = archives.gzip_bytes(data, lvl, name=b"x.csv", comment=b"c", extra=b"AB\x02\x00zz",
                                               header_crc=rng.random() < 0.5)
                    inp.steps.append(f"gzip{lvl}_all_header_fields")
                inp.ext += ".gz"
            else:
                method = rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA))
                z64 = rng.random() < 0.3
                junk = [(f"__MACOSX/._{name}", b"\0\x05\x16\x07" + bytes(40), 0)] if rng.random() < 0.3 else []
                blob = archives.zip_bytes([(f"export/{name}", data, method)] + junk, zip64=z64)
                inp.steps.append(f"zip_method{method}{'_zip64' if z64 else ''}{'_junk' if junk else ''}")
                inp.ext += ".zip"
            inp.parts = [blob]
        inp.compare_plain = True
        return inp

    if family == "double_wrap":
        inner, suffix, step = _wrap_valid(data, seed, rng)
        outer, suffix2, step2 = _wrap_valid(inner, Seed("inner", "csv", inner, "utf-8"), rng)
        inp.ext += suffix + suffix2
        inp.steps += [step, step2]
        inp.parts = [outer]
        return inp

    if family == "bomb":
        # More than RATIO_GRACE_BYTES of output at far more than MAX_RATIO: the limit must fire.
        text = decode_text(data, seed.encoding)
        _, ends, _ = csv_quote_scan(text)
        if seed.kind == "csv" and len(ends) > 3:
            head = text[: ends[2]].encode("utf-8")
            row = text[ends[2] : ends[3]].encode("utf-8")  # the first data record
        else:
            head, row = data, b"\n"
        # Mostly full, valid rows (the parser's fast path); sometimes blank lines, which each
        # become a short row (kept rare: see the fuzz findings on their cost).
        filler = row if rng.random() < 0.85 else rng.choice((b"\n", b" " * 64 + b"\n"))
        total = RATIO_GRACE_BYTES + rng.choice((8, 16, 32)) * (1 << 20)
        if seed.kind == "json":
            head, filler = b'{"hospital_name":"x","standard_charge_information":[', b" " * 1024
        inp.parts = [head, Repeat(filler, total // len(filler))]
        inp.stream_wrap = rng.choice(("gzip", "zip"))
        inp.ext += ".gz" if inp.stream_wrap == "gzip" else ".zip"
        inp.payload_bytes = total
        inp.steps.append(f"bomb_{inp.stream_wrap}({total >> 20}MiB,{len(filler)}B rows)")
        inp.must_fail = "bomb"
        return inp

    raise ValueError(f"unknown family {family}")

