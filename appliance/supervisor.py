"""Every background thread runs under one supervisor: a loop of small steps that never dies of an exception.

A step that raises is logged, retried after a growing back-off, and reported (for /health) until a step
succeeds again. A step returns None when it did some work (run again at once) or the seconds to wait before
the next one (idle), unless woken earlier.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ApiError

log = logging.getLogger(__name__)

Step = Callable[[], float | None]
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0


@dataclass
class Failure:
    error: str
    since: float  # time.time() of the first failure in a row
    count: int


@dataclass
class Loop:
    name: str
    step: Step
    wake: threading.Event = field(default_factory=threading.Event)
    failure: Failure | None = None
    thread: threading.Thread | None = None


class Supervisor:
    def __init__(self) -> None:
        self._loops: dict[str, Loop] = {}
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self, name: str, step: Step) -> None:
        loop = self._loops[name] = Loop(name, step)
        loop.thread = threading.Thread(target=self._run, args=(loop,), name=name, daemon=True)
        loop.thread.start()

    def wake(self, prefix: str = "") -> None:
        """Cut the idle wait of every loop whose name starts with `prefix` (new work arrived)."""
        for loop in list(self._loops.values()):
            if loop.name.startswith(prefix):
                loop.wake.set()

    def stop(self) -> None:
        """Let each loop finish its current step, then join them all."""
        self._stopping.set()
        self.wake()
        for loop in self._loops.values():
            loop.thread.join()

    def problems(self) -> list[dict]:
        """The loops failing now (or dead, which only a bug could cause), for /health."""
        found = []
        for loop in list(self._loops.values()):
            if loop.failure is not None:
                found.append(
                    {
                        "thread": loop.name,
                        "error": loop.failure.error,
                        "failing_since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(loop.failure.since)),
                        "failures": loop.failure.count,
                    }
                )
            elif not loop.thread.is_alive() and not self.stopping:
                found.append({"thread": loop.name, "error": "stopped unexpectedly", "failures": 1})
        return found

    def _run(self, loop: Loop) -> None:
        while not self.stopping:
            try:
                wait = loop.step()
            except Exception as error:  # MemoryError included: the next step may well fit
                wait = self._failed(loop, error)
            else:
                if loop.failure is not None:
                    log.warning("%s recovered after %d failures", loop.name, loop.failure.count)
                    loop.failure = None
            if wait is not None and not self.stopping:
                loop.wake.wait(wait)
                loop.wake.clear()

    def _failed(self, loop: Loop, error: Exception) -> float:
        reason = str(error) or type(error).__name__
        if loop.failure is None:
            # A condition that explains itself (a full disk) needs one line; a surprise needs its traceback.
            log.warning("%s failed; retrying", loop.name, exc_info=not isinstance(error, ApiError))
            loop.failure = Failure(reason, time.time(), 1)
        else:
            loop.failure = Failure(reason, loop.failure.since, loop.failure.count + 1)
            if loop.failure.count & (loop.failure.count - 1) == 0:  # 2, 4, 8...: a lasting fault logs rarely
                log.warning("%s failed again (%d in a row): %s", loop.name, loop.failure.count, reason)
        return getattr(error, "retry_after", None) or min(
            BACKOFF_FIRST_SECONDS * 2 ** (loop.failure.count - 1), BACKOFF_MAX_SECONDS
        )
