"""Pure library layer: parsing, normalising, storage and HTTP logic with no Dagster imports.

Everything here is usable from the CLI, benchmarks and tests without loading a code location.
"""
