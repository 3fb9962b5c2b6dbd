"""``python -m clickmask`` runs the command line."""

import sys

from clickmask.cli import main

sys.exit(main())
