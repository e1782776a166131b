"""HTTP layer: the one safe client factory, SSRF checks, deadlines and robust streaming downloads
(no Dagster imports)."""

from price_pipeline.lib.fetch.http.budget import DeadlineExceeded, TransferBudget, TransferTooSlow
from price_pipeline.lib.fetch.http.client import safe_client
from price_pipeline.lib.fetch.http.download import (
    DownloadResult,
    RetryPolicy,
    download,
    guess_extension,
    looks_like_html,
)
from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError, check_url, is_public_address

__all__ = [
    "DeadlineExceeded",
    "DownloadResult",
    "RetryPolicy",
    "TransferBudget",
    "TransferTooSlow",
    "UnsafeUrlError",
    "check_url",
    "download",
    "guess_extension",
    "is_public_address",
    "looks_like_html",
    "safe_client",
]
