"""The prices and price_changes steps do not import pandas (issue 12).

pyarrow imports pandas on the first ``pa.array`` / ``pa.scalar`` / Python literal in a compute
call / ``to_numpy(zero_copy_only=False)`` (~0.4 CPU-s per run process); the parser and the
validators already avoid it, so these steps were the ones paying it in a hospital run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from price_pipeline.lib.parse.mrf import parse_to_parquet

from . import test_normalize_equality as eq

# In a fresh process: a hospital with two versions of a generated tall file and one wide file
# (parsed, normalised into prices_history, prices published, changes joined), and a direct
# normalisation of a generated JSON file and of the edge-case file, with small batches so that
# every path of the normaliser runs (cut runs, stage-2 GROUP BY, cache restarts). The JSON file
# is parsed here, not there: the JSON parser's own pandas import is not these steps' concern.
_SCRIPT = textwrap.dedent("""
    import json
    import sys
    from pathlib import Path
    from price_pipeline.lib.lake.storage import LocalLake
    from price_pipeline.lib.parse.versions import parse_hospital_files
    from price_pipeline.lib.prices import normalize
    from price_pipeline_tests.lib.prices import test_normalize_equality as eq
    from price_pipeline_tests.lib.conftest import CMS

    tmp = Path(sys.argv[1])
    normalize.BATCH_ROWS, normalize.CACHE_PAIRS, normalize.SPILL_ROWS_PER_PASS = 257, 50, 97
    v1, v2 = eq.two_versions(tmp)
    wide = (CMS / "V3.0.0_Wide_CSV_Format_Example.csv").read_bytes()
    lake, scratch = LocalLake(tmp / "lake"), tmp / "scratch"
    scratch.mkdir()
    eq.publish(lake, "h1", {"http://x/a.csv": v1, "http://x/w.csv": wide})
    parse_hospital_files("h1", lake=lake, scratch_dir=scratch)
    assert "pandas" not in sys.modules, "parsing imported pandas: this test cannot see the prices steps"
    eq.run_hospital(lake, "h1", scratch)
    eq.publish(lake, "h1", {"http://x/a.csv": v2, "http://x/w.csv": wide})
    history, changes = eq.run_hospital(lake, "h1", scratch)
    rows = history.rows
    for i, header in enumerate(json.loads(sys.argv[2])):
        rows += normalize.normalize_to_prices([(str(tmp / f"p{i}.parquet"), header, f"s{i}")], tmp / f"o{i}.parquet",
                                              hospital_key="h1")
    print(rows, sum(changes.counts[k] for k in ("added", "removed", "changed")), "pandas" in sys.modules)
""")


def test_prices_and_changes_do_not_import_pandas(tmp_path):
    headers = []
    for i, src in enumerate([eq.generated(tmp_path, "json", 300, 4), eq.edge_file(tmp_path)]):
        headers.append(parse_to_parquet(src, tmp_path / f"p{i}.parquet", file_sha256=f"s{i}").header)
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), json.dumps(headers)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    rows, changed, pandas_loaded = out.stdout.split()
    assert int(rows) > 1000 and int(changed) > 0  # the steps ran on real rows and found the changes
    assert pandas_loaded == "False"
