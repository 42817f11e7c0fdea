"""`python -m server …` is the `seenext` command (used where the console script is not on PATH)."""

import sys

from server.cli.main import main

sys.exit(main())
