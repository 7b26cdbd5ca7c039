"""`python -m quorum_cli`: the same as the `quorum` console script."""

import sys

from quorum_cli.main import main

sys.exit(main())
