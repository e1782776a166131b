"""The registry's tables (SQLAlchemy Core), one ``metadata`` for all of them.

Families: hospitals (``hospitals``, ``catalog_claims``, ``hospital_identifiers``,
:mod:`.hospitals`), files (``file_versions``, ``file_states``, ``host_profiles``, :mod:`.files`)
and discovery (``site_crawls``, ``discovery_findings``, :mod:`.discovery`). Created on first
use; columns added since are added in place (:meth:`.database.Database.add_missing_columns`).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

hospitals = sa.Table(
    "hospitals",
    metadata,
    sa.Column("hospital_key", sa.String(64), primary_key=True),
    sa.Column("ccn", sa.String(16)),
    sa.Column("name", sa.Text),
    sa.Column("address", sa.Text),
    sa.Column("city", sa.Text),
    sa.Column("state", sa.String(8)),
    sa.Column("zip", sa.String(16)),
    sa.Column("website", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("removed_at", sa.DateTime(timezone=True)),
    # Added by the discovery work (issue 5); migrated in place on older registries.
    sa.Column("ein", sa.String(16)),
    sa.Column("npi", sa.String(16)),
    sa.Column("address_standardized", sa.Text),
    sa.Column("zip5", sa.String(5)),
    sa.Column("county", sa.Text),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("geo_source", sa.String(32)),
    sa.Column("sources", sa.Text),  # comma-separated discovery sources that claim this hospital
    sa.Column("files_fingerprint", sa.String(32)),
    sa.Column("files_json", sa.Text),  # the reconciled file list [{url, source, ...}]
)

# Identifier -> hospital key. Keeps partition keys stable when a later source brings a
# better identifier (a CCN for a hospital first seen by name only keeps its first key).
hospital_identifiers = sa.Table(
    "hospital_identifiers",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),  # ccn | npi | ein | name
    sa.Column("value", sa.String(128), primary_key=True),
    sa.Column("hospital_key", sa.String(64), nullable=False, index=True),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
)

# Current change-detection state of each listed file (one row per hospital x url).
file_states = sa.Table(
    "file_states",
    metadata,
    sa.Column("hospital_key", sa.String(64), primary_key=True),
    sa.Column("url", sa.String(2048), primary_key=True),
    sa.Column("host", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("size", sa.BigInteger),
    sa.Column("sha256", sa.String(64)),
    sa.Column("range_fingerprint", sa.String(64)),
    sa.Column("status", sa.String(16)),  # ok | failed | changed | pending
    sa.Column("last_signal", sa.String(24)),
    sa.Column("error", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_checked_at", sa.DateTime(timezone=True)),
    sa.Column("last_changed_at", sa.DateTime(timezone=True)),
    sa.Column("last_downloaded_at", sa.DateTime(timezone=True)),
)

# Per host: how often each signal was confirmed or contradicted by a full download.
host_profiles = sa.Table(
    "host_profiles",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("conditional_ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("conditional_bad", sa.Integer, nullable=False, server_default="0"),
    sa.Column("head_ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("head_bad", sa.Integer, nullable=False, server_default="0"),
    sa.Column("range_ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("range_bad", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

# The last cms-hpt.txt crawl of each website (errors keep the previous entries).
site_crawls = sa.Table(
    "site_crawls",
    metadata,
    sa.Column("website", sa.String(2048), primary_key=True),
    sa.Column("hospital_key", sa.String(64), index=True),
    sa.Column("url", sa.Text),
    sa.Column("status", sa.String(16)),  # found | missing | error | unsafe | none
    sa.Column("entries_json", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("crawled_at", sa.DateTime(timezone=True)),
    sa.Column("found_at", sa.DateTime(timezone=True)),
)

# Every claim a discovery source made about a hospital, kept with its source and timestamps, so a
# wrong merge can be audited and undone.
catalog_claims = sa.Table(
    "catalog_claims",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hospital_key", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("hospital_key", "source", "payload_sha256", name="uq_claim"),
)

file_versions = sa.Table(
    "file_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hospital_key", sa.String(64), nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("host", sa.Text),
    sa.Column("sha256", sa.String(64)),
    sa.Column("size", sa.BigInteger),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("content_type", sa.Text),
    sa.Column("raw_key", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),  # ok | failed
    sa.Column("error", sa.Text),
    sa.Column("error_kind", sa.String(16)),  # transient | permanent
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    # One row per (hospital, url, content); a failure is keyed by an empty sha256.
    sa.UniqueConstraint("hospital_key", "url", "sha256", name="uq_file_version"),
)

# What a discovery pass had to repair or leave out: text cleaned of NUL characters / lone
# surrogates (rule ``text_cleaned``) and records the database refused (``registry_rejected``).
# One row per (source, source_id, field, rule), with first/last seen.
discovery_findings = sa.Table(
    "discovery_findings",
    metadata,
    sa.Column("finding_id", sa.String(64), primary_key=True),  # sha256 of source|source_id|field|rule
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("source_id", sa.Text, nullable=False),
    sa.Column("hospital_key", sa.String(64), index=True),
    sa.Column("field", sa.Text),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
)
