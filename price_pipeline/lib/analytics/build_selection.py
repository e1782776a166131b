"""Which dbt nodes an incremental analytics build runs (issue 16, "incremental build cost").

An incremental ``dbt build`` pays dbt's own work for every node it runs (~0.04-0.1 s each, whatever
the node reads), and most of the project's nodes cannot change between two builds of the same
code: a seed's rows and a view's definition are only ever changed by the project itself (the data
a view shows is read through it by the tables, which are rebuilt). So when the project, its
settings and the warehouse are those of the last build that succeeded in full, the next build skips
the seeds and the views (:func:`lean_build_args`); their relations in the warehouse are exactly
what rebuilding them would make. Every table and incremental model runs (their data follows the
lake), and so does every test whose data can change: the tests of views included, only the tests
of seeds alone are skipped.

How "the same as the last build" is known: :func:`project_fingerprint` hashes every node's
checksum and config, every macro's SQL, the dbt version and the ``PRICE_PIPELINE_*`` settings dbt
reads (lake location, target, ...: a view's SQL embeds the lake's paths). A build that succeeds
records it beside the warehouse (:func:`record_build`); a build starts by forgetting it
(:func:`forget_build`), so a failed or interrupted build is followed by a build of every node. A
full refresh always builds every node.

The parse state dbt keeps (``partial_parse.msgpack``) is also kept beside the warehouse between
builds (:func:`partial_parse_cache`): each Dagster build runs dbt in a new target directory, and
without it dbt parsed the whole project on every build. No dbt import here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

# The record of the last build that succeeded in full, next to the warehouse file.
BUILD_STATE_SUFFIX = ".build_state.json"
# Settings of dbt's environment that the project's SQL or profile reads (profiles.yml, sources).
SETTINGS_PREFIX = "PRICE_PIPELINE_"
# ... except secrets (SMTP password, tokens): no SQL holds them, and a hash of them is not written.
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")


def project_fingerprint(manifest: Mapping, env: Mapping[str, str]) -> str:
    """A hash of what the compiled project depends on: nodes (checksum, config, parent nodes),
    macros (their SQL), the dbt version and the ``PRICE_PIPELINE_*`` variables of dbt's
    environment. Equal fingerprints mean the seeds and views a build would make are the same."""
    # depends_on's nodes only: dbt adds the macros a node calls when it compiles it, so a parsed
    # and a built manifest of the same project list different macros (every macro is hashed below).
    nodes = {
        unique_id: [node.get("checksum"), node.get("config"), node.get("depends_on", {}).get("nodes"),
                    node.get("relation_name")]
        for unique_id, node in manifest.get("nodes", {}).items()
    }
    sources = {unique_id: [source.get("external"), source.get("relation_name"), source.get("meta")]
               for unique_id, source in manifest.get("sources", {}).items()}
    macros = {unique_id: macro.get("macro_sql") for unique_id, macro in manifest.get("macros", {}).items()}
    settings = {name: value for name, value in env.items()
                if name.startswith(SETTINGS_PREFIX) and not any(word in name for word in SECRET_WORDS)}
    document = {
        "dbt_version": manifest.get("metadata", {}).get("dbt_version"),
        "adapter_type": manifest.get("metadata", {}).get("adapter_type"),
        "nodes": nodes,
        "sources": sources,
        "macros": macros,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def unchanging_nodes(manifest: Mapping) -> list[str]:
    """Unique ids of the nodes whose warehouse relation only the project's code changes: seeds, views,
    and tests whose every parent is a seed (their data is the seed's)."""
    nodes = manifest.get("nodes", {})
    skipped = {
        unique_id for unique_id, node in nodes.items()
        if node["resource_type"] == "seed"
        or (node["resource_type"] == "model" and node.get("config", {}).get("materialized") == "view")
    }
    seeds = {unique_id for unique_id in skipped if nodes[unique_id]["resource_type"] == "seed"}
    for unique_id, node in nodes.items():
        parents = [p for p in node.get("depends_on", {}).get("nodes", []) if p in nodes]
        if node["resource_type"] == "test" and parents and all(p in seeds for p in parents):
            skipped.add(unique_id)
    return sorted(skipped)


def lean_build_args(manifest: Mapping) -> list[str]:
    """dbt arguments of an incremental build that skips :func:`unchanging_nodes`. Indirect
    selection ``empty``: excluding a view must not exclude its tests (eager selection would),
    whose data still follows the lake."""
    nodes = manifest.get("nodes", {})
    names = sorted(nodes[unique_id]["name"] for unique_id in unchanging_nodes(manifest))
    # one space-separated value: dbt reads it as a list, and dagster-dbt's parser of the runtime
    # selection (extract_runtime_selection_from_args) takes one value per --exclude
    return ["--exclude", " ".join(names), "--indirect-selection", "empty"]


def build_state_path(warehouse: str | Path) -> Path:
    """Where the fingerprint of the warehouse's last fully successful build is kept."""
    path = Path(warehouse)
    return path.with_name(path.name + BUILD_STATE_SUFFIX)


def last_build_matches(warehouse: str | Path, fingerprint: str) -> bool:
    """Whether the warehouse exists and its last build succeeded in full with this fingerprint."""
    state = build_state_path(warehouse)
    if not Path(warehouse).exists() or not state.exists():
        return False
    try:
        return json.loads(state.read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def forget_build(warehouse: str | Path) -> None:
    """Before a build: until it succeeds, the warehouse is not known to match any fingerprint."""
    build_state_path(warehouse).unlink(missing_ok=True)


def record_build(warehouse: str | Path, fingerprint: str) -> None:
    """After a build that succeeded in full (every node it selected)."""
    state = build_state_path(warehouse)
    temporary = state.with_name(state.name + ".tmp")
    temporary.write_text(json.dumps({"fingerprint": fingerprint}))
    temporary.replace(state)


def incremental_build_args(manifest: Mapping, warehouse: str | Path, env: Mapping[str, str], *,
                           full_refresh: bool) -> tuple[list[str], str]:
    """The selection arguments of a whole-project build and the fingerprint to record after it
    succeeds: the lean selection when the warehouse's last full success had the same fingerprint
    (and this is no full refresh), otherwise none (every node)."""
    fingerprint = project_fingerprint(manifest, env)
    if not full_refresh and last_build_matches(warehouse, fingerprint):
        return lean_build_args(manifest), fingerprint
    return [], fingerprint


def in_dependency_order(events: list, unique_id_of, kept: Mapping[str, object], manifest: Mapping) -> list:
    """``events`` (in dbt's order, which is the dependency order) with the ``kept`` items (unique
    id -> item, e.g. a kept node's output) inserted where they belong: each right before the first
    event whose node depends on it (ancestors first), the others at the end. ``unique_id_of`` gives
    an event's node (None for an event of no node)."""
    nodes = manifest.get("nodes", {})
    pending = dict(kept)
    ordered: list = []

    def release_ancestors(unique_id: str) -> None:
        for parent in nodes.get(unique_id, {}).get("depends_on", {}).get("nodes", []):
            if parent in pending:
                item = pending.pop(parent)
                release_ancestors(parent)
                ordered.append(item)

    for event in events:
        unique_id = unique_id_of(event)
        if unique_id:
            release_ancestors(unique_id)
        ordered.append(event)
    for unique_id in sorted(kept):
        if unique_id in pending:
            item = pending.pop(unique_id)
            release_ancestors(unique_id)
            ordered.append(item)
    return ordered


# dbt's parse state of a target directory (dbt reads it to re-parse only what changed).
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
PARTIAL_PARSE_SUFFIX = ".partial_parse.msgpack"


def partial_parse_cache(warehouse: str | Path) -> Path:
    """Where the parse state of the last build of this warehouse is kept between builds.

    Each Dagster build runs dbt in a new target directory, which dagster-dbt seeds with the parse
    state of ``make manifest``; that state was made with another profile (no run's warehouse path,
    lake or target), so dbt discarded it and parsed the whole project on every build ("Unable to do
    partial parsing because profile has changed"): seconds of every build, the incremental one
    included. The state of the previous build of the same warehouse has the same profile."""
    path = Path(warehouse)
    return path.with_name(path.name + PARTIAL_PARSE_SUFFIX)


def seed_partial_parse(cache: Path, target_dir: Path) -> bool:
    """Put the kept parse state into a new target directory (before dbt starts; dbt checks it and
    parses in full when it does not match). Returns whether there was one."""
    if not cache.exists():
        return False
    target_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache, target_dir / PARTIAL_PARSE_FILE)
    return True


def keep_partial_parse(target_dir: Path, cache: Path) -> None:
    """After dbt ran: keep its parse state for the next build (replaced atomically)."""
    state = target_dir / PARTIAL_PARSE_FILE
    if state.exists():
        temporary = cache.with_name(cache.name + ".tmp")
        shutil.copyfile(state, temporary)
        temporary.replace(cache)
