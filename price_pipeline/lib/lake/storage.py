"""The lake: one object store interface over a local folder or S3/MinIO.

Keys are ``/``-separated paths relative to the lake root (``raw/ab/abcd….csv``). Every write
is atomic from a reader's point of view: locally a temporary file is renamed into place,
and an S3 PUT only becomes visible once complete. Raw files are content-addressed by sha256
and never overwritten (see :func:`price_pipeline.lib.lake.layout.raw_key`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

# Local writes go to a hidden sibling with this prefix, then are renamed into place.
TEMP_PREFIX = ".tmp-"


def check_key(key: str, *, prefix: bool = False) -> str:
    """``key`` if it names an object inside the lake, else :class:`ValueError`.

    A key is ``/``-separated and relative; it is refused when empty, absolute, or when any part
    is empty, ``.`` or ``..`` (``""``, ``"."``, ``"raw/.."``, ``"a//b"``, ``"/etc"``), holds a
    backslash or a NUL, so no key can name the lake root, its parent or anything outside it, on
    a local folder or on S3. With ``prefix`` (listing), ``""`` (the whole lake) and one
    trailing ``/`` are allowed.
    """
    if not isinstance(key, str):
        raise ValueError(f"lake key is not a string: {key!r}")
    body = key[:-1] if prefix and key.endswith("/") else key
    if prefix and body == "":
        return key
    parts = body.split("/")
    if (
        not body
        or "\\" in body
        or "\x00" in body
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(f"lake key does not name an object inside the lake: {key!r}")
    return key


class Lake(Protocol):
    """What the assets need from object storage."""

    root_url: str

    def exists(self, key: str) -> bool: ...

    def put_file(self, local_path: str | os.PathLike, key: str) -> None:
        """Publish a finished local file under ``key`` atomically (replacing any previous object)."""

    def move_file(self, local_path: str | os.PathLike, key: str) -> None:
        """Like ``put_file``, but the local file may be consumed (a rename where possible)."""

    def put_bytes(self, data: bytes, key: str) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> IO[bytes]: ...

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local filesystem path with the object's bytes (the object itself for a local lake)."""

    def list_keys(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def size(self, key: str) -> int: ...

    def uri(self, key: str) -> str:
        """Address of the object for DuckDB / dbt (a path locally, ``s3://`` on S3)."""

    def sweep_abandoned_writes(self, older_than_seconds: float, *, now: float | None = None) -> list[AbandonedWrite]:
        """Remove what writers killed mid-write left behind (never visible to readers)."""


@dataclass(frozen=True)
class AbandonedWrite:
    """A write that never completed: a local temp file or an unfinished S3 multipart upload."""

    key: str
    bytes: int
    started_at: float


class LocalLake:
    """A lake in a local folder. Writes go to a hidden temp file in the target folder, then rename."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root_url = str(self.root)

    def _path(self, key: str, *, prefix: bool = False) -> Path:
        check_key(key, prefix=prefix)
        path = (self.root / key).resolve()
        # Keys come from our own code, but a hospital-controlled string must never escape the
        # lake, nor name its root (a write would put its temp file in the lake's parent).
        if self.root not in path.parents and not (prefix and path == self.root):
            raise ValueError(f"lake key escapes the lake root: {key!r}")
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def _tmp_sibling(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{target.name}"

    def put_file(self, local_path: str | os.PathLike, key: str) -> None:
        target = self._path(key)
        tmp = self._tmp_sibling(target)
        try:
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def move_file(self, local_path: str | os.PathLike, key: str) -> None:
        """Like put_file but moves (cheap when the source is on the same filesystem)."""
        target = self._path(key)
        tmp = self._tmp_sibling(target)
        try:
            shutil.move(os.fspath(local_path), tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, data: bytes, key: str) -> None:
        target = self._path(key)
        tmp = self._tmp_sibling(target)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open_read(self, key: str) -> IO[bytes]:
        return open(self._path(key), "rb")

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        yield self._path(key)

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix, prefix=True)
        if base.is_file():
            return [prefix]
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(TEMP_PREFIX)
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def uri(self, key: str) -> str:
        return str(self._path(key, prefix=True))

    def sweep_abandoned_writes(self, older_than_seconds: float, *, now: float | None = None) -> list[AbandonedWrite]:
        # A worker killed between writing its temp sibling and the rename leaves ``.tmp-*``
        # behind. The age threshold keeps writes that are still in progress safe.
        cutoff = (time.time() if now is None else now) - older_than_seconds
        removed = []
        for path in self.root.rglob(f"{TEMP_PREFIX}*"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # its writer just finished (renamed) or cleaned up
                continue
            if not path.is_file() or stat.st_mtime > cutoff:
                continue
            path.unlink(missing_ok=True)
            removed.append(AbandonedWrite(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime))
        return removed


class S3Lake:
    """A lake in an S3 bucket (or MinIO / any S3-compatible endpoint) through boto3.

    An S3 PUT is atomic: readers see the old object or the new one, never a partial one, so
    no rename is needed. Multipart uploads (boto3's transfer manager) stream large files.
    """

    def __init__(self, url: str, *, endpoint_url: str | None = None, client=None):
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url!r}")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url)
        self.client = client

    def _key(self, key: str, *, prefix: bool = False) -> str:
        check_key(key, prefix=prefix)
        return f"{self.prefix}/{key}" if self.prefix else key

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put_file(self, local_path: str | os.PathLike, key: str) -> None:
        self.client.upload_file(os.fspath(local_path), self.bucket, self._key(key))

    move_file = put_file

    def put_bytes(self, data: bytes, key: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def open_read(self, key: str) -> IO[bytes]:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="pp-lake-") as tmp:
            path = Path(tmp) / Path(key).name
            self.client.download_file(self.bucket, self._key(key), os.fspath(path))
            yield path

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        strip = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix, prefix=True)):
            keys.extend(obj["Key"][len(strip) :] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])

    def uri(self, key: str) -> str:
        check_key(key, prefix=True)
        return f"{self.root_url}/{key}"

    def sweep_abandoned_writes(self, older_than_seconds: float, *, now: float | None = None) -> list[AbandonedWrite]:
        # boto3 streams large files as multipart uploads; a killed writer leaves its parts
        # stored (and billed) until the upload is aborted.
        cutoff = (time.time() if now is None else now) - older_than_seconds
        strip = f"{self.prefix}/" if self.prefix else ""
        removed = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("", prefix=True)):
            for upload in page.get("Uploads", []):
                started = upload["Initiated"].timestamp()
                if started > cutoff:
                    continue
                size = self._uploaded_bytes(upload["Key"], upload["UploadId"])
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                removed.append(AbandonedWrite(upload["Key"][len(strip) :], size, started))
        return removed

    def _uploaded_bytes(self, key: str, upload_id: str) -> int:
        paginator = self.client.get_paginator("list_parts")
        pages = paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id)
        return sum(part["Size"] for page in pages for part in page.get("Parts", []))


def open_lake(url: str, *, endpoint_url: str | None = None) -> Lake:
    """The lake for a URL: ``s3://bucket/prefix`` or a local folder path (``file://`` accepted)."""
    if url.startswith("s3://"):
        return S3Lake(url, endpoint_url=endpoint_url)
    if url.startswith("file://"):
        url = url[len("file://") :]
    return LocalLake(url)


def connect_duckdb(lake: Lake, database: str = ":memory:", *, read_only: bool = False):
    """A DuckDB connection that can read the lake's ``s3://`` paths.

    DuckDB's httpfs extension cannot be installed offline, so S3 is read through fsspec (s3fs),
    with the same endpoint the lake uses; credentials come from the standard AWS variables.
    """
    import duckdb

    con = duckdb.connect(database, read_only=read_only)
    if isinstance(lake, S3Lake):
        import s3fs

        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": lake.endpoint_url} if lake.endpoint_url else {})
        con.register_filesystem(fs)
    return con
