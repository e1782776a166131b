"""The streaming normaliser writes exactly the rows of the SQL normaliser it replaced (issue 12).

The oracle is the replaced module itself (``normalize_oracle``, kept verbatim in the tests, not
stored hashes): each case runs both on the same parsed file and compares the full multiset of
rows (every column, row for row; row order was never defined). ``prices``, ``prices_history``
and ``price_changes`` of a two-version hospital are compared the same way, and reruns show that
unchanged versions are reused, not parsed or normalised again.
"""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from price_pipeline.demo import gen_mrf
from price_pipeline.lib.fetch.files import FileOutcome, FilesManifest
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.parse import versions as parse_versions
from price_pipeline.lib.parse.mrf import parse_to_parquet
from price_pipeline.lib.prices import history as price_history
from price_pipeline.lib.prices.normalize import normalize_to_prices

from ..conftest import BROKEN, CMS
from . import normalize_oracle

DEMO_FILES = Path(__file__).resolve().parents[3] / "price_pipeline" / "demo" / "data" / "files"


def rows_of(path) -> collections.Counter:
    """Every row, every column, as a multiset."""
    return collections.Counter(json.dumps(r, sort_keys=True, default=repr) for r in pq.read_table(path).to_pylist())


def both(tmp_path, source: Path, sha: str = "sha-1") -> tuple[collections.Counter, collections.Counter]:
    parsed = tmp_path / f"{source.name}.parsed.parquet"
    summary = parse_to_parquet(source, parsed, file_sha256=sha)
    args = [(str(parsed), summary.header, sha)]
    n_new = normalize_to_prices(args, tmp_path / "new.parquet", hospital_key="h1")
    n_old = normalize_to_prices_oracle(args, tmp_path / "old.parquet")
    new, old = rows_of(tmp_path / "new.parquet"), rows_of(tmp_path / "old.parquet")
    assert n_new == n_old == sum(new.values())
    return new, old


def normalize_to_prices_oracle(args, out) -> int:
    return normalize_oracle.normalize_to_prices(args, out, hospital_key="h1", memory_limit="256MB")


# A tall file built to hit the corners of the item-level de-duplication: the same item with
# different notes on rows 9 and 10 (the SQL took the notes of the row whose number sorts first
# as TEXT: "10" < "9"), the same item on rows far apart, codes needing cleaning, a code with
# no type, rows without codes, zero and negative zero, identical adjacent rows.
EDGE_BODY = [
    "Filler {i},99213,CPT,,,outpatient,,,10,9,Aetna,PPO,,5,,,,,,,fee schedule,5,5,",
]
EDGE_ROWS = [
    "Bed,0120,RC,,,inpatient,,,100,90,Aetna,PPO,,50,,,,,,,fee schedule,50,60,",  # row 4
    "Split item,j1100,hcpcs,450,RC,outpatient,,,20,18,Aetna,PPO,,10,,,,,,,fee schedule,10,12,first",  # 5
    "Bed,0120,RC,,,inpatient,,,100,90,Cigna,HMO,,60,,,,,,,fee schedule,50,60,",  # 6
    "No codes,,,,,outpatient,,,7,,Aetna,PPO,,3,,,,,,,fee schedule,3,3,",  # 7
    "Untyped code,X1,,,,outpatient,,,8,,Aetna,PPO,,4,,,,,,,fee schedule,4,4,",  # 8
    "Notes item,DRG 4,MS-DRG,,,inpatient,,,500,,Aetna,PPO,,300,,,,,,,case rate,300,300,nine",  # 9
    "Notes item,DRG 4,MS-DRG,,,inpatient,,,500,,Cigna,HMO,,300,,,,,,,case rate,300,300,ten",  # 10
    "Zero,99999,CPT,,,outpatient,,,0,0,Aetna,PPO,,0,,,,,,,fee schedule,0,0,",  # 11
    "Zero,99999,CPT,,,outpatient,,,-0,-0,Cigna,HMO,,-0,,,,,,,fee schedule,-0,-0,",  # 12
    "Same,0002-1433-80,NDC,,,both,1,UN,30,,Aetna,PPO,,20,,,,,,,fee schedule,20,20,x",  # 13
    "Same,0002-1433-80,NDC,,,both,1,UN,30,,Aetna,PPO,,20,,,,,,,fee schedule,20,20,x",  # 14
    "Split item,J1100,HCPCS,0450,RC,outpatient,,,20,18,Cigna,HMO,,11,,,,,,,fee schedule,10,12,later",  # 15
    "Pct item,470,MS-DRG,,,inpatient,,,900,,Aetna,PPO,,,80,,700,500,900,12,percent of total billed charges,,,",
]


def edge_file(tmp_path) -> Path:
    head = (BROKEN / "small_tall.csv").read_text().split("\n")[:3]
    body = EDGE_ROWS + [EDGE_BODY[0].format(i=i) for i in range(30)]
    path = tmp_path / "edge.csv"
    path.write_text("\n".join(head + body) + "\n")
    return path


def generated(tmp_path, fmt: str, rows: int, seed: int, payers: int = 7) -> Path:
    path = tmp_path / f"gen-{fmt}-{seed}.{'json' if fmt == 'json' else 'csv'}"
    with open(path, "wb") as out:
        gen_mrf.write(fmt, rows, out, payers=payers, seed=seed)
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in DEMO_FILES.iterdir()))
def test_equal_to_sql_oracle_demo_hospitals(tmp_path, name):
    new, old = both(tmp_path, DEMO_FILES / name)
    assert new == old


@pytest.mark.parametrize("name", sorted(p.name for p in CMS.iterdir() if "Example" in p.name))
def test_equal_to_sql_oracle_cms_examples(tmp_path, name):
    new, old = both(tmp_path, CMS / name)
    assert new and new == old


@pytest.mark.parametrize(("fmt", "rows", "seed"), [("tall", 3000, 1), ("tall", 2500, 2), ("wide", 600, 3),
                                                   ("json", 400, 4)])
def test_equal_to_sql_oracle_generated(tmp_path, fmt, rows, seed, monkeypatch):
    # Small batches: items straddle batch boundaries and the two-stage de-duplication must merge them.
    monkeypatch.setattr("price_pipeline.lib.prices.normalize.BATCH_ROWS", 257)
    # A tiny code cache: it starts over every few batches, and keys must not depend on it.
    monkeypatch.setattr("price_pipeline.lib.prices.normalize.CACHE_PAIRS", 50)
    # Several stage-2 passes over the spill: every item must land in exactly one.
    monkeypatch.setattr("price_pipeline.lib.prices.normalize.SPILL_ROWS_PER_PASS", 97)
    new, old = both(tmp_path, generated(tmp_path, fmt, rows, seed))
    assert new == old


def test_equal_to_sql_oracle_edge_cases(tmp_path, monkeypatch):
    monkeypatch.setattr("price_pipeline.lib.prices.normalize.BATCH_ROWS", 5)  # runs cut by batch ends too
    monkeypatch.setattr("price_pipeline.lib.prices.normalize.SPILL_ROWS_PER_PASS", 4)
    new, old = both(tmp_path, edge_file(tmp_path))
    assert new == old
    rows = [json.loads(r) for r in new]
    notes = [r for r in rows if r["description"] == "Notes item" and r["charge_kind"] == "gross"]
    assert len(notes) == 1 and notes[0]["source_row"] == 9 and notes[0]["additional_generic_notes"] == "ten"
    split = [r for r in rows if r["description"] == "Split item" and r["charge_kind"] == "gross"]
    assert len(split) == 1 and split[0]["source_row"] == 5 and split[0]["primary_code"] == "J1100"


def test_multi_file_call_equal_to_oracle(tmp_path):
    parts = []
    for i, src in enumerate([generated(tmp_path, "tall", 800, 5), CMS / "V3.0.0_Wide_CSV_Format_Example.csv"]):
        parsed = tmp_path / f"p{i}.parquet"
        summary = parse_to_parquet(src, parsed, file_sha256=f"s{i}")
        parts.append((str(parsed), summary.header, f"s{i}"))
    normalize_to_prices(parts, tmp_path / "new.parquet", hospital_key="h1")
    normalize_to_prices_oracle(parts, tmp_path / "old.parquet")
    assert rows_of(tmp_path / "new.parquet") == rows_of(tmp_path / "old.parquet")


# --- a hospital in a lake: prices, prices_history, price_changes; reuse on rerun ---------------


def publish(lake: LocalLake, key: str, files: dict[str, bytes]) -> dict[str, str]:
    """Store raw files and a files manifest as mrf_files would; returns url -> sha256."""
    outcomes, shas = [], {}
    for url, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        raw_key = layout.raw_key(sha, "csv")
        lake.put_bytes(data, raw_key)
        outcomes.append(FileOutcome(url=url, status="ok", sha256=sha, size=len(data), raw_key=raw_key, extension="csv"))
        shas[url] = sha
    lake.put_bytes(FilesManifest(hospital_key=key, files=outcomes).to_json(), layout.files_manifest_key(key))
    return shas


def run_hospital(lake, key, scratch) -> tuple[price_history.HistoryResult, price_history.ChangesResult]:
    parse_versions.parse_hospital_files(key, lake=lake, scratch_dir=scratch)
    history = price_history.build_hospital_prices_with_history(key, lake=lake, scratch_dir=scratch)
    changes = price_history.compute_price_changes(key, lake=lake, scratch_dir=scratch)
    return history, changes


def tables(lake: LocalLake, key: str) -> dict[str, collections.Counter]:
    out = {"prices": rows_of(lake.uri(layout.prices_key(key))),
           "price_changes": rows_of(lake.uri(layout.price_changes_key(key)))}
    for path in sorted(Path(lake.uri(layout.prices_history_key(key, "x"))).parent.glob("file_sha256=*.parquet")):
        out[path.name] = rows_of(path)
    return out


def two_versions(tmp_path) -> tuple[bytes, bytes]:
    v1 = generated(tmp_path, "tall", 1500, 11).read_bytes()
    lines = v1.decode().splitlines(keepends=True)
    v2 = "".join(lines[:3] + [line.replace(",fee schedule,", ",case rate,") if i % 7 == 0 else line
                              for i, line in enumerate(lines[3:-40])])
    return v1, v2.encode()


def test_history_and_changes_equal_to_oracle(tmp_path, monkeypatch):
    v1, v2 = two_versions(tmp_path)
    results = {}
    for side in ("old", "new"):
        if side == "old":
            monkeypatch.setattr(price_history, "normalize_to_prices", _oracle_with_metadata)
        else:
            monkeypatch.undo()
        lake = LocalLake(tmp_path / f"lake-{side}")
        scratch = tmp_path / f"scratch-{side}"
        scratch.mkdir()
        publish(lake, "h1", {"http://x/a.csv": v1})
        run_hospital(lake, "h1", scratch)
        publish(lake, "h1", {"http://x/a.csv": v2})
        _, changes = run_hospital(lake, "h1", scratch)
        assert changes.old_file_sha256 and sum(changes.counts[k] for k in ("added", "removed", "changed")) > 0
        results[side] = tables(lake, "h1")
    assert set(results["new"]) == set(results["old"]) and len(results["new"]) == 4  # 2 history files
    for name, rows in results["new"].items():
        assert rows == results["old"][name], name


def _oracle_with_metadata(args, out, *, hospital_key, memory_limit, metadata=None):
    return normalize_oracle.normalize_to_prices(args, out, hospital_key=hospital_key, memory_limit=memory_limit)


class Calls:
    def __init__(self, monkeypatch):
        self.parsed, self.normalised = [], []
        real_parse, real_normalize = parse_versions.parse_to_parquet, price_history.normalize_to_prices

        def parse(src, out, **kw):
            self.parsed.append(kw.get("file_sha256"))
            return real_parse(src, out, **kw)

        def normalize(args, out, **kw):
            self.normalised.extend(sha for _, _, sha in args)
            return real_normalize(args, out, **kw)

        monkeypatch.setattr(parse_versions, "parse_to_parquet", parse)
        monkeypatch.setattr(price_history, "normalize_to_prices", normalize)


def hospital_with_two_versions(tmp_path):
    """Hospital h1 run once on each of two versions of its file: (lake, scratch, the second run's
    (history, changes))."""
    lake, scratch = LocalLake(tmp_path / "lake"), tmp_path / "scratch"
    scratch.mkdir()
    v1, v2 = two_versions(tmp_path)
    publish(lake, "h1", {"http://x/a.csv": v1})
    run_hospital(lake, "h1", scratch)
    publish(lake, "h1", {"http://x/a.csv": v2})
    return lake, scratch, run_hospital(lake, "h1", scratch)


def test_rerun_of_unchanged_hospital_reuses_everything(tmp_path, monkeypatch):
    calls = Calls(monkeypatch)
    lake, scratch, (first, first_changes) = hospital_with_two_versions(tmp_path)
    before = tables(lake, "h1")
    assert len(calls.parsed) == 2 and len(calls.normalised) == 2

    # Same bytes again: nothing parsed, normalised or joined; the tables are untouched.
    monkeypatch.setattr(price_history.duckdb, "connect", _no_duckdb)
    again, again_changes = run_hospital(lake, "h1", scratch)
    assert len(calls.parsed) == 2 and len(calls.normalised) == 2
    assert again.versions_written == [] and again.rows == first.rows and again.bytes == first.bytes
    assert again_changes.counts == first_changes.counts
    assert tables(lake, "h1") == before
    assert [v["is_current"] for v in again.versions] == [False, True]


def _no_duckdb(*args, **kwargs):
    raise AssertionError("price_changes recomputed on a rerun")


def test_three_files_one_changed_normalises_only_that_one(tmp_path, monkeypatch):
    calls = Calls(monkeypatch)
    lake, scratch = LocalLake(tmp_path / "lake"), tmp_path / "scratch"
    scratch.mkdir()
    files = {f"http://x/{i}.csv": generated(tmp_path, "tall", 600, 20 + i).read_bytes() for i in range(3)}
    shas = publish(lake, "h1", files)
    run_hospital(lake, "h1", scratch)
    assert sorted(calls.normalised) == sorted(shas.values())

    files["http://x/1.csv"] = generated(tmp_path, "tall", 650, 99).read_bytes()
    new_shas = publish(lake, "h1", files)
    result, _ = run_hospital(lake, "h1", scratch)
    assert result.versions_written == [new_shas["http://x/1.csv"]]
    assert calls.normalised[3:] == [new_shas["http://x/1.csv"]] and calls.parsed[3:] == [new_shas["http://x/1.csv"]]
    # The current table is the three current versions' rows, as a full renormalisation gives.
    expected = tmp_path / "expected.parquet"
    inputs = []
    for url, sha in new_shas.items():
        parsed = tmp_path / f"{sha}.parquet"
        src = tmp_path / f"raw-{sha}.csv"
        src.write_bytes(files[url])
        summary = parse_to_parquet(src, parsed, file_sha256=sha)
        inputs.append((str(parsed), summary.header, sha))
    normalize_to_prices(inputs, expected, hospital_key="h1")
    assert rows_of(lake.uri(layout.prices_key("h1"))) == rows_of(expected)


def test_parse_reuse_is_keyed_on_the_archive_caps_and_never_keeps_a_parser_failure(tmp_path, monkeypatch):
    from price_pipeline.settings import Settings

    lake, scratch = LocalLake(tmp_path / "lake"), tmp_path / "scratch"
    scratch.mkdir()
    v1, _ = two_versions(tmp_path)
    publish(lake, "h1", {"http://x/a.csv": v1})
    real_parse = parse_versions.parse_to_parquet
    parsed: list[dict] = []

    def flaky(src, out, **kw):
        parsed.append(kw)
        if len(parsed) == 1:
            raise MemoryError("transient")
        return real_parse(src, out, **kw)

    monkeypatch.setattr(parse_versions, "parse_to_parquet", flaky)
    (first,) = parse_versions.parse_hospital_files("h1", lake=lake, scratch_dir=scratch)
    assert not first.summary.ok and first.summary.findings[0].rule == "parse_failed"
    # the failure is not reused: the next run parses again, and that good parse is then reused
    (second,) = parse_versions.parse_hospital_files("h1", lake=lake, scratch_dir=scratch)
    assert second.summary.ok and len(parsed) == 2
    parse_versions.parse_hospital_files("h1", lake=lake, scratch_dir=scratch)
    assert len(parsed) == 2
    # an operator who changes the archive caps gets every file parsed again under the new caps
    settings = Settings(data_dir=tmp_path, lake_url=str(tmp_path / "lake"), registry_url="sqlite://",
                        warehouse_path=tmp_path / "w.duckdb", catalog_url="http://127.0.0.1:1/",
                        max_decompression_ratio=50)
    parse_versions.parse_hospital_files("h1", lake=lake, scratch_dir=scratch, settings=settings)
    assert len(parsed) == 3 and parsed[-1]["max_ratio"] == 50.0
    parse_versions.parse_hospital_files("h1", lake=lake, scratch_dir=scratch, settings=settings)
    assert len(parsed) == 3


def test_version_list_is_written_as_from_pylist_wrote_it(tmp_path):
    """versions.parquet is built from buffers (pyarrow's from_pylist imports pandas): the same
    table as ``pa.Table.from_pylist``, NULLs, dates and UTC timestamps included, and it reads
    back into the same rows."""
    import pyarrow as pa

    from price_pipeline.lib.lake.schemas import PRICE_VERSIONS_SCHEMA

    lake, _, (history, _) = hospital_with_two_versions(tmp_path)
    rows = history.versions
    assert len(rows) == 2 and rows[0]["superseded_at"] is not None and rows[1]["superseded_at"] is None
    expected = pa.Table.from_pylist(rows, schema=PRICE_VERSIONS_SCHEMA)
    assert price_history._table_from_rows(rows, PRICE_VERSIONS_SCHEMA).equals(expected)
    pq.write_table(expected, tmp_path / "expected.parquet")  # as the step wrote it before
    assert pq.read_table(lake.uri(layout.price_versions_key("h1"))).equals(pq.read_table(tmp_path / "expected.parquet"))
    assert price_history.read_versions(lake, "h1") == rows
