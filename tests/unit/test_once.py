"""Once (one computation shared by concurrent callers) and Fresh (the same, renewed after a TTL)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from terraform_provider_vmdk.vsphere.connection import once as once_module
from terraform_provider_vmdk.vsphere.connection.once import Fresh, Once


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(once_module.time, "monotonic", fake)
    return fake


def test_concurrent_callers_share_one_computation() -> None:
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    shared = Once(slow)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(shared.get())) for _ in range(5)]
    for t in threads:
        t.start()
    assert started.wait(5)
    release.set()
    for t in threads:
        t.join(5)
    assert results == [42] * 5 and len(calls) == 1 and shared.ready


def test_a_failure_is_not_remembered() -> None:
    outcomes: list[Any] = [RuntimeError("first"), 7]

    def factory() -> int:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)

    shared = Once(factory)
    with pytest.raises(RuntimeError, match="first"):
        shared.get()
    assert not shared.ready and shared.get() == 7


def test_fresh_reads_again_after_its_ttl(clock: Clock) -> None:
    reads: list[float] = []
    fresh = Fresh(lambda: reads.append(clock.now) or len(reads), ttl=10)
    assert fresh.get() == 1 and fresh.get() == 1
    clock.now += 9
    assert fresh.get() == 1
    clock.now += 2
    assert fresh.get() == 2 and len(reads) == 2


def test_fresh_current_never_reads(clock: Clock) -> None:
    reads: list[int] = []
    fresh: Fresh[dict[str, int]] = Fresh(lambda: reads.append(1) or {"n": len(reads)}, ttl=10)
    assert fresh.current() is None and not reads  # nothing read yet: nothing to edit
    value = fresh.get()
    clock.now += 60  # stale: get() would read again, current() still hands out the copy to edit
    current = fresh.current()
    assert current is value and len(reads) == 1
    fresh.reset()
    assert fresh.current() is None and fresh.get() == {"n": 2}


def test_fresh_with_no_ttl_reads_every_time() -> None:
    reads: list[int] = []
    fresh = Fresh(lambda: reads.append(1) or len(reads), ttl=0)
    assert [fresh.get(), fresh.get()] == [1, 2]
