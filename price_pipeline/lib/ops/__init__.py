"""Operations logic without Dagster imports: failure classification, alert delivery (webhook and
SMTP), run-tag policy (priorities, per-host limits) and the ops report computations.

Callers (defs/, the CLI) import the names below; ``report`` and ``staleness`` are exported as
namespaces because their names (``markdown``, ``decide``, ``BOUND``...) only read well qualified.
The names resolve on first use (PEP 562): importing ``lib.ops.tags`` must not bring in the alert
client, the HTTP stack and pyarrow (the CLI builds its parser from tags alone)."""

from __future__ import annotations

import importlib

# public name -> (module of this package, its name there)
_EXPORTS = {
    "ACCEPT_ROW_DROP_TAG": ("tags", "ACCEPT_ROW_DROP_TAG"),
    "ANALYTICS": ("tags", "ANALYTICS"),
    "Alert": ("alerts", "Alert"),
    "AlertConfig": ("alerts", "AlertConfig"),
    "BACKFILL_TAG": ("tags", "BACKFILL_TAG"),
    "BULK_ID_TAG": ("tags", "BULK_ID_TAG"),
    "BULK_TITLE_TAG": ("tags", "BULK_TITLE_TAG"),
    "CANCELED": ("classify", "CANCELED"),
    "CATALOG": ("tags", "CATALOG"),
    "DeadLetter": ("deadletter", "DeadLetter"),
    "EXTERNAL": ("classify", "EXTERNAL"),
    "FORCE_DOWNLOAD_TAG": ("tags", "FORCE_DOWNLOAD_TAG"),
    "FULL_REFRESH_TAG": ("tags", "FULL_REFRESH_TAG"),
    "HOSPITAL_TAG": ("tags", "HOSPITAL_TAG"),
    "HOST_TAG": ("tags", "HOST_TAG"),
    "INGESTION": ("tags", "INGESTION"),
    "INGESTION_ASSET_NAMES": ("deadletter", "INGESTION_ASSET_NAMES"),
    "INTERNAL": ("classify", "INTERNAL"),
    "LAYER_TAG": ("tags", "LAYER_TAG"),
    "NO_HOST": ("tags", "NO_HOST"),
    "OPS": ("tags", "OPS"),
    "Outcome": ("deadletter", "Outcome"),
    "PARTITION_TAG": ("tags", "PARTITION_TAG"),
    "PERMANENT": ("classify", "PERMANENT"),
    "PRIORITY_BULK": ("tags", "PRIORITY_BULK"),
    "PRIORITY_HIGH": ("tags", "PRIORITY_HIGH"),
    "PRIORITY_RESCAN": ("tags", "PRIORITY_RESCAN"),
    "PRIORITY_TAG": ("tags", "PRIORITY_TAG"),
    "QUALITY": ("tags", "QUALITY"),
    "RANGE_END_TAG": ("tags", "RANGE_END_TAG"),
    "RANGE_START_TAG": ("tags", "RANGE_START_TAG"),
    "TRANSIENT": ("classify", "TRANSIENT"),
    "TRIGGER_TAG": ("tags", "TRIGGER_TAG"),
    "batch_run_tags": ("tags", "batch_run_tags"),
    "bulk_run_tags": ("tags", "bulk_run_tags"),
    "check_failure_reason": ("deadletter", "check_failure_reason"),
    "check_origin": ("classify", "check_origin"),
    "classify_exception": ("classify", "classify_exception"),
    "classify_message": ("classify", "classify_message"),
    "classify_origin": ("classify", "classify_origin"),
    "dead_letter_hospitals": ("deadletter", "hospitals"),
    "dead_letters": ("deadletter", "dead_letters"),
    "deliver": ("alerts", "deliver"),
    "file_urls": ("tags", "file_urls"),
    "grouped_alert": ("alerts", "grouped_alert"),
    "hospital_host": ("tags", "hospital_host"),
    "hospital_run_tags": ("tags", "hospital_run_tags"),
    "layer_tags": ("tags", "layer_tags"),
    "order_for_adding": ("batches", "order_for_adding"),
    "origin_from_message": ("classify", "origin_from_message"),
    "plan_batches": ("batches", "plan_batches"),
    "range_tags": ("tags", "range_tags"),
    "registry_hospital_urls": ("tags", "registry_hospital_urls"),
    "retry_plan": ("deadletter", "retry_plan"),
}
_NAMESPACES = ("report", "staleness")

__all__ = sorted([*_EXPORTS, *_NAMESPACES])


def __getattr__(name: str):
    if name in _NAMESPACES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
