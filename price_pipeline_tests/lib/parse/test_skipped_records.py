"""Mapping returned rows to Arrow record numbers around skipped records (short rows, blank-run
marks): the parser and the validator's body pass share SkippedRecords, which keeps runs and folds
the ones every later row comes after (a flood of invalid rows once cost a sort per batch)."""

import random

import numpy as np
import pytest

from price_pipeline.lib.parse.mrf.csv_reader import SkippedRecords


@pytest.mark.parametrize("compact_after", [0, 3, 4096])
def test_mapping_batch_after_batch_equals_the_record_numbers(monkeypatch, compact_after):
    monkeypatch.setattr(SkippedRecords, "COMPACT_AFTER", compact_after)
    rng = random.Random(7)
    for _ in range(1500):
        total = rng.randint(0, 300)
        share = rng.random()
        skipped = [i for i in range(1, total + 1) if rng.random() < share]
        gone = set(skipped)
        expected = [i for i in range(1, total + 1) if i not in gone]
        records = SkippedRecords()
        mapped: list[int] = []
        added = returned = 0
        while returned < len(expected):
            batch = expected[returned:returned + rng.randint(1, 20)]
            # Arrow has reported the invalid rows up to the batch's last record, and maybe some
            # beyond it (read-ahead)
            reported_to = batch[-1] + rng.randint(0, 10)
            while added < len(skipped) and skipped[added] <= reported_to:
                records.add(skipped[added])
                added += 1
            rows = np.arange(returned + 1, returned + len(batch) + 1, dtype=np.int64)
            mapped += records.map(rows).tolist()
            returned += len(batch)
        assert mapped == expected, skipped
        assert records.count == added


def test_a_flood_of_scattered_skips_keeps_few_open_runs():
    """Every other record skipped, mapped in batches: the runs behind the rows mapped so far are
    folded away, so each batch's work is about its own runs."""
    records = SkippedRecords()
    returned = 0
    for batch_start in range(0, 200_000, 1_000):
        for k in range(batch_start, batch_start + 1_000):
            records.add(2 * k + 1)  # records 1, 3, 5, ... skipped; 2, 4, 6, ... returned
        rows = np.arange(returned + 1, returned + 1_001, dtype=np.int64)
        assert records.map(rows).tolist() == [2 * int(r) for r in rows]
        returned += 1_000
        assert len(records.starts) - records._first_open <= 1
    assert len(records.starts) <= 2 * SkippedRecords.COMPACT_AFTER + 1_000
