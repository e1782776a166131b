"""Which nodes an incremental analytics build runs (price_pipeline.lib.analytics.build_selection)."""

from __future__ import annotations

import copy

from price_pipeline.lib.analytics import build_selection


def _manifest() -> dict:
    def node(kind: str, name: str, materialized: str | None = None, parents: tuple[str, ...] = ()) -> dict:
        return {"resource_type": kind, "name": name, "config": {"materialized": materialized},
                "checksum": {"checksum": name}, "depends_on": {"nodes": list(parents), "macros": []}}

    nodes = {
        "seed.p.brands": node("seed", "brands", "seed"),
        "model.p.stg": node("model", "stg", "view", ("source.p.lake.prices",)),
        "model.p.facts": node("model", "facts", "incremental", ("model.p.stg", "seed.p.brands")),
        "model.p.mart": node("model", "mart", "table", ("model.p.facts",)),
        "model.p.mart_view": node("model", "mart_view", "view", ("model.p.facts",)),
        "test.p.rules_brands": node("test", "rules_brands", "test", ("seed.p.brands",)),
        "test.p.rules_stg": node("test", "rules_stg", "test", ("model.p.stg",)),
        "test.p.rel": node("test", "rel", "test", ("model.p.mart", "seed.p.brands")),
    }
    return {"metadata": {"dbt_version": "1.11"}, "nodes": nodes,
            "sources": {"source.p.lake.prices": {"external": None, "relation_name": "read_parquet('x')"}},
            "macros": {"macro.p.clean": {"macro_sql": "select 1"}}}


def test_seeds_views_and_tests_of_seeds_alone_are_kept():
    kept = build_selection.unchanging_nodes(_manifest())
    # the tests of a view, and a test that also reads a model, still run: their data follows the lake
    assert kept == ["model.p.mart_view", "model.p.stg", "seed.p.brands", "test.p.rules_brands"]
    args = build_selection.lean_build_args(_manifest())
    assert args == ["--exclude", "brands mart_view rules_brands stg", "--indirect-selection", "empty"]


def test_fingerprint_follows_code_macros_and_settings_not_other_environment():
    manifest = _manifest()
    env = {"PRICE_PIPELINE_LAKE_URL": "/lake", "HOME": "/root"}
    fingerprint = build_selection.project_fingerprint(manifest, env)
    assert build_selection.project_fingerprint(manifest, {**env, "HOME": "/else"}) == fingerprint
    assert build_selection.project_fingerprint(manifest, {**env, "PRICE_PIPELINE_LAKE_URL": "/other"}) != fingerprint
    assert build_selection.project_fingerprint(manifest, {**env, "PRICE_PIPELINE_SMTP_PASSWORD": "x"}) == fingerprint
    changed_view = copy.deepcopy(manifest)
    changed_view["nodes"]["model.p.stg"]["checksum"] = {"checksum": "edited"}
    assert build_selection.project_fingerprint(changed_view, env) != fingerprint
    changed_macro = copy.deepcopy(manifest)
    changed_macro["macros"]["macro.p.clean"]["macro_sql"] = "select 2"
    assert build_selection.project_fingerprint(changed_macro, env) != fingerprint
    # compiling a node adds the macros it calls to depends_on: a built manifest hashes as its parse
    compiled = copy.deepcopy(manifest)
    compiled["nodes"]["model.p.facts"]["depends_on"]["macros"] = ["macro.p.clean"]
    assert build_selection.project_fingerprint(compiled, env) == fingerprint


def test_lean_only_after_a_full_success_of_the_same_fingerprint(tmp_path):
    manifest, env = _manifest(), {"PRICE_PIPELINE_LAKE_URL": "/lake"}
    warehouse = tmp_path / "warehouse.duckdb"
    # no warehouse yet: every node
    assert build_selection.incremental_build_args(manifest, warehouse, env, full_refresh=False)[0] == []
    warehouse.write_bytes(b"")
    selection, fingerprint = build_selection.incremental_build_args(manifest, warehouse, env, full_refresh=False)
    assert selection == []  # built, but no successful build recorded
    build_selection.record_build(warehouse, fingerprint)
    assert build_selection.incremental_build_args(manifest, warehouse, env, full_refresh=False)[0][0] == "--exclude"
    # a full refresh, or other settings, build every node
    assert build_selection.incremental_build_args(manifest, warehouse, env, full_refresh=True)[0] == []
    other = {"PRICE_PIPELINE_LAKE_URL": "/other"}
    assert build_selection.incremental_build_args(manifest, warehouse, other, full_refresh=False)[0] == []
    # a build that starts forgets the record: if it fails, the next one builds every node
    build_selection.forget_build(warehouse)
    assert build_selection.incremental_build_args(manifest, warehouse, env, full_refresh=False)[0] == []
    # a record without its warehouse (deleted) counts for nothing
    build_selection.record_build(warehouse, fingerprint)
    warehouse.unlink()
    assert build_selection.incremental_build_args(manifest, warehouse, env, full_refresh=False)[0] == []


def test_kept_items_are_placed_before_their_first_dependent():
    manifest = _manifest()
    events = ["model.p.facts", "test.p.rules_stg", "model.p.mart", "test.p.rel", None]
    kept = {"seed.p.brands": "kept brands", "model.p.stg": "kept stg", "model.p.mart_view": "kept mart_view"}
    ordered = build_selection.in_dependency_order(events, lambda e: e if e and e.startswith(("model", "test")) else None,
                                                  kept, manifest)
    assert ordered == ["kept stg", "kept brands", "model.p.facts", "test.p.rules_stg", "model.p.mart", "test.p.rel",
                       None, "kept mart_view"]
