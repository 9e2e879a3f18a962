"""What the task machinery needs of a session, as a protocol: ``tasks`` and ``task_watcher`` depend on it,
``session`` implements it, so the session can use them without an import circle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .config import ConnectionConfig

__all__ = ["Caller"]


class Caller(Protocol):
    """A logged-in vSphere connection that calls methods with its retry policy (``Session``)."""

    config: ConnectionConfig

    @property
    def content(self) -> Any: ...

    @property
    def generation(self) -> int: ...

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def renew_login(self, generation: int) -> None: ...
