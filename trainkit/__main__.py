"""`python -m trainkit` (and `torchrun -m trainkit`) runs the CLI."""

import sys

from trainkit.cli import main

sys.exit(main())
