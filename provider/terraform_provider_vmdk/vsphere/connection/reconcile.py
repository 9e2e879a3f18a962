"""Writes that make an object exactly once, whatever the network does.

The caller fixes the new object's identity before the call (a volume's instanceUuid and marks, a
snapshot id in a description, a folder's name) and passes ``find``, which looks the object up by that
identity. When the answer to the create is lost (``OutcomeUnknown``), the task vanished, or vSphere says
the name is taken, we never send the create again blindly: first let any task still running on the
target settle, then look. Found: that is our object. Not found: vSphere provably did not make it, and
only then is the create sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pyVmomi import vim

from .. import exceptions as exc
from . import budget as _budget
from . import tasks as _tasks

__all__ = ["create_once", "DUPLICATE_FAULTS"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
T = TypeVar("T")

# vSphere's answers to a create whose object (by name or uuid) already exists.
DUPLICATE_FAULTS = ("DuplicateName", "AlreadyExists", "FileAlreadyExists")


def _is_duplicate(error: BaseException) -> bool:
    if isinstance(error, (vim.fault.DuplicateName, vim.fault.AlreadyExists)):
        return True
    fault_type = getattr(error, "fault_type", "") or ""
    return fault_type.rsplit(".", 1)[-1] in DUPLICATE_FAULTS


def create_once(session: Any, *, what: str, start: Callable[[], Any], find: Callable[[], T | None],
                entity: Any = None, description_ids: tuple[str, ...] = (), attempts: int = 3) -> Any:
    """Run the task ``start`` returns and give its result, or — when the outcome is in doubt — what
    ``find`` finds. ``entity`` (the object the task runs on) lets in-flight tasks settle before looking."""
    for attempt in range(1, attempts + 1):
        try:
            task = session.send(start, what=what, idempotent=False)
            _budget.current().note_task(task)
            return session.wait_for_task(task)
        except (exc.OutcomeUnknown, exc.TaskNotFound) as error:
            doubt: BaseException = error
        except Exception as error:
            if not _is_duplicate(error):
                raise
            doubt = error
        if entity is not None:
            _tasks.settle(session, entity, description_ids)
        found = find()
        if found is not None:
            LOG.warning("%s: the outcome was in doubt (%s); found the object it made", what, doubt)
            return found
        if _is_duplicate(doubt):
            raise doubt  # the name is held by an object that is not ours: a real conflict
        if attempt < attempts:
            LOG.warning("%s: the outcome was in doubt (%s) and nothing was made; sending it again (%d of %d)",
                        what, doubt, attempt + 1, attempts)
    raise exc.OutcomeUnknown(f"{what}: vSphere did not answer {attempts} times")
