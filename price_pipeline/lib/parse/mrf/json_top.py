"""The top-level members of a JSON MRF around its charges array (header fields, modifiers).

Header members may come before *or after* ``standard_charge_information``. :func:`collect_top`
builds them from ``ijson.parse`` events, skipping the array. After the array, the readers keep
the bytes that follow it (:class:`TailTracker`: from the chunk that completed the last item on,
at most :data:`MAX_TAIL_BYTES`) and :func:`parse_tail_members` reads the members from exactly
what follows the array's ``]``; :func:`find_tail_members` finds that ``]`` in the kept bytes
first (candidates ``]`` + ``,`` or ``}``, tried in order: one inside an item fails within a few
bytes). One tail parser for the chunked and the sequential readers and the validator.
"""

from __future__ import annotations

import io
import re

import ijson
from ijson.common import ObjectBuilder

from .limits import JsonGuard

MAX_TAIL_BYTES = 256 * 1024**2
_CAND = re.compile(rb"\][ \t\r\n]*([,}])")
_WS = b" \t\r\n"


def collect_top(events, stop_at_charges: bool) -> tuple[dict, bool]:
    """Build the top-level members from ijson ``parse`` events, skipping the charges array."""
    top: dict = {}
    key = None
    builder = None
    for prefix, event, value in events:
        if prefix == "":
            if builder is not None:
                top[key] = builder.value
                builder = None
            if event == "map_key":
                key = value
                if key == "standard_charge_information" and stop_at_charges:
                    return top, True
            continue
        if key == "standard_charge_information":
            continue
        if builder is None:
            builder = ObjectBuilder()
        builder.event(event, value)
    if builder is not None:
        top[key] = builder.value
    return top, False


class TailTracker:
    """File-like wrapper remembering the bytes read since the last completed item."""

    def __init__(self, inner):
        self.inner = inner
        self.since_mark: list[bytes] = []
        self.size = 0
        self.total = 0
        self.overflow = False
        self.last = b""

    def read(self, n: int = -1) -> bytes:
        chunk = self.inner.read(n)
        self.total += len(chunk)
        self.last = chunk
        if not self.overflow and chunk:
            self.since_mark.append(chunk)
            self.size += len(chunk)
            if self.size > MAX_TAIL_BYTES:
                self.since_mark, self.size, self.overflow = [], 0, True
        return chunk

    def mark(self) -> None:
        """An item was completed in the chunk read last: the array ends in it or later."""
        if len(self.since_mark) != 1 or self.overflow:
            self.since_mark, self.size, self.overflow = [self.last], len(self.last), False


class TailError(ValueError):
    """What follows the charges array is not the rest of one JSON object."""


def parse_tail_members(tail: bytes, *, guard: bool = True) -> dict:
    """Top-level members after the charges array: ``tail`` is what follows its ``]``.

    Raises :class:`TailError` (or ijson's errors) unless ``tail`` is exactly the end of the top
    object: ``}``, or ``,`` members ``}``, then only JSON whitespace. Bytes after the document or a
    document cut off after the array are errors, never an "ok" with the rows read. ``guard``:
    check ``tail`` against the JSON limits first (off for bytes a guarded stream already read).
    """
    t = tail.lstrip(_WS)
    if t.startswith(b"}"):
        rest = t[1:].lstrip(_WS)
        if rest:
            raise TailError(f"{len(rest)} byte(s) after the end of the JSON document: {rest[:40]!r}")
        return {}
    if not t.startswith(b","):
        raise TailError("the JSON document ends after the charges array" if not t else
                        f"expected ',' or '}}' after the charges array, found {t[:40]!r}")
    if guard:
        JsonGuard(depth0=1).feed(t)  # read by ijson below: same limits as the streamed bytes
    top, _ = collect_top(ijson.parse(io.BytesIO(b"{" + t[1:])), stop_at_charges=False)
    return top


def find_tail_members(buf: bytes) -> dict | None:
    """Top-level members after the charges array, found in ``buf`` (the kept bytes that hold the
    array's end); None when no candidate end of the array is followed by the end of the document."""
    for m in _CAND.finditer(buf):
        try:
            # the kept bytes came through the stream's guard already
            return parse_tail_members(buf[m.start() + 1 :], guard=False)
        except (ijson.JSONError, ijson.IncompleteJSONError, ValueError):
            continue
    return None
