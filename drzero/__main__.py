"""``python -m drzero ...`` is the ``drzero`` command."""

import sys

from drzero.cli import main

sys.exit(main())
