"""Connection settings for one vCenter / ESXi endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PORT = 443


def split_server(server: str) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"[v6]:port"`` or a URL → (host, port)."""
    s = server.strip()
    if "://" in s:
        s = s.split("://", 1)[1]
    s = s.split("/", 1)[0]
    if "@" in s:
        s = s.rsplit("@", 1)[1]
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif s.count(":") == 1:
        host, port = s.split(":")
    else:  # bare host or bare IPv6 address
        host, port = s, ""
    if not host:
        raise ValueError(f"invalid vSphere server {server!r}")
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"invalid port in vSphere server {server!r}")
        return host, int(port)
    return host, DEFAULT_PORT


@dataclass(frozen=True)
class ConnectionConfig:
    server: str  # "host" or "host:port"
    user: str
    password: str = field(repr=False)
    allow_unverified_ssl: bool = False
    ca_file: str | None = None
    api_retry_count: int = 10
    task_poll_interval: float = 0.5  # seconds
    task_timeout: float | None = None  # default per task wait; None = the operation's budget decides
    api_timeout: float = 300.0  # seconds without an answer before a request counts as lost
    persist_session: bool = False  # resume the session a previous process saved (session_store)
    session_path: str | None = None  # directory of saved sessions; None: the user's cache directory

    def __post_init__(self) -> None:
        split_server(self.server)  # validate early
        if self.api_retry_count < 0:
            raise ValueError("api_retry_count must be >= 0")
        if self.task_poll_interval <= 0:
            raise ValueError("task_poll_interval must be > 0")
        if self.api_timeout <= 0:
            raise ValueError("api_timeout must be > 0")

    @property
    def host(self) -> str:
        return split_server(self.server)[0]

    @property
    def port(self) -> int:
        return split_server(self.server)[1]

    @property
    def netloc(self) -> str:
        host, port = split_server(self.server)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
