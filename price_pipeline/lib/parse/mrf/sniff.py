"""Detection from content (never from the file name): compression, container, encoding, kind.

* Compression: gzip (``1f 8b``) and zip (``PK\\x03\\x04``) by magic bytes. In a zip, members
  under ``__MACOSX/``, dotfiles and directories are skipped and the largest remaining member
  with a supported extension (csv, json, txt, xlsx) is read, or the largest member at all; a
  finding says when there was a choice. A zip holding ``xl/...`` members *is* an xlsx workbook.
* Decompression is capped (bytes and ratio) by :class:`CappedReader`, which raises
  :class:`DecompressionLimit`; the caller turns it into a finding instead of hanging on a bomb.
* Encoding: BOMs (UTF-8, UTF-16 LE/BE), BOM-less UTF-16 (NUL bytes on one parity), else UTF-8
  if the first MiB decodes, else cp1252 (the usual Windows export), else latin-1.
* Kind: ``json`` when the first non-space character is ``{`` or ``[``, ``html`` for
  ``<!doctype html`` / ``<html`` (a web page served instead of the file), ``empty``, ``binary``
  for other unreadable content, else ``csv``.
"""

from __future__ import annotations

import codecs
import gzip
import io
import lzma
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

from .streams import InnerReader

SAMPLE_BYTES = 1 << 20
SUPPORTED_EXT = (".csv", ".json", ".txt", ".xlsx")
DEFAULT_MAX_RATIO = 200.0
DEFAULT_MAX_BYTES = 50 * 1024**3
# The ratio test only starts after this many output bytes: a small, very repetitive CSV
# (wide files are mostly commas) legitimately compresses far better than 200:1.
RATIO_GRACE_BYTES = 64 * 1024**2


class DecompressionLimit(Exception):
    """Decompressed output exceeded the configured size or ratio."""


class CorruptArchive(Exception):
    """A zip/gzip container failed in a way its library reports only as a generic error (e.g. a
    seek to a corrupt member offset: OSError EINVAL, struct.error on a cut header)."""


# zip compression methods the standard library reads (stored, deflate, bzip2, lzma)
READABLE_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def archive_error(exc: BaseException) -> tuple[str, str] | None:
    """``(rule, message)`` when ``exc`` is a damaged or unreadable archive met while reading the
    payload (at any stage, in any thread), else None (a tool failure, raised on).

    Rules: ``decompression_limit``, ``truncated_archive`` (the stream ends early),
    ``bad_crc`` (the CRC-32 check of the data failed), ``encrypted_archive``,
    ``unsupported_compression`` (e.g. deflate64), ``bad_archive`` (corrupt data or headers,
    garbage after a gzip stream).
    """
    msg = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, DecompressionLimit):
        return "decompression_limit", f"stopped: {exc}"
    if isinstance(exc, CorruptArchive):
        return "bad_archive", f"corrupt archive ({exc})"
    if isinstance(exc, EOFError):
        return "truncated_archive", f"the compressed stream ends early ({msg}); the file is cut off"
    text = str(exc).lower()
    if isinstance(exc, (zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, lzma.LZMAError)) or (
            isinstance(exc, OSError) and "invalid data stream" in text):
        if "crc" in text:
            return "bad_crc", f"the archive's CRC-32 check failed ({msg}); the data is corrupt"
        return "bad_archive", f"corrupt archive data ({msg})"
    if isinstance(exc, RuntimeError) and ("encrypted" in text or "password" in text):
        return "encrypted_archive", f"the archive member is encrypted ({exc})"
    if isinstance(exc, NotImplementedError):
        return "unsupported_compression", f"the archive uses a compression method that cannot be read ({exc})"
    return None


class CappedReader(InnerReader):
    """Raw binary reader over a decompressing stream that enforces size and ratio caps."""

    def __init__(self, inner, compressed_size: int, max_bytes: int, max_ratio: float,
                 ratio_grace: int = RATIO_GRACE_BYTES):
        self.inner = inner
        self.compressed_size = max(1, compressed_size)
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.ratio_grace = ratio_grace
        self.out = 0

    def readinto(self, b) -> int:
        try:
            data = self.inner.read(len(b))
        except (OSError, ValueError, struct.error) as e:
            if archive_error(e) is not None:
                raise
            raise CorruptArchive(f"{type(e).__name__}: {e}") from e
        n = len(data)
        b[:n] = data
        self.out += n
        if self.out > self.max_bytes:
            raise DecompressionLimit(f"decompressed size exceeds {self.max_bytes} bytes")
        if self.out > self.ratio_grace and self.out / self.compressed_size > self.max_ratio:
            raise DecompressionLimit(
                f"decompression ratio exceeds {self.max_ratio:g}:1 ({self.out} bytes from {self.compressed_size})"
            )
        return n


@dataclass
class Source:
    """How to (re)open the payload bytes of a file."""

    path: str
    compression: str | None = None  # None | "zip" | "gzip"
    member: str | None = None  # zip member read
    container: str | None = None  # "xlsx" when the file is a workbook
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # (rule, severity, message)
    max_bytes: int = DEFAULT_MAX_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO
    ratio_grace: int = RATIO_GRACE_BYTES
    size: int = 0

    def open(self):
        """A fresh binary stream positioned at the start of the (decompressed) payload."""
        if self.compression == "gzip":
            raw = gzip.open(self.path, "rb")  # noqa: SIM115 - the stream is returned to the caller
            return io.BufferedReader(
                CappedReader(raw, self.size, self.max_bytes, self.max_ratio, self.ratio_grace), 1 << 20
            )
        if self.compression == "zip":
            zf = zipfile.ZipFile(self.path)
            try:
                info = zf.getinfo(self.member)
                inner = zf.open(info)
            except (OSError, ValueError, struct.error, KeyError) as e:
                zf.close()
                if archive_error(e) is not None:
                    raise
                raise CorruptArchive(f"cannot open member {self.member}: {type(e).__name__}: {e}") from e
            reader = CappedReader(inner, info.compress_size, self.max_bytes, self.max_ratio, self.ratio_grace)
            reader._zf = zf  # keep the archive open as long as the member stream
            return io.BufferedReader(reader, 1 << 20)
        return open(self.path, "rb")


def _is_junk_member(name: str) -> bool:
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return name.endswith("/") or name.startswith("__MACOSX/") or "/__MACOSX/" in name or base.startswith(".")


def open_source(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES,
                max_ratio: float = DEFAULT_MAX_RATIO, ratio_grace: int = RATIO_GRACE_BYTES) -> Source:
    """Inspect ``path`` and describe how to read its payload (raises only if it cannot be opened)."""
    path = os.fspath(path)
    src = Source(path, max_bytes=max_bytes, max_ratio=max_ratio, ratio_grace=ratio_grace)
    src.size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        src.compression = "gzip"
    elif magic == b"PK\x03\x04":
        try:
            zf = zipfile.ZipFile(path)
        except Exception as e:  # any failure to read the directory: an unreadable archive
            src.notes.append(("bad_archive", "error", f"unreadable zip archive: {e}"))
            src.container = "broken"
            return src
        with zf:
            names = [i for i in zf.infolist() if not i.is_dir()]
            if any(i.filename.startswith("xl/") for i in names) and any(
                i.filename == "[Content_Types].xml" for i in names
            ):
                src.container = "xlsx"
                return src
            real = [i for i in names if not _is_junk_member(i.filename)]
            skipped = len(names) - len(real)
            if skipped:
                src.notes.append(("zip_junk_members", "info", f"skipped {skipped} __MACOSX/dotfile member(s)"))
            supported = [i for i in real if i.filename.lower().endswith(SUPPORTED_EXT)]
            pool = supported or real
            if not pool:
                src.notes.append(("empty_archive", "error", "zip archive holds no readable member"))
                src.container = "broken"
                return src
            best = max(pool, key=lambda i: i.file_size)
            if len(pool) > 1:
                src.notes.append(
                    ("zip_multiple_members", "warning",
                     f"{len(pool)} candidate members, read the largest: {best.filename}")
                )
            src.compression = "zip"
            src.member = best.filename
            if best.flag_bits & 0x1:
                src.notes.append(("encrypted_archive", "error", f"zip member {best.filename} is encrypted"))
                src.container = "broken"
            elif best.compress_type not in READABLE_ZIP_METHODS:
                src.notes.append(("unsupported_compression", "error",
                                  f"zip member {best.filename} uses compression method {best.compress_type} "
                                  "(e.g. 9 = deflate64), which cannot be read"))
                src.container = "broken"
            if best.filename.lower().endswith(".xlsx"):
                src.notes.append(("nested_xlsx_in_zip", "warning", "xlsx inside zip is not read"))
                src.container = "broken"
    return src


def detect_encoding(sample: bytes, complete: bool = False) -> tuple[str, int]:
    """Return ``(encoding, bom_length)`` from the first bytes of the payload.

    ``complete``: the sample is the whole payload (a cut character at its end is then an error).
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", 3
    if sample.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if sample.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    head = sample[:4096]
    if len(head) >= 4:
        even_nul = head[0::2].count(0)
        odd_nul = head[1::2].count(0)
        half = len(head) // 2
        if odd_nul > half * 0.4 and even_nul < half * 0.05:
            return "utf-16-le", 0
        if even_nul > half * 0.4 and odd_nul < half * 0.05:
            return "utf-16-be", 0
    dec = codecs.getincrementaldecoder("utf-8")()
    try:
        dec.decode(sample, final=complete)  # not final: a multi-byte char cut by the sample is fine
        return "utf-8", 0
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
        return "cp1252", 0
    except UnicodeDecodeError:
        return "latin-1", 0


def detect_kind(text_head: str) -> str:
    """Classify the decoded start of the payload: csv | json | html | xml | empty | binary."""
    s = text_head.lstrip("\ufeff \t\r\n")
    if not s:
        return "empty"
    low = s[:1024].lower()
    if s[0] in "{[":
        return "json"
    if low.startswith("<!doctype html") or low.startswith("<html") or "<html" in low[:512]:
        return "html"
    if low.startswith("<?xml") or low.startswith("<"):
        return "xml" if "<html" not in low else "html"
    if "\x00" in s[:4096]:
        return "binary"
    controls = sum(1 for ch in s[:4096] if ord(ch) < 32 and ch not in "\t\r\n")
    if controls > len(s[:4096]) * 0.01:
        return "binary"
    return "csv"


class TranscodingReader(InnerReader):
    """Raw reader that decodes ``inner`` from ``encoding`` and yields UTF-8 bytes.

    Used for UTF-16 and single-byte code pages so that the header scanner and Arrow's CSV
    reader always see UTF-8 (Arrow then validates and slices without copies).
    """

    def __init__(self, inner, encoding: str, chunk: int = 1 << 22):
        self.inner = inner
        self.decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.chunk = chunk
        self.buf = b""
        self.eof = False

    def readinto(self, b) -> int:
        while not self.buf and not self.eof:
            raw = self.inner.read(self.chunk)
            if not raw:
                self.eof = True
                self.buf = self.decoder.decode(b"", final=True).encode("utf-8")
            else:
                self.buf = self.decoder.decode(raw).encode("utf-8")
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n

