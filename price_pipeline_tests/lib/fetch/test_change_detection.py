"""Change detection: conditional GET -> HEAD size -> range fingerprint -> full sha256, learnt per host."""

from __future__ import annotations

import pytest

from price_pipeline.demo import load_catalog
from price_pipeline.demo.faults import Fault
from price_pipeline.demo.server import DemoCatalogServer
from price_pipeline.lib.fetch import change_detection as cd
from price_pipeline.lib.fetch.files import fetch_hospital_files
from price_pipeline.lib.fetch.http.fetch import make_client
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.registry import Registry
from price_pipeline_tests.lib.discovery.test_sources import make_settings

TALL_NAME = next(h["files"][0]["name"] for h in load_catalog() if h["id"] == "demo-007")


@pytest.fixture
def server():
    with DemoCatalogServer() as srv:
        yield srv


@pytest.fixture
def env(tmp_path, server):
    settings = make_settings(tmp_path, server)
    return settings, LocalLake(tmp_path / "lake"), Registry(settings.registry_url)


def fetch(env, server, tmp_path, **kw):
    settings, lake, registry = env
    url = server.file_url(TALL_NAME)
    return fetch_hospital_files("h1", [url], lake=lake, registry=registry, settings=settings, scratch_dir=tmp_path, **kw)


def file_gets(server) -> int:
    return sum(1 for r in server.requests if r.method == "GET" and "Range" not in r.headers
               and "If-None-Match" not in r.headers)  # fmt: skip


def test_unchanged_file_is_not_downloaded_again_and_last_seen_moves(env, server, tmp_path):
    first = fetch(env, server, tmp_path).files[0]
    assert first.status == "ok" and not first.unchanged
    registry = env[2]
    (v1,) = registry.file_versions_for("h1")
    server.clear_requests()
    second = fetch(env, server, tmp_path).files[0]
    assert second.unchanged and second.signal == "conditional" and second.sha256 == first.sha256
    assert file_gets(server) == 0  # one conditional GET answered 304, no body
    (v2,) = registry.file_versions_for("h1")
    assert v2["last_seen_at"] >= v1["last_seen_at"]


def test_changed_file_is_downloaded_and_recorded_as_a_new_version(env, server, tmp_path):
    fetch(env, server, tmp_path)
    server.set_file(TALL_NAME, server.file_bytes(TALL_NAME) + b"\nnew row,1,2\n")
    outcome = fetch(env, server, tmp_path).files[0]
    assert not outcome.unchanged and outcome.stored_new_bytes
    assert len(env[2].file_versions_for("h1")) == 2
    # the probe said "changed" and the full hash agreed: the host's conditional signal is confirmed
    assert env[2].host_profiles()["127.0.0.1"]["conditional_ok"] >= 1


def state_of(env, server):
    return env[2].file_states(["h1"])[("h1", server.file_url(TALL_NAME))]


def test_head_size_then_range_fingerprint_when_no_validators(env, server, tmp_path):
    settings, _, registry = env
    fetch(env, server, tmp_path)
    state = {**state_of(env, server), "etag": None, "last_modified": None}
    assert state["range_fingerprint"] and state["size"] > 3 * cd.RANGE_SPAN
    with make_client(settings) as client:
        same = cd.probe(state, settings=settings, client=client)
        assert (same.verdict, same.signal) == ("unchanged", "range")
        data = bytearray(server.file_bytes(TALL_NAME))
        data[5] ^= 1  # same size, first range differs
        server.set_file(TALL_NAME, bytes(data))
        edited = cd.probe(state, settings=settings, client=client)
        assert (edited.verdict, edited.signal) == ("changed", "range")
        server.set_file(TALL_NAME, bytes(data) + b"x")
        grown = cd.probe(state, settings=settings, client=client)
        assert (grown.verdict, grown.signal) == ("changed", "head")


def test_server_without_range_support_is_remembered_and_falls_back_to_download(env, server, tmp_path):
    settings, _, registry = env
    fetch(env, server, tmp_path)
    state = {**state_of(env, server), "etag": None, "last_modified": None}
    server.add_fault(server.file_url(TALL_NAME), Fault.ignore_range(times=None))
    with make_client(settings) as client:
        result = cd.probe(state, settings=settings, client=client)
    assert result.verdict == "unknown" and ("127.0.0.1", "range", False) in result.observations


def test_untrusted_conditional_signal_is_skipped():
    profile = {"conditional_ok": 3, "conditional_bad": 1}
    assert not cd.trusts(profile, "conditional") and cd.trusts(None, "conditional")
    assert cd.trusts({"conditional_ok": 40, "conditional_bad": 1}, "conditional")


def test_forced_rescan_catches_a_lying_server_and_distrusts_it(env, server, tmp_path):
    """A server that answers 304 although the bytes changed: the weekly forced download finds out."""
    settings, _, registry = env
    fetch(env, server, tmp_path)
    old = state_of(env, server)
    server.set_file(TALL_NAME, server.file_bytes(TALL_NAME) + b"\nchanged,1,2\n")
    server.add_fault(server.file_url(TALL_NAME), Fault.http_status(304, body=b"", times=1))
    outcome = fetch(env, server, tmp_path, force=True).files[0]
    assert outcome.sha256 != old["sha256"] and outcome.signal == "conditional"
    profile = registry.host_profiles()["127.0.0.1"]
    assert profile["conditional_bad"] == 1 and not cd.trusts(profile, "conditional")


def test_sweep_and_record(env, server, tmp_path):
    settings, _, registry = env
    fetch(env, server, tmp_path)
    states = list(registry.file_states().values())
    unchanged = cd.sweep(states, settings=settings)
    assert unchanged.counts == {"unchanged": 1} and unchanged.changed_hospitals == []
    server.set_file(TALL_NAME, server.file_bytes(TALL_NAME) + b"\n")
    changed = cd.sweep(states, settings=settings)
    assert changed.changed_hospitals == ["h1"]
    cd.record_sweep(registry, changed)
    assert state_of(env, server)["status"] == "changed"
    # the next ingestion downloads it without probing
    outcome = fetch(env, server, tmp_path).files[0]
    assert outcome.stored_new_bytes and state_of(env, server)["status"] == "ok"
