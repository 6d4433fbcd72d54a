"""``python -m inference_thresholds.cli``: the same entry point as the console script."""

import sys

from .main import main

sys.exit(main())
