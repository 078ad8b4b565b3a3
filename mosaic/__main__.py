"""``python -m mosaic``."""

import sys

from mosaic.cli import main

sys.exit(main())
