"""``python -m hw.cost``: see :mod:`hw.cost.cli`."""

import sys

from .cli import main

sys.exit(main())
