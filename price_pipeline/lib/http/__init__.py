"""HTTP layer: SSRF-safe URL checks and robust streaming downloads (no Dagster imports)."""

from price_pipeline.lib.http.download import (
    DownloadResult,
    RetryPolicy,
    conditional_check,
    download,
    guess_extension,
    looks_like_html,
)
from price_pipeline.lib.http.url_safety import UnsafeUrlError, check_url, is_public_address

__all__ = [
    "DownloadResult",
    "RetryPolicy",
    "UnsafeUrlError",
    "check_url",
    "conditional_check",
    "download",
    "guess_extension",
    "is_public_address",
    "looks_like_html",
]
