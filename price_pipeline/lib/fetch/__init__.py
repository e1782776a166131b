"""Fetch: download each listed file of a hospital that changed and keep it by sha256.

* :func:`fetch_hospital_files` — the step (the ``mrf_files`` asset); returns and publishes a
  :class:`FilesManifest` of :class:`FileOutcome` (one per listed URL).
* :mod:`.change_detection` — conditional GET / HEAD size / range fingerprint probes, and the
  change sensor's :func:`sweep`.
* :mod:`.http` — the one safe HTTP client factory, SSRF checks, deadlines and robust downloads.
"""

from price_pipeline.lib.fetch.change_detection import (
    ProbeResult,
    SweepResult,
    conditional_check,
    probe,
    record_sweep,
    sweep,
)
from price_pipeline.lib.fetch.files import FileOutcome, FilesManifest, fetch_hospital_files

__all__ = [
    "FileOutcome",
    "FilesManifest",
    "ProbeResult",
    "SweepResult",
    "conditional_check",
    "fetch_hospital_files",
    "probe",
    "record_sweep",
    "sweep",
]
