"""Dagster definitions, one folder per domain (catalog, ingestion, analytics).

Nothing here assembles a ``Definitions`` object: ``price_pipeline/definitions.py`` is the
only composition root. Logic lives in ``price_pipeline.lib``; these modules wire it to Dagster.
"""
