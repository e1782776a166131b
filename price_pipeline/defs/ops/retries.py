"""Retry policies per asset, and the decorator that classifies failures and records metrics.

Every retry policy backs off exponentially with jitter (``PLUS_MINUS``), so a wave of hospitals
failing against the same host does not retry in lock-step. What is retried is decided by
:func:`price_pipeline.lib.ops.classify.classify_exception`: a permanent error (a bad file, a
missing catalog entry, a bug) becomes ``dg.Failure(allow_retries=False)`` and fails at once; a
transient one (network, HTTP 5xx/429, S3 throttling, database connection loss, lock contention)
becomes a retryable ``dg.Failure``. Both carry ``failure_kind`` (transient/permanent),
``failure_origin`` (internal/external, :func:`~price_pipeline.lib.ops.classify.classify_origin`)
and ``failure_reason`` metadata, which the failed-hospitals view, the ops report and the alerts
read back.
"""

from __future__ import annotations

import functools
import time

import dagster as dg

from price_pipeline.lib.ops.classify import (
    PERMANENT,
    TRANSIENT,
    classify_exception,
    classify_origin,
    origin_from_message,
)

FAILURE_KIND = "failure_kind"
FAILURE_ORIGIN = "failure_origin"
FAILURE_REASON = "failure_reason"

# Downloads: remote hosts recover in minutes, not seconds — 10 s, 20 s, 40 s, 80 s (±jitter).
DOWNLOAD_RETRY = dg.RetryPolicy(max_retries=4, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
# Lake/registry I/O (S3 throttling, PostgreSQL failover, local lock contention): 5 s, 10 s, 20 s.
LAKE_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def permanent_failure(reason: str, *, origin: str, **metadata) -> dg.Failure:
    """A failure that must not be retried (the hospital goes to the failed-hospitals view);
    ``origin`` says whose it is (internal/external)."""
    return dg.Failure(
        description=f"permanent: {reason}",
        metadata={FAILURE_KIND: PERMANENT, FAILURE_ORIGIN: origin, FAILURE_REASON: reason[:1000], **metadata},
        allow_retries=False,
    )


def _with_kind(failure: dg.Failure) -> dg.Failure:
    metadata = dict(failure.metadata or {})
    if FAILURE_KIND in metadata and FAILURE_ORIGIN in metadata:
        return failure
    metadata.setdefault(FAILURE_KIND, TRANSIENT if failure.allow_retries else PERMANENT)
    metadata.setdefault(FAILURE_ORIGIN, origin_from_message(failure.description))
    metadata.setdefault(FAILURE_REASON, (failure.description or "")[:1000])
    return dg.Failure(description=failure.description, metadata=metadata, allow_retries=failure.allow_retries)


def _with_throughput(result, seconds: float):
    """Fill in duration and throughput the asset body did not record itself."""
    if not isinstance(result, dg.MaterializeResult):
        return result
    metadata = dict(result.metadata or {})
    metadata.setdefault("duration_seconds", round(seconds, 3))
    duration = metadata.get("duration_seconds")
    duration = duration.value if isinstance(duration, dg.MetadataValue) else duration
    rows = metadata.get("dagster/row_count")
    size = metadata.get("bytes")
    if isinstance(duration, int | float):
        # A recorded duration rounds to 0.0 for a body faster than a millisecond; the rate then
        # uses the measured seconds (never divides by zero).
        duration = duration if duration > 0 else max(seconds, 1e-6)
        if isinstance(rows, int) and "rows_per_second" not in metadata:
            metadata["rows_per_second"] = round(rows / duration, 1)
        if isinstance(size, int) and "bytes_per_second" not in metadata:
            metadata["bytes_per_second"] = round(size / duration, 1)
    return result._replace(metadata=metadata)


def timed(fn):
    """Decorate an asset body (under ``@dg.asset``): add ``duration_seconds`` and throughput
    (``rows_per_second`` from ``dagster/row_count``, ``bytes_per_second`` from ``bytes``) to its
    ``MaterializeResult``, so no asset times itself by hand."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        result = fn(*args, **kwargs)
        return _with_throughput(result, time.monotonic() - started)

    return wrapper


def classified(fn):
    """Decorate an asset body (under ``@dg.asset``): classify what it raises (see module doc) and
    add duration/throughput metadata to its ``MaterializeResult`` (as :func:`timed`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except dg.Failure as failure:
            raise _with_kind(failure) from failure.__cause__
        except (dg.RetryRequested, dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            raise
        except Exception as exc:
            found = classify_exception(exc)
            raise dg.Failure(
                description=f"{found.kind}: {found.reason}",
                metadata={FAILURE_KIND: found.kind, FAILURE_ORIGIN: classify_origin(exc), FAILURE_REASON: found.reason},
                allow_retries=found.retry,
            ) from exc
        return _with_throughput(result, time.monotonic() - started)

    return wrapper
