"""``python -m price_pipeline.cli``: the same as the ``price-pipeline`` console script."""

import sys

from price_pipeline.cli import main

sys.exit(main())
