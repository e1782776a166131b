"""The lake: atomic writes, content addressing, local and S3 (moto server) behave the same."""

from __future__ import annotations

import os
import time

import boto3
import pytest

from price_pipeline.lib.lake.layout import raw_key
from price_pipeline.lib.lake.storage import TEMP_PREFIX, LocalLake, S3Lake, open_lake


def test_raw_key_is_content_addressed():
    sha = "ab" + "0" * 62
    assert raw_key(sha, ".CSV") == f"raw/ab/{sha}.csv"
    assert raw_key(sha, "") == f"raw/ab/{sha}.bin"


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path, moto_s3):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    bucket = f"lake-{tmp_path.name.lower().replace('_', '-')[:40]}"
    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket=bucket)
    return S3Lake(f"s3://{bucket}/prefix", endpoint_url=moto_s3)


def test_put_get_list_delete_roundtrip(lake, tmp_path):
    source = tmp_path / "file.bin"
    source.write_bytes(b"x" * 1000)
    lake.put_file(source, "a/b/file.bin")
    lake.put_bytes(b"hello", "a/c.txt")
    assert lake.exists("a/b/file.bin") and lake.size("a/b/file.bin") == 1000
    assert lake.get_bytes("a/c.txt") == b"hello"
    assert lake.list_keys("a") == ["a/b/file.bin", "a/c.txt"]
    with lake.local_copy("a/b/file.bin") as path:
        assert path.read_bytes() == b"x" * 1000
    lake.put_bytes(b"replaced", "a/c.txt")
    assert lake.get_bytes("a/c.txt") == b"replaced"
    lake.delete("a/c.txt")
    assert not lake.exists("a/c.txt")
    assert lake.uri("a/b/file.bin").endswith("a/b/file.bin")


def test_local_lake_leaves_no_temp_files_and_refuses_escape(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    lake.put_bytes(b"1", "k/v")
    assert [p.name for p in (tmp_path / "lake" / "k").iterdir()] == ["v"]
    with pytest.raises(ValueError):
        lake.put_bytes(b"evil", "../outside")


def test_open_lake_selects_by_url(tmp_path, moto_s3):
    assert isinstance(open_lake(str(tmp_path)), LocalLake)
    assert isinstance(open_lake(f"file://{tmp_path}"), LocalLake)
    assert isinstance(open_lake("s3://bucket/x", endpoint_url=moto_s3), S3Lake)


def test_local_sweep_removes_only_old_abandoned_temp_files(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    lake.put_bytes(b"kept", "prices/hospital_key=a/prices.parquet")
    folder = tmp_path / "lake" / "prices" / "hospital_key=a"
    stale = folder / f"{TEMP_PREFIX}dead-prices.parquet"
    stale.write_bytes(b"x" * 10)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    in_progress = folder / f"{TEMP_PREFIX}live-prices.parquet"
    in_progress.write_bytes(b"y")

    removed = lake.sweep_abandoned_writes(older_than_seconds=3600)

    assert [(r.key, r.bytes) for r in removed] == [(f"prices/hospital_key=a/{stale.name}", 10)]
    assert not stale.exists() and in_progress.exists()
    assert lake.get_bytes("prices/hospital_key=a/prices.parquet") == b"kept"


def test_s3_sweep_aborts_unfinished_multipart_uploads(tmp_path, moto_s3):
    client = boto3.client("s3", endpoint_url=moto_s3)
    client.create_bucket(Bucket="sweep")
    lake = S3Lake("s3://sweep/lake", endpoint_url=moto_s3, client=client)
    lake.put_bytes(b"done", "raw/ab/done.csv")
    upload = client.create_multipart_upload(Bucket="sweep", Key="lake/raw/cd/killed.csv")
    client.upload_part(Bucket="sweep", Key="lake/raw/cd/killed.csv", UploadId=upload["UploadId"],
                       PartNumber=1, Body=b"z" * 1234)
    client.create_multipart_upload(Bucket="sweep", Key="elsewhere/not-ours.csv")

    # moto stamps every upload with one fixed initiation time, so ages are measured from it.
    initiated = client.list_multipart_uploads(Bucket="sweep")["Uploads"][0]["Initiated"].timestamp()
    assert lake.sweep_abandoned_writes(3600, now=initiated + 60) == []  # may still be uploading
    removed = lake.sweep_abandoned_writes(3600, now=initiated + 7200)

    assert [(r.key, r.bytes) for r in removed] == [("raw/cd/killed.csv", 1234)]
    remaining = client.list_multipart_uploads(Bucket="sweep").get("Uploads", [])
    assert [u["Key"] for u in remaining] == ["elsewhere/not-ours.csv"]
    assert lake.get_bytes("raw/ab/done.csv") == b"done"
