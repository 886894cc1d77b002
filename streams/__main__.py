"""``python -m streams`` is the ``tokenboard`` command."""

import sys

from streams.cli.main import main

sys.exit(main())
