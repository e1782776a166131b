"""Lone-CR line endings: a reader that splits records where the official validator does.
"""

from __future__ import annotations

import re

from price_pipeline.lib.parse.mrf.streams import InnerReader

# --- lone-CR line endings: checked as the official validator reads them -----------------------
# Papa Parse is called with newline "\n": a record ends at LF only, and a lone CR (classic Mac OS
# line endings) is part of a field. A CR-only file is therefore one record to the official
# validator (MinRowsError), while this package's readers split records on CR too.
_LONE_CR = re.compile(rb"\r(?!\n)")
_VT = b"\x0b"  # replaces a lone CR: whitespace to trimming (like the CR), but not a line break to Arrow


def has_lone_cr(buf: bytes) -> bool:
    """A CR that is not followed by LF, outside quotes, in ``buf`` (a CR as its last byte is
    not counted: its LF may be in the next read)."""
    parts = buf[:-1].split(b'"') if buf.endswith(b"\r") else buf.split(b'"')
    return any(_LONE_CR.search(p) for p in parts[0::2])


class LfRecordReader(InnerReader):
    """``inner`` with every lone CR outside quotes replaced by VT: records then end at LF only,
    as the official validator splits them, and a CR inside a field is trimmed like whitespace."""

    def __init__(self, inner):
        self.inner = inner
        self.in_quotes = False
        self.hold = b""
        self.out = b""

    def _convert(self, data: bytes, final: bool) -> bytes:
        if not final and data.endswith(b"\r"):  # its LF may come with the next read
            data, self.hold = data[:-1], b"\r"
        else:
            self.hold = b""
        parts = data.split(b'"')
        first_outside = 1 if self.in_quotes else 0
        for i in range(first_outside, len(parts), 2):
            if b"\r" in parts[i]:
                parts[i] = _LONE_CR.sub(_VT, parts[i])
        self.in_quotes ^= (len(parts) - 1) % 2 == 1
        return b'"'.join(parts)

    def readinto(self, b) -> int:
        while not self.out:
            data = self.inner.read(1 << 20)
            if not data:
                if not self.hold:
                    return 0
                self.out = self._convert(self.hold, final=True)
                break
            self.out = self._convert(self.hold + data, final=False)
        n = min(len(b), len(self.out))
        b[:n] = self.out[:n]
        self.out = self.out[n:]
        return n


def has_lf(open_stream) -> bool:
    with open_stream() as s:
        while chunk := s.read(1 << 22):
            if b"\n" in chunk:
                return True
    return False
