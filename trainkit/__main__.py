"""`python -m trainkit` (and `torchrun -m trainkit`) runs the CLI."""

import atexit
import os
import sys

from trainkit.cli import main


def _worker_exit() -> None:
    """A torchrun worker leaves without the interpreter's teardown of torch's C++ objects.

    After a clean end (process group destroyed, files written), gloo's leftover threads can abort that
    teardown ("terminate called without an active exception", SIGABRT) on a loaded machine, and torchrun
    then reports a finished run as failed. The exit handlers (DataLoader workers, logging) still run.
    """
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if "TORCHELASTIC_RUN_ID" in os.environ:
    _worker_exit()
sys.exit(main())
