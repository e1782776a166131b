"""Archive building and damaging for the fuzz harness: gzip and zip containers, valid and not.

Valid archives come from the standard library (:mod:`gzip`, :mod:`zlib`, :mod:`zipfile`) with
fixed timestamps, so the same input bytes always give the same archive. The damaged kinds the
standard library cannot write are patched in place or written by :func:`raw_zip`:

* a member whose compression method says deflate64 (9), AES (99), zstd (93) or an unknown id,
* a member encrypted with the traditional PKWARE cipher ("ZipCrypto", APPNOTE 6.1),
* a member whose recorded CRC-32 does not match its data.

:func:`reference_gzip` and :func:`reference_zip_member` are the oracle's reference decoders:
the standard library, which checks CRC-32 and sizes. An archive they cannot decode is corrupt,
and the parser must never call it a good parse.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Iterable

ZIP_TIME = (2025, 6, 1, 0, 0, 0)
_DOS_TIME = (0 << 11) | (0 << 5) | 0
_DOS_DATE = ((2025 - 1980) << 9) | (6 << 5) | 1

# -- gzip ---------------------------------------------------------------------------------------


def gzip_bytes(data: bytes, level: int = 6, *, name: bytes | None = None, comment: bytes | None = None,
               extra: bytes | None = None, header_crc: bool = False) -> bytes:
    """One gzip member of ``data`` (mtime 0), optionally with FNAME / FCOMMENT / FEXTRA / FHCRC."""
    flags = 0
    tail = b""
    if extra is not None:
        flags |= 4
        tail += struct.pack("<H", len(extra)) + extra
    if name is not None:
        flags |= 8
        tail += name.replace(b"\0", b"_") + b"\0"
    if comment is not None:
        flags |= 16
        tail += comment.replace(b"\0", b"_") + b"\0"
    header = b"\x1f\x8b\x08" + bytes([flags | (2 if header_crc else 0)]) + b"\0\0\0\0" + b"\0\xff" + tail
    if header_crc:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    co = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = co.compress(data) + co.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def gzip_stream(chunks: Iterable[bytes], out, level: int = 6) -> int:
    """Write a gzip member of the concatenated ``chunks`` to the binary file ``out`` without ever
    holding the whole payload (giant lines, bombs). Returns the payload size."""
    out.write(b"\x1f\x8b\x08\0\0\0\0\0\0\xff")
    co = zlib.compressobj(level, zlib.DEFLATED, -15)
    crc = size = 0
    for c in chunks:
        crc = zlib.crc32(c, crc)
        size += len(c)
        out.write(co.compress(c))
    out.write(co.flush())
    out.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return size


def reference_gzip(data: bytes) -> bytes | None:
    """The payload as the standard library decodes it (every member, CRC and size checked), or
    None when it cannot: truncated, corrupt, trailing garbage."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error, ValueError):
        return None


# -- zip ----------------------------------------------------------------------------------------


def zip_bytes(members: list[tuple[str, bytes, int]], *, zip64: bool = False) -> bytes:
    """A zip archive of ``(name, data, compress_type)`` members with fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, method in members:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            if zip64:
                with zf.open(info, "w", force_zip64=True) as f:
                    f.write(data)
            else:
                zf.writestr(info, data)
    return buf.getvalue()


def zip_stream(name: str, chunks: Iterable[bytes], out, method: int = zipfile.ZIP_DEFLATED) -> None:
    """Write a one-member zip of the concatenated ``chunks`` to ``out`` (streamed)."""
    with zipfile.ZipFile(out, "w") as zf:
        info = zipfile.ZipInfo(name, ZIP_TIME)
        info.compress_type = method
        with zf.open(info, "w", force_zip64=True) as f:
            for c in chunks:
                f.write(c)


def _central_entries(data: bytes):
    """(offset of central entry, name, local header offset) for every central directory entry."""
    pos = data.find(b"PK\x01\x02")
    while pos != -1 and pos + 46 <= len(data):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        local = struct.unpack_from("<I", data, pos + 42)[0]
        name = data[pos + 46 : pos + 46 + name_len].decode("utf-8", "replace")
        yield pos, name, local
        pos = data.find(b"PK\x01\x02", pos + 46 + name_len + extra_len + comment_len)


def patch_member(data: bytes, member: str, *, method: int | None = None, flag_bits: int = 0,
                 crc_xor: int = 0) -> bytes:
    """Rewrite a member's compression method / set general-purpose flag bits / alter its CRC in
    both the local header and the central directory (so the archive stays self-consistent)."""
    out = bytearray(data)
    for cpos, name, local in _central_entries(data):
        if name != member:
            continue
        for base, m_off, f_off, c_off in ((cpos, 10, 8, 16), (local, 8, 6, 14)):
            if method is not None:
                struct.pack_into("<H", out, base + m_off, method)
            if flag_bits:
                flags = struct.unpack_from("<H", out, base + f_off)[0]
                struct.pack_into("<H", out, base + f_off, flags | flag_bits)
            if crc_xor:
                crc = struct.unpack_from("<I", out, base + c_off)[0]
                struct.pack_into("<I", out, base + c_off, crc ^ crc_xor)
    return bytes(out)


def member_data_span(data: bytes, member: str) -> tuple[int, int] | None:
    """(start, end) of a member's compressed bytes in the archive."""
    for cpos, name, local in _central_entries(data):
        if name != member:
            continue
        csize = struct.unpack_from("<I", data, cpos + 20)[0]
        name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
        start = local + 30 + name_len + extra_len
        return start, min(len(data), start + csize)
    return None


class _ZipCrypto:
    """The traditional PKWARE stream cipher (APPNOTE 6.1.5), encrypt side."""

    def __init__(self, password: bytes):
        self.k0, self.k1, self.k2 = 0x12345678, 0x23456789, 0x34567890
        for c in password:
            self._update(c)

    @staticmethod
    def _crc(crc: int, b: int) -> int:
        return zlib.crc32(bytes([b]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def _update(self, c: int) -> None:
        self.k0 = self._crc(self.k0, c)
        self.k1 = ((self.k1 + (self.k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        self.k2 = self._crc(self.k2, self.k1 >> 24)

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray(len(data))
        for i, p in enumerate(data):
            t = (self.k2 | 2) & 0xFFFF
            out[i] = p ^ (((t * (t ^ 1)) >> 8) & 0xFF)
            self._update(p)
        return bytes(out)


def raw_zip(name: str, payload: bytes, *, method: int = 8, password: bytes | None = None,
            crc_xor: int = 0, seed_bytes: bytes = b"fuzz-header!") -> bytes:
    """A one-member zip written by hand: deflated (8) or stored (0) data under any ``method``
    id, optionally ZipCrypto-encrypted with ``password``, optionally with a wrong CRC-32."""
    crc = zlib.crc32(payload) ^ crc_xor
    if method == 0:
        body = payload
    else:
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = co.compress(payload) + co.flush()
    flags = 0
    if password is not None:
        flags |= 1
        header = seed_bytes[:11].ljust(11, b"\0") + bytes([(zlib.crc32(payload) >> 24) & 0xFF])
        body = _ZipCrypto(password).encrypt(header + body)
    fname = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, _DOS_TIME, _DOS_DATE, crc,
                        len(body), len(payload), len(fname), 0) + fname
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, _DOS_TIME, _DOS_DATE, crc,
                          len(body), len(payload), len(fname), 0, 0, 0, 0, 0o644 << 16, 0) + fname
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(body), 0)
    return local + body + central + eocd


def reference_zip_member(data: bytes, member: str) -> bytes | None:
    """The member's bytes as the standard library reads them (CRC checked), or None when the
    archive or the member cannot be read: truncated, corrupt, encrypted, unsupported method."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.read(member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, RuntimeError, NotImplementedError,
            EOFError, OSError, zlib.error, ValueError, struct.error, UnicodeDecodeError):
        return None
    except Exception:  # lzma/bz2 errors and anything else the reader raises on garbage
        return None
