"""Text every store accepts: no NUL characters and no lone UTF-16 surrogates.

Hospital-supplied text reaches the registry (SQLite or PostgreSQL), Parquet, DuckDB and CSV.
Two kinds of character break one of them: U+0000 (PostgreSQL ``text`` cannot hold it;
psycopg2 refuses the whole statement) and a *lone* surrogate, U+D800-U+DFFF outside a valid
pair (no UTF-8 encoder accepts it, so SQLite, PostgreSQL and Arrow all raise). JSON makes both
with ``"\\u0000"`` and ``"\\ud800"``, and a text file can carry a NUL byte.

:func:`clean_text` removes NULs and replaces each lone surrogate with U+FFFD; a surrogate
*pair* written as two escapes (``"\\ud83d\\ude00"``) becomes the one character it encodes.
:func:`clean_json` does the same over a decoded JSON value (keys included). Both report what
they changed as :class:`TextFix` entries, so the caller can record a finding that names the
field; text without either character is returned as is (one fast scan).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

_BAD = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class TextFix(NamedTuple):
    """What cleaning changed in one field (a NamedTuple so it round-trips through JSON as a list)."""

    field: str
    nul: int  # NUL characters removed
    surrogates: int  # lone surrogates replaced by U+FFFD

    def describe(self) -> str:
        """``"removed 1 NUL character; replaced 2 lone surrogates with U+FFFD"``."""
        parts = []
        if self.nul:
            parts.append(f"removed {self.nul} NUL character{'s' if self.nul != 1 else ''}")
        if self.surrogates:
            parts.append(
                f"replaced {self.surrogates} lone surrogate{'s' if self.surrogates != 1 else ''} with U+FFFD"
            )
        return "; ".join(parts)


def has_bad_text(value: str) -> bool:
    """True when ``value`` holds a NUL or a surrogate code point."""
    return _BAD.search(value) is not None


def clean_text(value: str) -> tuple[str, int, int]:
    """``(cleaned, nul_removed, lone_surrogates_replaced)`` of one string."""
    if _BAD.search(value) is None:
        return value, 0, 0
    nul = value.count("\x00")
    if nul:
        value = value.replace("\x00", "")
    surrogates = 0
    if _SURROGATE.search(value):
        # Round-trip through UTF-16 with surrogatepass: a valid high+low pair becomes the
        # character it encodes, a lone surrogate stays and is then replaced.
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        value, surrogates = _SURROGATE.subn(REPLACEMENT, value)
    return value, nul, surrogates


def clean_field(value: Any, field: str, fixes: list[TextFix]) -> Any:
    """``value`` cleaned when it is a string (appending a :class:`TextFix` to ``fixes`` if changed)."""
    if not isinstance(value, str):
        return value
    cleaned, nul, surrogates = clean_text(value)
    if nul or surrogates:
        fixes.append(TextFix(field, nul, surrogates))
    return cleaned


def clean_json(value: Any, path: str = "") -> tuple[Any, list[TextFix]]:
    """A decoded JSON value with every string (and dict key) cleaned, and what was fixed where.

    Paths read like ``files[0].url`` (relative to ``path``). Containers are rebuilt only when
    something inside changed. Iterative, so nesting depth is no concern.
    """
    fixes: list[TextFix] = []
    if isinstance(value, str):
        return clean_field(value, path or "value", fixes), fixes
    if not isinstance(value, (dict, list)):
        return value, fixes
    # Find the bad strings first (cheap, and almost always none): only then rebuild.
    stack: list[Any] = [value]
    dirty = False
    while stack and not dirty:
        node = stack.pop()
        if isinstance(node, dict):
            dirty = any(isinstance(k, str) and has_bad_text(k) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            dirty = has_bad_text(node)
    if not dirty:
        return value, fixes
    return _rebuild(value, path, fixes), fixes


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _rebuild(root: Any, path: str, fixes: list[TextFix]) -> Any:
    """Copy of ``root`` with every string cleaned (explicit stack: no recursion limit)."""

    def copy_of(node: Any, where: str) -> Any:
        if isinstance(node, str):
            return clean_field(node, where or "value", fixes)
        if isinstance(node, dict):
            return {}
        if isinstance(node, list):
            return []
        return node

    out = copy_of(root, path)
    stack: list[tuple[Any, Any, str]] = [(root, out, path)]
    while stack:
        src, dst, where = stack.pop()
        if isinstance(src, dict):
            for k, v in src.items():
                key = k
                if isinstance(k, str):
                    key, nul, surrogates = clean_text(k)
                    if nul or surrogates:
                        fixes.append(TextFix(f"{_join(where, key)} (key)", nul, surrogates))
                child_path = _join(where, key if isinstance(key, str) else repr(key))
                dst[key] = copy_of(v, child_path)
                if isinstance(v, (dict, list)):
                    stack.append((v, dst[key], child_path))
        else:  # list
            for i, v in enumerate(src):
                child_path = f"{where}[{i}]"
                dst.append(copy_of(v, child_path))
                if isinstance(v, (dict, list)):
                    stack.append((v, dst[-1], child_path))
    return out
