"""The reconcile decisions of a create whose outcome is in doubt: found, not found, found twice."""

from __future__ import annotations

from typing import Any

import pytest
from pyVmomi import vim

from terraform_provider_vmdk.vsphere import exceptions as exc
from terraform_provider_vmdk.vsphere.connection import tasks as tasks_mod
from terraform_provider_vmdk.vsphere.connection.reconcile import create_once


class FakeSession:
    """Sends ``start`` (counting), then answers the task wait from a script of outcomes."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.sent = 0

    def send(self, thunk: Any, *, what: str, idempotent: bool) -> Any:
        assert idempotent is False  # a create is never sent again blindly
        self.sent += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException) and not isinstance(outcome, exc.TaskFailed):
            raise outcome
        return outcome

    def wait_for_task(self, task: Any) -> Any:
        if isinstance(task, BaseException):
            raise task
        return task


@pytest.fixture(autouse=True)
def no_settle(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    settled: list[Any] = []
    monkeypatch.setattr(tasks_mod, "settle", lambda session, entity, ids=(): settled.append(entity))
    return settled


def test_a_clean_create_is_sent_once() -> None:
    session = FakeSession(["vm-1"])
    assert create_once(session, what="x", start=lambda: None, find=lambda: pytest.fail("no doubt")) == "vm-1"
    assert session.sent == 1


def test_lost_answer_and_the_object_exists_is_found_not_made_again(no_settle: list[Any]) -> None:
    session = FakeSession([exc.OutcomeUnknown("reset")])
    found = create_once(session, what="x", start=lambda: None, find=lambda: "vm-7", entity="folder")
    assert found == "vm-7" and session.sent == 1 and no_settle == ["folder"]


def test_lost_answer_and_nothing_was_made_is_sent_again() -> None:
    session = FakeSession([exc.OutcomeUnknown("reset"), "vm-2"])
    assert create_once(session, what="x", start=lambda: None, find=lambda: None) == "vm-2"
    assert session.sent == 2


def test_a_vanished_task_is_looked_up() -> None:
    session = FakeSession([exc.TaskNotFound("vmodl.fault.ManagedObjectNotFound", "gone")])
    assert create_once(session, what="x", start=lambda: None, find=lambda: "vm-3") == "vm-3"


def test_a_name_taken_by_our_own_earlier_attempt_is_found_and_by_another_object_is_an_error() -> None:
    session = FakeSession([vim.fault.DuplicateName(name="volume-x")])
    assert create_once(session, what="x", start=lambda: None, find=lambda: "vm-4") == "vm-4"
    session = FakeSession([vim.fault.DuplicateName(name="volume-x")])
    with pytest.raises(vim.fault.DuplicateName):
        create_once(session, what="x", start=lambda: None, find=lambda: None)


def test_it_gives_up_after_the_attempts_without_ever_making_two() -> None:
    session = FakeSession([exc.OutcomeUnknown("reset")] * 3)
    with pytest.raises(exc.OutcomeUnknown):
        create_once(session, what="x", start=lambda: None, find=lambda: None, attempts=3)
    assert session.sent == 3


def test_other_failures_are_raised_as_they_are() -> None:
    session = FakeSession([exc.TaskNoDiskSpace("vim.fault.NoDiskSpace", "full")])
    with pytest.raises(exc.NoDiskSpace):
        create_once(session, what="x", start=lambda: None, find=lambda: pytest.fail("not in doubt"))

# Found twice (two VMs for one identity, an older version's blind retry): lookup.choose keeps the complete one
# and the next write removes the other; see test_volume_policy.test_choose_prefers_the_complete_backing_*.
