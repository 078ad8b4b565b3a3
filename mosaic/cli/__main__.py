"""``python -m mosaic.cli``: the same as the ``mosaic`` console script."""

import sys

from mosaic.cli import main

sys.exit(main())
