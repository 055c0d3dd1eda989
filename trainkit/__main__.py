"""`python -m trainkit` (and `torchrun -m trainkit`) runs the CLI."""

import sys

from trainkit.cli import main

try:
    code = main()
except SystemExit as exc:
    code = exc.code
if code is not None and not isinstance(code, int):
    print(code, file=sys.stderr)
    code = 1
# A torchrun worker leaves without the C++ teardown, which can abort after a clean end. Only a process
# that imported trainkit.distributed can have joined a group: `--help` and `ls` stay free of torch.
joined = sys.modules.get("trainkit.distributed")
if joined is not None:
    joined.exit_process(code)
sys.exit(code)
