"""Pure library layer, no Dagster imports: one package per pipeline stage.

``discovery`` (which hospitals and files exist) -> ``fetch`` (download what changed) -> ``parse``
(source-faithful rows) -> ``validate`` (CMS conformance) -> ``prices`` (the canonical table and its
history) -> ``quality`` and ``analytics`` (checks, exports, published marts); ``lake`` (storage,
every key, schemas) and the registry serve them all, ``ops`` runs them. Each stage package
exports its step function(s) and typed result(s) from its ``__init__``.

Everything here is usable from the CLI, benchmarks and tests without loading a code location.
"""
