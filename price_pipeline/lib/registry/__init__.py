"""The registry: what we know about hospitals and every file version we have seen.

One engine and connection owner (:class:`~.database.Database`: SQLite in WAL mode by default,
PostgreSQL in production; tables created and migrated on first use; batch writes that isolate a
record the database refuses, :class:`Rejected`) under three table families (:mod:`.tables`):

* :mod:`.hospitals` — ``hospitals`` (current reconciled view, removed ones kept),
  ``catalog_claims`` (every claim of every discovery source), ``hospital_identifiers``
  (CCN/EIN/NPI -> stable key);
* :mod:`.files` — ``file_versions`` (every version of every file), ``file_states`` (per-file
  change-detection state) and ``host_profiles`` (which change signals a host has proven
  trustworthy);
* :mod:`.discovery` — ``site_crawls`` (the last cms-hpt.txt crawl of each website) and
  ``discovery_findings`` (text a discovery source had to clean, records the database refused).

:class:`Registry` is all three over one engine; callers use only the names exported here.
"""

from __future__ import annotations

# _is_record_error: the data-error rule of the batch writers, for tests that exercise drivers directly
from price_pipeline.lib.registry.database import Rejected, _is_record_error  # noqa: F401
from price_pipeline.lib.registry.discovery import DiscoveryRecords
from price_pipeline.lib.registry.files import HOST_SIGNALS, FileRecords, FileVersion
from price_pipeline.lib.registry.hospitals import HospitalRecords

__all__ = ["HOST_SIGNALS", "FileVersion", "Registry", "Rejected"]


class Registry(HospitalRecords, FileRecords, DiscoveryRecords):
    """Thin, explicit data access over the registry tables, one engine for all of them."""
