"""The discovery sources, each a client returning claims (:mod:`.base`). A source's name below is
what its claims, the registry, ``PRICE_PIPELINE_DISCOVERY_SOURCES`` and the precedence use."""

CATALOG_API = "catalog_api"
CMS_HPT = "cms_hpt"
OVERRIDES = "overrides"
SOURCE_NAMES = (CATALOG_API, CMS_HPT, OVERRIDES)
