"""The files family of the registry (file versions, file states, host profiles), on SQLite and
PostgreSQL (the ``registry`` fixture, conftest.py)."""

from __future__ import annotations

from price_pipeline.lib.registry import HOST_SIGNALS, FileVersion


def test_file_versions_are_recorded_once_per_content(registry):
    fv = FileVersion("h1", "https://x.example/a.csv", "f" * 64, 10, "ok", raw_key="raw/ff/x.csv", etag='"1"')
    registry.record_file_version(fv)
    registry.record_file_version(fv)
    registry.record_file_version(FileVersion("h1", "https://x.example/a.csv", None, None, "failed", error="503"))
    versions = registry.file_versions_for("h1")
    assert len(versions) == 2
    assert {v["status"] for v in versions} == {"ok", "failed"}
    assert registry.latest_ok_version("h1", "https://x.example/a.csv")["etag"] == '"1"'
    assert versions[0]["host"] == "x.example"


def test_a_version_seen_again_keeps_its_first_seen_time_and_takes_the_new_values(registry):
    url = "https://x.example/a.csv"
    registry.record_file_version(FileVersion("h1", url, "a" * 64, 10, "ok", etag='"1"'))
    first = registry.file_versions_for("h1")[0]
    registry.record_file_version(FileVersion("h1", url, "a" * 64, 10, "ok", etag='"2"'))
    (again,) = registry.file_versions_for("h1")
    assert again["id"] == first["id"] and again["first_seen_at"] == first["first_seen_at"]
    assert again["etag"] == '"2"' and again["last_seen_at"] >= first["last_seen_at"]


def test_file_states_are_created_once_and_updated_by_columns(registry):
    listed = [("h1", "https://x.example/a.csv"), ("h1", "https://x.example/b.csv")]
    assert registry.ensure_file_states(listed) == 2
    assert registry.ensure_file_states([*listed, ("h2", "https://y.example/c.csv")]) == 1
    registry.upsert_file_states([{"hospital_key": "h1", "url": "https://x.example/a.csv", "status": "ok", "size": 5}])
    states = registry.file_states(["h1"])
    assert states[("h1", "https://x.example/a.csv")]["status"] == "ok"
    assert states[("h1", "https://x.example/b.csv")]["status"] == "pending"
    assert states[("h1", "https://x.example/b.csv")]["host"] == "x.example"
    assert [r["url"] for r in registry.file_states_after(("h1", "https://x.example/a.csv"), 10)] == [
        "https://x.example/b.csv", "https://y.example/c.csv"]


def test_host_signals_are_counted_per_host(registry):
    assert HOST_SIGNALS == ("conditional", "head", "range")
    registry.record_host_signals([("x.example", "head", True), ("x.example", "head", False), ("", "head", True),
                                  ("x.example", "unknown", True)])
    registry.record_host_signals([("x.example", "head", True), ("y.example", "range", True)])
    profiles = registry.host_profiles()
    assert (profiles["x.example"]["head_ok"], profiles["x.example"]["head_bad"]) == (2, 1)
    assert profiles["y.example"]["range_ok"] == 1 and profiles["y.example"]["conditional_ok"] == 0
