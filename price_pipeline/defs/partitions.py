"""The one hospital partitions object. Import it; never re-create it.

Keys are added and removed by the catalog sensor and normalised to ``[a-z0-9_-]`` by
``price_pipeline.lib.discovery.catalog.hospital_key`` (Dagster does not validate dynamic keys).
"""

import dagster as dg

hospital_partitions = dg.DynamicPartitionsDefinition(name="hospitals")
