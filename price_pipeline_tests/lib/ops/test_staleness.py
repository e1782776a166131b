"""The one busy rule and the staleness-bound decision of the rebuild sensors (lib/ops/staleness.py;
the sensors' end-to-end behaviour is price_pipeline_tests/ops/test_staleness_bound.py)."""

from price_pipeline.lib.ops import staleness


def test_decide():
    assert not staleness.decide(first_unseen_at=None, busy=None, now=100, max_wait_seconds=60).run
    assert staleness.decide(first_unseen_at=90, busy=None, now=100, max_wait_seconds=60).why == staleness.SETTLED
    waiting = staleness.decide(first_unseen_at=50, busy="3 runs", now=100, max_wait_seconds=60)
    assert not waiting.run and "10 s left" in waiting.why
    assert staleness.decide(first_unseen_at=40, busy="3 runs", now=100, max_wait_seconds=60).why == staleness.BOUND


def test_the_one_busy_rule():
    """Every rebuild sensor's "busy": a watched run queued or running, or (with a quiet time) one
    that changed state less than that ago; settled otherwise."""
    busy = staleness.busy_reason
    assert busy({"ingestion": 3, "catalog": 0}, {}, now=100) == "3 ingestion runs queued or running"
    assert busy({"ingestion": 1, "catalog": 2}, {}, now=100) == "1 ingestion run and 2 catalog runs queued or running"
    assert busy({"ingestion": 0, "catalog": 0}, {"ingestion": 99.0}, now=100) is None  # no quiet time asked
    assert busy({"ingestion": 0}, {"ingestion": 80.0}, now=100, quiet_seconds=45) == (
        "a ingestion run ended less than 45 s ago")
    assert busy({"ingestion": 0}, {"ingestion": 50.0}, now=100, quiet_seconds=45) is None
    assert busy({"ingestion": 0}, {"ingestion": None}, now=100, quiet_seconds=45) is None
    # a layer watched only until its runs have a run slot: busy while one waits in the queue
    assert busy({"ingestion": 0}, {}, now=100, queued={"analytics": 1}) == "1 analytics run waiting for a run slot"
    assert busy({"ingestion": 2}, {}, now=100, queued={"analytics": 1}) == (
        "2 ingestion runs queued or running; 1 analytics run waiting for a run slot")
    assert busy({"ingestion": 0}, {"ingestion": 50.0}, now=100, quiet_seconds=45, queued={"analytics": 0}) is None
