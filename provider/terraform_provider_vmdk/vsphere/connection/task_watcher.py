"""Task completion without polling: one ``WaitForUpdatesEx`` long-poll per session watching every task in flight.

govmomi's way, shared by the whole process: a PropertyCollector of our own with one filter over a ListView
of the tasks being waited for (their ``info.state``, ``info.error``, ``info.result``). A waiter adds its task
to the view (one ``ModifyListView``, which also drops the tasks that ended since) and sleeps; a single
thread sits in ``WaitForUpdatesEx`` and wakes each waiter the moment vSphere reports its task's end — one
round trip after the fact, not up to ``task_poll_interval`` later, and with no polls at all.

Everything session-bound (collector, view, filter) is rebuilt after a new login, and destroyed with the
session (a persisted session outlives the process: it must not accumulate collectors). When the watcher
cannot work (an endpoint without WaitForUpdatesEx, a broken collector) ``watch`` returns None and callers
poll, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from .transport import FATAL, classify, request_sent

if TYPE_CHECKING:
    from .caller import Caller

__all__ = ["TaskWatcher", "Watch"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
LONG_POLL = 30  # seconds a WaitForUpdatesEx may wait on the server before answering "nothing new"
PROPS = ["info.state", "info.error", "info.result", "info.descriptionId"]
_ENDED = (vim.TaskInfo.State.success, vim.TaskInfo.State.error)


@dataclass
class Watch:
    """One waiter's view of its task: the properties reported so far, and an event set when it ended (or
    when the watcher stopped working: ``broken``, then poll)."""

    task_id: str
    props: dict[str, Any] = field(default_factory=dict)
    ended: threading.Event = field(default_factory=threading.Event)
    broken: bool = False


class _Channel:
    """The session-bound objects of one login generation."""

    def __init__(self, session: Caller) -> None:
        content = session.content
        self.generation = session.generation
        self.collector = session.call(content.propertyCollector.CreatePropertyCollector)
        self.view = session.call(content.viewManager.CreateListView, obj=[])
        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=self.view, skip=True, selectSet=[
                pc.TraversalSpec(name="tasks", type=vim.view.ListView, path="view", skip=False)])],
            propSet=[pc.PropertySpec(type=vim.Task, pathSet=PROPS)])
        session.call(self.collector.CreateFilter, spec, partialUpdates=False)
        self.version = ""

    def destroy(self) -> None:
        for call in (self.collector.DestroyPropertyCollector, self.view.DestroyView):
            try:
                call()
            except Exception:  # noqa: BLE001, S110 - the session may be gone already
                pass


class TaskWatcher:
    def __init__(self, session: Caller) -> None:
        self.session = session
        self._lock = threading.Lock()  # never held across a SOAP call
        self._setup = threading.Lock()  # one thread builds the channel; others wait for it
        self._watches: dict[str, Watch] = {}
        self._ended: list[Any] = []  # tasks to drop from the view with the next ModifyListView
        self._channel: _Channel | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._broken = False

    # ------------------------------------------------------------------ waiters
    def watch(self, task: Any) -> Watch | None:
        """Start watching ``task``; None when the watcher does not work here (then poll)."""
        if self._broken or self._stopped.is_set():
            return None
        task_id = task._GetMoId()
        with self._lock:
            watch = self._watches.setdefault(task_id, Watch(task_id))
            ended, self._ended = self._ended, []
        for _ in range(2):
            channel = None
            try:
                channel = self._channel_for_now()
                self.session.call(channel.view.ModifyListView, add=[task], remove=ended)  # repeatable
                return watch
            except Exception as error:  # noqa: BLE001
                if channel is not None and channel.generation != self.session.generation:
                    continue  # a new login on the way: its own channel
                self.forget(watch)
                self._break(f"cannot watch tasks ({type(error).__name__}: {error})")
                return None
        self.forget(watch)
        return None

    def forget(self, watch: Watch) -> None:
        with self._lock:
            self._watches.pop(watch.task_id, None)

    # ------------------------------------------------------------------ the long-poll
    def _channel_for_now(self) -> _Channel:
        channel = self._channel
        if channel is not None and channel.generation == self.session.generation:
            return channel
        with self._setup:
            channel = self._channel
            if channel is None or channel.generation != self.session.generation:
                channel = _Channel(self.session)  # the old one died with its session
                self._channel = channel
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vmdk-task-watcher", daemon=True)
                self._thread.start()
        return channel

    def _run(self) -> None:
        pc = vmodl.query.PropertyCollector
        failures = 0
        while not self._stopped.is_set():
            channel = self._channel
            if channel is None:
                return
            try:
                update = channel.collector.WaitForUpdatesEx(channel.version, pc.WaitOptions(maxWaitSeconds=LONG_POLL))
                failures = 0
            except Exception as error:  # noqa: BLE001
                if self._stopped.is_set():
                    return
                if channel.generation != self.session.generation or isinstance(error, vim.fault.NotAuthenticated):
                    self._rebuild_after_login(channel)
                    continue
                failures += 1
                if classify(error, request_sent()) != FATAL and failures <= self.session.config.api_retry_count:
                    time.sleep(min(0.1 * 2 ** failures, 2.0))  # a reset or a 503: the long-poll is a read
                    continue
                self._break(f"WaitForUpdatesEx failed ({type(error).__name__}: {error})")
                return
            if update is None:
                continue
            channel.version = update.version
            self._apply(update)

    def _rebuild_after_login(self, channel: _Channel) -> None:
        """The session was renewed (or has to be): a new channel, and every waiter's task watched again."""
        try:
            if channel.generation == self.session.generation:
                self.session.renew_login(channel.generation)
            fresh = self._channel_for_now()
            with self._lock:
                ids = list(self._watches)
            tasks = [vim.Task(i, self.session.content.taskManager._stub) for i in ids]
            if tasks:
                fresh.view.ModifyListView(add=tasks)
        except Exception as error:  # noqa: BLE001
            self._break(f"cannot watch tasks after a new login ({type(error).__name__}: {error})")

    def _apply(self, update: Any) -> None:
        for filter_update in update.filterSet or ():
            for change in filter_update.objectSet or ():
                task_id = change.obj._GetMoId()
                with self._lock:
                    watch = self._watches.get(task_id)
                if watch is None or watch.ended.is_set():
                    continue
                for prop in change.changeSet or ():
                    watch.props[prop.name] = prop.val
                if watch.props.get("info.state") in _ENDED:
                    with self._lock:
                        self._ended.append(change.obj)
                    watch.ended.set()

    def _break(self, why: str) -> None:
        """Stop watching: every waiter polls from here on."""
        LOG.debug("task watcher off: %s; polling tasks instead", why)
        self._broken = True
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            watch.broken = True
            watch.ended.set()

    def close(self) -> None:
        """Destroy the collector and view (before the session logs out, or is kept for the next process)."""
        self._stopped.set()
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.destroy()
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            watch.broken = True
            watch.ended.set()
