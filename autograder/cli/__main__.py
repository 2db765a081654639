"""`python -m autograder.cli ...`: the `torchgrade` command."""

import sys

from . import main

sys.exit(main())
