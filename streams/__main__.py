"""``python -m streams`` is the ``tokenboard`` command."""

import sys

from streams.cli import main

sys.exit(main())
