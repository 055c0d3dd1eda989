"""Ctrl-C and SIGTERM: stop at a step boundary, write last.pt, exit 128 + signal. One mechanism for
one process and for a process group (torchrun), where all ranks must stop at the same step.

No torch here: the Hydra job installs the handler before it imports the training code.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the run after a step and wrote last.pt; exit 128 + signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StopOnSignal:
    """SIGINT/SIGTERM set a flag; the loop stops at the next step boundary. A second signal aborts.

    Outside the loop (set-up, the test) there is no step to finish: while `immediate` holds a
    message, a signal raises RunInterrupted at once, so the run still ends as `interrupted`
    with a summary and exit 128 + signal.

    With `agree` (under a process group: `distributed.any_rank`), `check()` asks all ranks every
    `every` calls, so a signal that reached one rank stops all of them at the same step and no rank
    is left waiting in a collective. There a second signal does not abort: torchrun forwards a
    Ctrl-C to each worker, which then sees it twice, and SIGKILLs workers that take too long itself.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, every: int = 1, agree: Callable[[bool], bool] | None = None) -> None:
        self.signum: int | None = None
        self.immediate: str | None = None
        self.stopped = False
        self.every = max(1, every)
        self.agree = agree
        self._calls = 0
        self._previous: dict[int, Any] = {}

    def install(self, immediate: str | None = None) -> StopOnSignal:
        self.immediate = immediate
        if self._previous or threading.current_thread() is not threading.main_thread():
            return self  # installed already; signal handlers live in the main thread only
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            with contextlib.suppress(ValueError, OSError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.agree is not None:  # a process group: the first signal counts, the loop stops all ranks
            if self.signum is None:
                self.signum = signum
            return
        if self.signum is not None:  # second Ctrl-C: stop now, without a checkpoint
            self.restore()
            raise KeyboardInterrupt
        self.signum = signum
        if self.immediate is not None:
            where, self.immediate = self.immediate, None
            raise RunInterrupted(f"{signal.Signals(signum).name}: stopped {where}", signum)
        print(
            f"\n{signal.Signals(signum).name}: finishing the current step, then writing last.pt "
            "(send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    @property
    def requested(self) -> bool:
        """A signal reached this process."""
        return self.signum is not None

    @property
    def received(self) -> int | None:
        return self.signum

    def check(self) -> bool:
        """What the loop asks after every batch: stop now? (With `agree`, every `every` calls, all ranks.)"""
        if self.stopped:
            return True
        self._calls += 1
        if self.agree is None:
            self.stopped = self.signum is not None
        elif self._calls % self.every == 0:
            self.stopped = self.agree(self.signum is not None)
        return self.stopped

    @property
    def exit_code(self) -> int:
        """128 + the signal, as shells report it (143 for SIGTERM, 130 for Ctrl-C)."""
        return 128 + int(self.signum or signal.SIGTERM)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        self._previous.clear()
