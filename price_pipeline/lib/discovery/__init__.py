"""Discovery: which hospitals exist and which files they publish.

* :func:`discover` — the step (``hospital_catalog`` and the catalog sensor): every source
  (:mod:`.sources`: the PRA-style catalog API, cms-hpt.txt, manual overrides) reconciled into one
  hospital list (:mod:`.reconcile`; partition keys from the one normaliser, :mod:`.keys`), addresses standardised (:mod:`.geo`); returns a
  :class:`DiscoveryResult`, which :func:`apply_discovery` records in the registry.
* :mod:`.catalog` — the catalog API client and the hospital key of a catalog entry.
"""

# catalog first: the sources import it while this package is still being initialised.
from price_pipeline.lib.discovery.catalog import (
    CatalogError,
    CatalogHospital,
    fetch_catalog,
    files_fingerprint,
    hospital_key,
)
from price_pipeline.lib.discovery.discover import (
    CatalogDiff,
    CatalogShrinkError,
    DiscoveryResult,
    apply_discovery,
    catalog_digest,
    diff_catalog,
    discover,
    guard_against_shrink,
)
from price_pipeline.lib.discovery.keys import VALID_KEY, normalize_key
from price_pipeline.lib.discovery.sources import CATALOG_API, CMS_HPT, OVERRIDES, SOURCE_NAMES

__all__ = [
    "CATALOG_API",
    "CMS_HPT",
    "OVERRIDES",
    "SOURCE_NAMES",
    "CatalogDiff",
    "CatalogError",
    "CatalogHospital",
    "CatalogShrinkError",
    "VALID_KEY",
    "DiscoveryResult",
    "apply_discovery",
    "catalog_digest",
    "diff_catalog",
    "discover",
    "fetch_catalog",
    "files_fingerprint",
    "guard_against_shrink",
    "hospital_key",
    "normalize_key",
]
