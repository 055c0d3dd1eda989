"""How a trainkit process ends: everything Python's own exit does, except tearing down torch's modules.

Once `torch.optim` has run, torch has imported `torch._dynamo` and `torch._inductor`, and the
interpreter's final teardown of those module graphs costs about 0.7 s of CPU on every process
(a one-epoch `trainkit train` on 60k samples: 4.3 -> 3.4 CPU s; `benchmarks/whole_process.py`). For a
sweep of short jobs, or a torchrun worker whose C++ teardown can abort after a clean end (gloo's
threads, SIGABRT on a loaded machine), that is pure cost or a false failure. `leave` keeps the
order of Python's exit (threading's exit hooks, the non-daemon threads joined, the atexit handlers:
logging's file flush, multiprocessing's worker clean-up, loggers' hooks; stdout and stderr flushed)
and then ends the process without the teardown. A process that never imported torch exits as usual, and so
does one under a profiler, a debugger or coverage (`python -m cProfile -m trainkit ...`,
`coverage run -m trainkit ...`), whose results are written after the program returns.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def leave(code: object = 0) -> NoReturn:
    """End this process with `code` (as sys.exit reads it), skipping the interpreter's teardown."""
    if code is not None and not isinstance(code, int):  # SystemExit("message"): print it, exit 1
        print(code, file=sys.stderr)
        code = 1
    watched = sys.gettrace() is not None or sys.getprofile() is not None or "coverage" in sys.modules
    if "torch" not in sys.modules or watched:
        sys.exit(code)
    import atexit
    import contextlib
    import os
    import threading

    # What the interpreter does first: threading's own exit hooks (concurrent.futures and joblib's
    # executors stop their workers there), then it waits for the non-daemon threads.
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    else:  # pragma: no cover - every CPython trainkit supports has it
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`trainkit ls | head`) or stream
            stream.flush()
    os._exit(code or 0)
