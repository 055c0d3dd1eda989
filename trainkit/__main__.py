"""`python -m trainkit` (and `torchrun -m trainkit`) runs the CLI."""

import sys

from trainkit import distributed
from trainkit.cli import main

try:
    code = main()
except SystemExit as exc:
    code = exc.code
if code is not None and not isinstance(code, int):
    print(code, file=sys.stderr)
    code = 1
distributed.exit_process(code)  # a torchrun worker: no C++ teardown (it can abort after a clean end)
sys.exit(code)
