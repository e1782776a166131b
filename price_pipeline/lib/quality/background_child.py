"""The background validation child's entry point (:mod:`price_pipeline.lib.quality.background`):
``python -m price_pipeline.lib.quality.background_child <folder> <parent pid>``.

A module of its own, not imported by the package, so ``-m`` runs it once (running
``background`` itself with ``-m`` would execute a second copy of a module the package imports)."""

import sys

from price_pipeline.lib.quality.background import child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1], int(sys.argv[2])))
