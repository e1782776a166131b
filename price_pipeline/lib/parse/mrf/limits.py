"""Limits that keep a hostile or damaged payload from crashing or starving a reader.

The readers are C libraries (Arrow, ijson's yajl backend) that trust their input more than a
price-transparency file deserves: ijson builds a prefix string per event that grows with the
nesting depth (200 KB of ``[`` made a 24 GB process), its C backend crashed the interpreter on
a 4,301-digit integer, and Arrow's CSV reader needs a whole record in one block. So:

* :class:`JsonGuard` checks every byte of a JSON payload *before* a reader sees it: nesting
  depth (``json_too_deep``), digits in one number (``number_too_long``), bytes in one string
  (``token_too_long``) and the two whitespace bytes JSON does not allow, vertical tab and form
  feed (``json_syntax_error``; yajl skips them as whitespace, Python's json and RFC 8259 do not).
  The scan is C-speed per chunk (``bytes.translate``/``count``/``find`` and numpy on the few
  structural bytes), not a Python loop per byte.
* :data:`MAX_RECORD_BYTES` bounds one CSV record (``record_too_large``), which bounds Arrow's
  parse block and so the reader's memory.

A limit raises :class:`InputLimit`; ``parse_to_parquet`` and ``validate_file`` turn it into a
finding that names the rule and end the file ``ok: false`` / invalid.
"""

from __future__ import annotations

import io
import re

import numpy as np

from .streams import InnerReader

MAX_JSON_DEPTH = 64  # the CMS JSON schema nests 7 deep
MAX_NUMBER_DIGITS = 256  # Python refuses ints over 4,300 digits; no price has 256
MAX_TOKEN_BYTES = 32 * 1024**2  # one JSON string
# One CSV record; also Arrow's largest parse block. Arrow accepts a record up to two blocks long
# and materialises it before anyone can look: at 16 MiB a refused 32 MiB record peaks at ~600 MB
# RSS, at 32 MiB a 63 MiB one reached ~880 MB.
MAX_RECORD_BYTES = 16 * 1024**2

_KEEP = b'"{}[]'
_DELETE = bytes(c for c in range(256) if c not in _KEEP)
_ESCAPE = re.compile(rb"\\.", re.S)
_STRINGS = re.compile(rb'"[^"]*"')
_DEPTH = np.zeros(256, dtype=np.int8)
_DEPTH[ord("{")] = _DEPTH[ord("[")] = 1
_DEPTH[ord("}")] = _DEPTH[ord("]")] = -1
_DIGITS = bytes(ord("9") if 48 <= c <= 57 else ord(" ") for c in range(256))


class InputLimit(Exception):
    """The payload broke a limit (or a rule no reader may be trusted with): ``rule`` names it."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule
        self.message = message


class JsonGuard:
    """Streaming check of a UTF-8 JSON byte stream, fed chunk by chunk (see the module docstring).

    ``depth0``: the nesting depth at the first byte fed (e.g. 2 for the items of the charges
    array); ``offset``: the byte offset of the first byte (for messages).
    """

    def __init__(self, *, depth0: int = 0, offset: int = 0, max_depth: int = MAX_JSON_DEPTH,
                 max_digits: int = MAX_NUMBER_DIGITS, max_token: int = MAX_TOKEN_BYTES):
        self.depth = depth0
        self.offset = offset
        self.max_depth = max_depth
        self.max_digits = max_digits
        self.max_token = max_token
        self.in_str = False
        self.escaped = False  # the previous chunk ended with the backslash of an escape
        self.run = 0  # digits at the end of the previous chunk
        self.str_start = 0
        self._long = b"9" * (max_digits + 1)
        # A reader that measures the depth of the bytes itself before any parser sees them (the
        # parallel JSON reader's cut check) switches this off for the bytes it handles.
        self.check_depth = True

    def feed(self, data: bytes) -> None:
        """Check the next chunk; raises :class:`InputLimit`."""
        if not data:
            return
        for bad in (b"\x0b", b"\x0c"):
            at = data.find(bad)
            if at >= 0:
                raise InputLimit("json_syntax_error", f"byte {self.offset + at}: {bad!r} is neither JSON whitespace "
                                 "nor allowed unescaped in a string")
        if self.escaped:
            data = b"_" + data[1:]  # the byte after a backslash never delimits a string
            self.escaped = False
        if b"\\" in data:
            data = _ESCAPE.sub(b"__", data)  # escapes read left to right: exactly JSON's
            if data.endswith(b"\\"):
                self.escaped = True
                data = data[:-1] + b"_"
        self._numbers(data)
        if not self.check_depth:
            nq = data.count(b'"')
            if self.in_str and nq:
                self._token(self.offset + data.find(b'"'))
            self.in_str ^= bool(nq & 1)
            if self.in_str:
                if nq:
                    self.str_start = self.offset + data.rfind(b'"')
                self._token(self.offset + len(data))
            self.offset += len(data)
            return
        sp = data.translate(None, _DELETE)
        nq = sp.count(b'"')
        if self.in_str and nq:  # a string that began in an earlier chunk closes here
            self._token(self.offset + data.find(b'"'))
        in_str_end = self.in_str ^ bool(nq & 1)
        if self.in_str:
            sp = b'"' + sp
        if in_str_end:
            if nq:
                self.str_start = self.offset + data.rfind(b'"')
            self._token(self.offset + len(data))
            sp = sp[: sp.rfind(b'"')]
        # Two adjacent quotes hold no bracket (string delimiters pair up in order), so dropping
        # them leaves few quotes for the regex; what remains outside strings is the brackets.
        st = sp.replace(b'""', b"")
        if b'"' in st:
            st = _STRINGS.sub(b"", st)
        if st:
            d = np.cumsum(_DEPTH[np.frombuffer(st, dtype=np.uint8)], dtype=np.int64)
            if self.depth + int(d.max()) > self.max_depth:
                raise InputLimit("json_too_deep", f"JSON nested more than {self.max_depth} deep "
                                 f"(in bytes {self.offset}-{self.offset + len(data)})")
            self.depth += int(d[-1])
        self.in_str = in_str_end
        self.offset += len(data)

    def _token(self, end: int) -> None:
        if end - self.str_start > self.max_token:
            raise InputLimit("token_too_long", f"a JSON string of more than {self.max_token} bytes "
                             f"(from byte {self.str_start})")

    def _numbers(self, data: bytes) -> None:
        dm = data.translate(_DIGITS)
        lead = len(dm) - len(dm.lstrip(b"9"))
        if self.run and lead and self.run + lead > self.max_digits and not self.in_str:
            self._too_long(self.offset - self.run)
        start = 0
        while True:
            p = dm.find(self._long, start)
            if p < 0:
                break
            if not (self.in_str ^ bool(data.count(b'"', 0, p) & 1)):
                self._too_long(self.offset + p)
            start = p + len(dm[p:]) - len(dm[p:].lstrip(b"9"))
        self.run = (self.run + len(dm)) if lead == len(dm) else len(dm) - len(dm.rstrip(b"9"))

    def _too_long(self, at: int) -> None:
        raise InputLimit("number_too_long", f"a JSON number of more than {self.max_digits} digits at byte {at}")


class GuardedReader(InnerReader):
    """Raw reader passing ``inner``'s bytes through a :class:`JsonGuard` before anyone reads them."""

    def __init__(self, inner, guard: JsonGuard | None = None):
        self.inner = inner
        self.guard = guard or JsonGuard()

    def readinto(self, b) -> int:
        data = self.inner.read(len(b))
        self.guard.feed(data)
        n = len(data)
        b[:n] = data
        return n


def guarded(stream) -> io.BufferedReader:
    """``stream`` (binary, UTF-8 JSON) with every byte checked by a fresh :class:`JsonGuard`."""
    return io.BufferedReader(GuardedReader(stream), 1 << 20)


def guard_of(stream) -> JsonGuard | None:
    """The :class:`JsonGuard` of a stream made by :func:`guarded`, else None."""
    raw = getattr(stream, "raw", None)
    return raw.guard if isinstance(raw, GuardedReader) else None


def check_depth(max_depth_seen: int) -> None:
    """For readers that measured the nesting themselves (``max_depth_seen`` from the top)."""
    if max_depth_seen > MAX_JSON_DEPTH:
        raise InputLimit("json_too_deep", f"JSON nested more than {MAX_JSON_DEPTH} deep")
