"""How long the current operation may still wait, and whether it was cancelled.

A Terraform apply can be cut short in two ways: the ``timeouts`` block runs out, or the user presses
Ctrl-C (Terraform sends StopProvider). Every wait in this layer — a task poll, a retry's backoff, the
wait for another client's task — asks the thread's ``Budget`` how long it may sleep and raises
``Cancelled`` / ``OperationTimedOut`` when it may not go on, so no wait outlives what the user asked for.
The budget is thread-local: the resource layer sets it (``scoped``) around the vSphere work of one request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .. import exceptions as exc

__all__ = ["Budget", "current", "scoped", "UNLIMITED"]


@dataclass(frozen=True)
class Budget:
    """A deadline (``time.monotonic()`` value, None = none) and a stop signal (None = never)."""

    deadline: float | None = None
    stop: threading.Event | None = None
    what: str = "the operation"
    # vSphere tasks this operation started (moref values), so a caller that stops waiting can say which
    # may still be running (see ``resources.backend.run_bounded`` and the pending-task checks on read).
    started: list[str] = field(default_factory=list, compare=False)

    def note_task(self, task: Any) -> None:
        """Record a task this operation started (a no-op for the UNLIMITED budget outside any operation)."""
        if self is not UNLIMITED:
            value = getattr(task, "_moId", None)
            if value:
                self.started.append(value)

    @classmethod
    def within(cls, seconds: float | None, stop: threading.Event | None = None, what: str = "the operation"
               ) -> Budget:
        return cls(None if seconds is None else time.monotonic() + seconds, stop, what)

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def cancelled(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self) -> None:
        """Raise if the operation may not go on."""
        if self.cancelled():
            raise exc.Cancelled(f"{self.what} was cancelled")
        if self.expired():
            raise exc.OperationTimedOut(f"{self.what} ran out of time (the timeouts block)")

    def bound(self, seconds: float | None) -> float | None:
        """``seconds`` cut to what is left (None: unbounded on both sides)."""
        left = self.remaining()
        if seconds is None:
            return left
        return seconds if left is None else min(seconds, left)

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; wake at once on stop; then ``check``."""
        wait = self.bound(seconds) or 0.0
        if self.stop is not None:
            self.stop.wait(wait)
        elif wait > 0:
            time.sleep(wait)
        self.check()

    def wait_for(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event`` (whether it came); wake at once on stop; then ``check``."""
        end = time.monotonic() + (self.bound(seconds) or 0.0)
        while not event.is_set():
            left = end - time.monotonic()
            if left <= 0 or (self.stop is not None and self.stop.is_set()):
                break
            event.wait(min(left, 0.05) if self.stop is not None else left)
        self.check()
        return event.is_set()


UNLIMITED = Budget()
_local = threading.local()


def current() -> Budget:
    """The budget of the calling thread (UNLIMITED outside any ``scoped`` block)."""
    budget: Budget | None = getattr(_local, "budget", None)
    return budget if budget is not None else UNLIMITED


@contextmanager
def scoped(budget: Budget) -> Iterator[Budget]:
    """Make ``budget`` the calling thread's budget for the block."""
    previous = getattr(_local, "budget", None)
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = previous
