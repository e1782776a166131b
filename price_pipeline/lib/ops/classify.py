"""Transient or permanent? The one decision that says whether a failed step is retried.

Transient: the network (timeouts, resets, DNS, TLS), HTTP 408/425/429/5xx, S3 throttling and
5xx, database connection loss and lock contention, a full disk being freed. They heal on their
own, so the step's RetryPolicy retries them with backoff and jitter.

Permanent: everything about the *content* (a file that is not a price file, a schema the parser
cannot read, a hospital missing from the catalog) and programming errors. Retrying only burns
time, so they fail at once (``dg.Failure(allow_retries=False)``) and the hospital lands in the
failed-hospitals view until someone fixes the cause and retries it in bulk.

A second, independent question is *whose* failure it is (:func:`classify_origin`):

External: the hospital's side — its server unreachable, slow or answering an HTTP error, a URL
that points at a private address, a file that is not a price file or cannot be read, a blocking
check that finds the source file empty or collapsed. Nothing we can fix; it is measured apart so
it never hides our own failure rate.

Internal: ours — our storage (S3, PostgreSQL, DuckDB), our catalog state, our output failing its
own contract, and every error not known to be external (a bug is ours until shown otherwise).
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass

TRANSIENT = "transient"
PERMANENT = "permanent"
INTERNAL = "internal"
EXTERNAL = "external"
CANCELED = "canceled"  # an operator or the run monitor stopped the run: neither side failed

TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EHOSTUNREACH,
        errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE, errno.EAGAIN, errno.EBUSY, errno.ENOSPC,
    }
)
# Exception class names (matched on the whole MRO, so no optional import is needed) that mean
# "try again later": httpx/requests/urllib3 transport errors, botocore endpoint errors,
# SQLAlchemy/psycopg2 connection loss, DuckDB's lock conflicts.
TRANSIENT_CLASS_NAMES = frozenset(
    {
        "TimeoutException", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "NetworkError",
        "ConnectError", "ReadError", "WriteError", "RemoteProtocolError", "ProtocolError", "TransportError",
        "ConnectionError", "ChunkedEncodingError", "IncompleteRead",
        "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
        "ResponseStreamingError",
        "OperationalError", "InterfaceError", "DisconnectionError", "SerializationFailure",
        "DeadlockDetected", "LockNotAvailable", "TransactionRollbackError",
        "IOException",  # duckdb: "Could not set lock on file"
    }
)
TRANSIENT_MESSAGE = re.compile(
    r"(timed? ?out|temporar(y|ily)|connection (reset|refused|aborted|closed)|could not set lock|"
    r"database is locked|deadlock|too many connections|server closed the connection|"
    r"the database system is (starting up|shutting down)|terminating connection|slow ?down|"
    r"throttl|service unavailable|bad gateway|gateway time-?out|try again)",
    re.IGNORECASE,
)
S3_TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "Throttling",
     "ThrottlingException", "RequestLimitExceeded", "500", "502", "503", "504"}
)


@dataclass(frozen=True)
class Classification:
    kind: str  # TRANSIENT or PERMANENT
    reason: str

    @property
    def retry(self) -> bool:
        return self.kind == TRANSIENT


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    if isinstance(response, dict):  # botocore ClientError.response
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code if isinstance(code, int) else None
    return None


def classify_exception(exc: BaseException) -> Classification:
    """Classify one exception, looking through its ``__cause__``/``__context__`` chain: a
    permanent wrapper around a transient cause (or the reverse) is judged by the first
    transient signal found."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _classify_one(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return Classification(PERMANENT, f"{type(exc).__name__}: {exc}"[:500])


def _classify_one(exc: BaseException) -> Classification | None:
    label = f"{type(exc).__name__}: {exc}"[:500]
    explicit = getattr(exc, "price_pipeline_failure_kind", None)
    if explicit in (TRANSIENT, PERMANENT):
        return Classification(explicit, label)
    status = _http_status(exc)
    if status is not None:
        return Classification(TRANSIENT if status in TRANSIENT_HTTP_STATUSES else PERMANENT, f"HTTP {status}: {label}")
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Code") in S3_TRANSIENT_CODES:
        return Classification(TRANSIENT, label)
    if isinstance(exc, socket.timeout | TimeoutError | ConnectionError | socket.gaierror):
        return Classification(TRANSIENT, label)
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return Classification(TRANSIENT, label)
    if _class_names(exc) & TRANSIENT_CLASS_NAMES and (
        not {"OperationalError", "IOException"} & _class_names(exc) or TRANSIENT_MESSAGE.search(str(exc))
    ):
        return Classification(TRANSIENT, label)
    if TRANSIENT_MESSAGE.search(str(exc)):
        return Classification(TRANSIENT, label)
    return None


def classify_message(message: str | None) -> str:
    """Classify a stored failure message (e.g. a step failure's error text) as transient/permanent."""
    return TRANSIENT if message and TRANSIENT_MESSAGE.search(message) else PERMANENT


# Errors met talking to a hospital's web server or reading its file (httpx's transport and status
# errors, our URL guard, the readers' limits), matched on the MRO by name like the list above.
EXTERNAL_CLASS_NAMES = frozenset(
    {
        "HTTPError", "HTTPStatusError", "TransportError", "TimeoutException", "RequestError", "TooManyRedirects",
        "DecodingError", "InvalidURL", "UnsafeUrlError", "DeadlineExceeded", "TransferTooSlow",
        "DecompressionLimit", "RecordTooLong", "BadZipFile", "UnicodeDecodeError", "JSONDecodeError",
        "gaierror",
    }
)
# Our own infrastructure: object store, databases, the warehouse. Checked before the external
# names, since e.g. botocore's ReadTimeoutError is a timeout against *our* S3.
INTERNAL_MODULE_PREFIXES = ("botocore", "boto3", "s3fs", "sqlalchemy", "psycopg", "psycopg2", "duckdb", "pyarrow")
EXTERNAL_MESSAGE = re.compile(
    r"(^|\W)(HTTP [1-5]\d\d|not a (CMS )?(price|machine-readable) file|not an MRF|every file of \S+ failed|"
    r"no price file|unreachable|name or service not known|certificate verify failed|unsafe url)",
    re.IGNORECASE,
)
# Blocking checks: whose failure does each one mean? The source file's content (external) or our
# own output's contract (internal). An unknown check counts as internal.
CHECK_ORIGINS = {
    "mrf_files_has_a_price_file": EXTERNAL,
    "mrf_parsed_has_rows": EXTERNAL,
    "mrf_parsed_row_count_not_collapsed": EXTERNAL,
    "prices_schema_and_lineage_complete": INTERNAL,
}


def classify_origin(exc: BaseException) -> str:
    """:data:`INTERNAL` or :data:`EXTERNAL` for an exception and its cause chain (see module doc):
    an explicit ``price_pipeline_failure_origin`` wins, then our infrastructure's modules, then the
    hospital-side error names; anything else is internal."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        explicit = getattr(current, "price_pipeline_failure_origin", None)
        if explicit in (INTERNAL, EXTERNAL):
            return explicit
        modules = {(cls.__module__ or "").split(".")[0] for cls in type(current).__mro__}
        if modules & set(INTERNAL_MODULE_PREFIXES):
            return INTERNAL
        if _class_names(current) & EXTERNAL_CLASS_NAMES:
            return EXTERNAL
        current = current.__cause__ or current.__context__
    return INTERNAL


def origin_from_message(message: str | None) -> str:
    """The origin of a stored failure text without recorded metadata (runs older than it)."""
    return EXTERNAL if message and EXTERNAL_MESSAGE.search(message) else INTERNAL


def check_origin(check_name: str) -> str:
    return CHECK_ORIGINS.get(check_name, INTERNAL)


class PermanentError(Exception):
    """Raise (or subclass) for errors that must not be retried: a bad file, a missing catalog entry."""

    price_pipeline_failure_kind = PERMANENT


class ExternalError(PermanentError):
    """Raise for a permanent failure on the hospital's side (its file or its server)."""

    price_pipeline_failure_origin = EXTERNAL


class TransientError(Exception):
    """Raise (or subclass) for errors that heal by themselves and are worth a retry."""

    price_pipeline_failure_kind = TRANSIENT
