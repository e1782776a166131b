"""Run tags: one owner for every tag and layer name, one host rule (lib/ops/tags.py)."""

from __future__ import annotations

import re

from price_pipeline.lib.ops.tags import (
    BATCH_SIZE_TAG,
    BULK_TAG,
    HOSPITAL_TAG,
    HOST_TAG,
    LAYER_TAG,
    PRIORITY_HIGH,
    PRIORITY_RESCAN,
    PRIORITY_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    batch_run_tags,
    bulk_run_tags,
    file_urls,
    hospital_host,
    hospital_run_tags,
    host_tag_value,
)
from price_pipeline.settings import PROJECT_ROOT


def test_run_tags_priority_and_one_host_rule():
    env = {"PRICE_PIPELINE_PRIORITY_HOSPITALS": "ccn-1, ccn-2"}
    # the first file is on another host: the most common host wins (the sensor used the first file's)
    urls = ["https://x.example/c", "https://FILES.vendor.example/a.csv", "https://files.vendor.example/b.json"]
    tags = hospital_run_tags("ccn-1", urls, trigger="catalog_sensor", env=env)
    assert tags == {HOSPITAL_TAG: "ccn-1", PRIORITY_TAG: str(PRIORITY_HIGH), HOST_TAG: "files.vendor.example",
                    LAYER_TAG: "ingestion", TRIGGER_TAG: "catalog_sensor"}
    assert PRIORITY_TAG not in hospital_run_tags("ccn-3", trigger="cli", env=env)
    assert hospital_run_tags("ccn-3", trigger="cli", priority=-5, env=env)[PRIORITY_TAG] == "-5"
    assert hospital_host([]) == "none" and hospital_host(["not a url", "http://[bad"]) == "none"
    assert hospital_host(["https://a.example/1", "https://b.example/2"]) == "a.example"  # tie: first listed
    assert len(hospital_host([f"https://{'a' * 80}.example/f"])) == 63
    bulk = bulk_run_tags("h.example", trigger="weekly_full_rescan", priority=PRIORITY_RESCAN)
    assert bulk == {HOST_TAG: "h.example", LAYER_TAG: "ingestion", TRIGGER_TAG: "weekly_full_rescan",
                    BULK_TAG: "true", PRIORITY_TAG: str(PRIORITY_RESCAN)}


def test_batch_tags_and_the_host_value_rule():
    tags = batch_run_tags("a", "c", 3, "x" * 80, trigger="catalog_sensor")
    assert tags == {RANGE_START_TAG: "a", RANGE_END_TAG: "c", BATCH_SIZE_TAG: "3", HOST_TAG: "x" * 63,
                    LAYER_TAG: "ingestion", TRIGGER_TAG: "catalog_sensor"}
    assert host_tag_value(None) == host_tag_value("") == "none"
    assert file_urls([{"url": "https://a/1"}, {"url": ""}, {"source": "x"}]) == ["https://a/1"]
    assert file_urls(None) == []


def test_every_tag_key_and_layer_name_is_spelled_only_in_tags_py():
    """A tag key ("price_pipeline/…", "dagster/priority", the partition-range tags) or a
    layer value as a string literal anywhere else in the package is a second owner."""
    tag_key = re.compile(r"[\"'](price_pipeline/[a-z_]+|dagster/(priority|partition|backfill|asset_partition_range_\w+))[\"']")
    layer_value = re.compile(r"LAYER_TAG\s*:\s*[\"']")
    found = []
    for path in sorted((PROJECT_ROOT / "price_pipeline").rglob("*.py")):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        if relative == "price_pipeline/lib/ops/tags.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if tag_key.search(code) or layer_value.search(code):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
