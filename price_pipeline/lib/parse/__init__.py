"""Parse: every current file version of a hospital into source-faithful Parquet.

* :func:`parse_hospital_files` — the step (the ``mrf_parsed`` asset); returns the hospital's
  current :class:`ParsedVersion` records and publishes them; :func:`current_parsed_versions`
  reads them back; :func:`record_header_claims` keeps what each file's header says about its
  hospital.
* :mod:`.mrf` — the streaming parser of one file (:func:`parse_to_parquet`, :class:`ParseSummary`).
"""

from price_pipeline.lib.parse.mrf import Finding, ParseSummary, parse_to_parquet
from price_pipeline.lib.parse.versions import (
    HEADER_CLAIM_SOURCE,
    ParsedVersion,
    current_parsed_versions,
    parse_hospital_files,
    record_header_claims,
)

__all__ = [
    "HEADER_CLAIM_SOURCE",
    "Finding",
    "ParseSummary",
    "ParsedVersion",
    "current_parsed_versions",
    "parse_hospital_files",
    "parse_to_parquet",
    "record_header_claims",
]
