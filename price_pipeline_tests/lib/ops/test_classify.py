"""Failure classification: transient or permanent, internal or external (lib/ops/classify.py)."""

from __future__ import annotations

import errno

import httpx
import pytest

from price_pipeline.lib.ops.classify import (
    PERMANENT,
    TRANSIENT,
    PermanentError,
    TransientError,
    classify_exception,
    classify_message,
    classify_origin,
    origin_from_message,
)


def _http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://h.example/f.csv")
    return httpx.HTTPStatusError("bad", request=request, response=httpx.Response(status, request=request))


class _OperationalError(Exception):
    pass


_OperationalError.__name__ = "OperationalError"


class _ClientError(Exception):
    def __init__(self, code: str, status: int):
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("connection refused"), TRANSIENT),
        (httpx.ReadTimeout("read timed out"), TRANSIENT),
        (_http_error(503), TRANSIENT),
        (_http_error(429), TRANSIENT),
        (_http_error(404), PERMANENT),
        (_http_error(403), PERMANENT),
        (TimeoutError("timed out"), TRANSIENT),
        (ConnectionResetError(errno.ECONNRESET, "reset"), TRANSIENT),
        (OSError(errno.ENOSPC, "No space left on device"), TRANSIENT),
        (_OperationalError("server closed the connection unexpectedly"), TRANSIENT),
        (_OperationalError("database is locked"), TRANSIENT),
        (_OperationalError("no such table: x"), PERMANENT),
        (RuntimeError("IO Error: Could not set lock on file warehouse.duckdb"), TRANSIENT),
        (_ClientError("SlowDown", 503), TRANSIENT),
        (_ClientError("NoSuchBucket", 404), PERMANENT),
        (ValueError("not a CMS price file: missing header row"), PERMANENT),
        (KeyError("hospital_name"), PERMANENT),
        (PermanentError("bad file"), PERMANENT),
        (TransientError("upstream busy"), TRANSIENT),
    ],
)
def test_classification(exc, kind):
    assert classify_exception(exc).kind == kind


def test_classification_follows_the_cause_chain():
    try:
        try:
            raise httpx.ConnectError("connection reset by peer")
        except httpx.ConnectError as inner:
            raise RuntimeError("download of https://h/f.csv failed") from inner
    except RuntimeError as outer:
        assert classify_exception(outer).kind == TRANSIENT
    assert classify_message("botocore: Read timed out") == TRANSIENT
    assert classify_message("ValueError: bad column") == PERMANENT


def test_failure_origin_internal_or_external():
    request = httpx.Request("GET", "https://h.example/f.csv")
    assert classify_origin(_http_error(503)) == "external"
    assert classify_origin(httpx.ConnectError("refused", request=request)) == "external"
    try:
        try:
            raise httpx.ReadTimeout("slow", request=request)
        except httpx.ReadTimeout as inner:
            raise RuntimeError("download failed") from inner
    except RuntimeError as outer:
        assert classify_origin(outer) == "external"
    assert classify_origin(ValueError("bug")) == "internal"
    assert classify_origin(_OperationalError("database is locked")) == "internal"
    assert classify_origin(PermanentError("no catalog entry")) == "internal"
    from price_pipeline.lib.ops.classify import ExternalError

    assert classify_origin(ExternalError("not a price file")) == "external"
    assert origin_from_message("every file of h failed transiently: HTTP 503") == "external"
    assert origin_from_message("KeyError: 'x'") == "internal" and origin_from_message(None) == "internal"
