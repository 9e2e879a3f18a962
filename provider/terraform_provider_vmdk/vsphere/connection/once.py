"""A value computed once, by one thread, while the others wait for it — without holding a lock.

Used where several of Terraform's concurrent requests need the same vSphere read or object (the
datacenter, a folder, the batched read of all backings): the first caller does the work, the others wait
on an event (bounded by their budget), and nobody holds a lock across a SOAP call. A failed computation
is not remembered: the next caller tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from . import budget as _budget

__all__ = ["Once", "Fresh"]

T = TypeVar("T")
_WAIT_SLICE = 0.2


class Once(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()  # guards the fields below only, never held across the factory
        self._done = False
        self._value: T | None = None
        self._running: threading.Event | None = None
        self._generation = 0

    @property
    def ready(self) -> bool:
        return self._done

    def get(self) -> T:
        allowance = _budget.current()
        while True:
            with self._lock:
                if self._done:
                    return cast(T, self._value)  # done: set by the factory or set() (T may include None)
                event = self._running
                if event is None:
                    event = self._running = threading.Event()
                    generation = self._generation
                    mine = True
                else:
                    mine = False
            if mine:
                return self._compute(event, generation)
            while not event.wait(allowance.bound(_WAIT_SLICE) or 0.0):
                allowance.check()

    def _compute(self, event: threading.Event, generation: int) -> T:
        try:
            value = self._factory()
        except BaseException:
            with self._lock:
                if self._running is event:
                    self._running = None
            event.set()
            raise
        with self._lock:
            if self._generation == generation:  # not reset meanwhile
                self._value, self._done = value, True
            if self._running is event:
                self._running = None
        event.set()
        return value

    def set(self, value: T) -> None:
        with self._lock:
            self._value, self._done = value, True

    def reset(self) -> None:
        """Forget the value; the next ``get`` computes it again."""
        with self._lock:
            self._done = False
            self._value = None
            self._generation += 1


class Fresh(Generic[T]):
    """A value read again once it is older than ``ttl`` seconds (``ttl`` 0: every time), by one thread while
    the others wait for it (``Once``). For facts that change rarely and are read by every concurrent request
    (the datastores and hosts placement weighs)."""

    def __init__(self, factory: Callable[[], T], ttl: float) -> None:
        self._ttl = ttl
        self._factory = factory
        self._once: Once[tuple[float, T]] = Once(self._stamped)

    def _stamped(self) -> tuple[float, T]:
        return time.monotonic(), self._factory()

    def get(self) -> T:
        if self._ttl <= 0:
            return self._factory()
        at, value = self._once.get()
        if time.monotonic() - at > self._ttl:
            self._once.reset()
            at, value = self._once.get()
        return value

    def current(self) -> T | None:
        """The value last read, however old, without reading (None before the first read ends): for edits
        that keep an in-memory copy up to date, which must never cause a read."""
        if not self._once.ready:
            return None
        return self._once.get()[1]

    def set(self, value: T) -> None:
        """A value read elsewhere just now (a read made for a decision serves the lookups after it)."""
        self._once.set((time.monotonic(), value))

    def reset(self) -> None:
        self._once.reset()
