"""Saved vSphere sessions: one login per Terraform command, not one per provider launch.

Terraform starts the provider several times per command, and each launch would log in again (0.3–1 s on a
real vCenter, which also caps its sessions). Like terraform-provider-vsphere's ``persist_session``, the
session cookie is kept in a file per (server, user) in the user's cache directory, and the next launch
resumes that session after one cheap check (``SessionManager.currentSession``), logging in again only when
it has ended.

The cookie is a credential: the directory is 0700 and the file 0600, both owned by the user; a file that is
not (or names another server or user, or cannot be read) is not trusted and gets replaced, and a directory
that is not is not used at all. The password is never written. Writes go to a temporary file renamed into
place, so concurrent launches never read half a file.

What the file says is not proof: the session resumes only when the server itself says it belongs to the
configured user (``Session._resume`` compares ``currentSession.userName`` with ``same_user``). A saved
session outlives a password change until vCenter ends it (idle timeout, or an administrator); deleting the
file, or ``persist_session = false``, stops its use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SavedSession", "SessionStore", "default_directory", "same_user"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
FORMAT = "vmdk-session-1"


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/terraform-provider-vmdk/sessions`` (``~/.cache/...`` by default): never the working
    directory, where a state or a CI artifact upload could pick it up."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "terraform-provider-vmdk" / "sessions"


def _principal(name: str) -> tuple[str, str | None]:
    """(user, domain) of a vSphere user name, lower-cased: ``VSPHERE.LOCAL\\Administrator`` and
    ``administrator@vsphere.local`` are both ``("administrator", "vsphere.local")``; a bare ``root`` has no
    domain."""
    text = name.strip().lower()
    if "\\" in text:
        domain, _, user = text.partition("\\")
        return user, domain or None
    if "@" in text:
        user, _, domain = text.rpartition("@")
        return user, domain or None
    return text, None


def same_user(server_says: str, configured: str) -> bool:
    """Whether the session user the server names is the configured user: case-insensitive, the
    ``DOMAIN\\user`` and ``user@domain`` forms alike. A side without a domain (a configured ``administrator``
    logs into the server's default domain; ESXi's ``root`` has none) matches on the user part alone; two
    domains must be the same (an Active Directory NetBIOS name and its DNS name are not recognised as one:
    that only costs a new login)."""
    user, domain = _principal(server_says)
    want_user, want_domain = _principal(configured)
    if not user or user != want_user:
        return False
    return domain is None or want_domain is None or domain == want_domain


@dataclass(frozen=True)
class SavedSession:
    cookie: str
    api_version: str | None


class SessionStore:
    """The session file of one (server, user) in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str] | None, netloc: str, user: str) -> None:
        self.directory = Path(directory).expanduser() if directory else default_directory()
        self.netloc, self.user = netloc, user
        key = hashlib.sha256(f"{netloc.lower()}\0{user}".encode()).hexdigest()[:32]
        self.path = self.directory / f"{key}.json"

    def _private_directory(self, create: bool = True) -> bool:
        """Create the directory 0700, or check an existing one is ours and private. ``create=False``
        (loading): only check, quietly (a save after the login warns)."""
        try:
            if create:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
        except OSError as error:
            if create:
                LOG.warning("session_path %s is not usable (%s); logging in without a saved session",
                            self.directory, error.strerror or error)
            return False
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            if create:
                LOG.warning("session_path %s is not private to this user (mode %o); logging in without a saved "
                            "session", self.directory, stat.S_IMODE(info.st_mode))
            return False
        return True

    def load(self) -> SavedSession | None:
        """The saved session, when there is one this user wrote for this server and user in a private
        directory."""
        if not self._private_directory(create=False):
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
                LOG.warning("session file %s is not private to this user; it is replaced", self.path)
                self.forget()
                return None
            with os.fdopen(fd, "r", closefd=False) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            self.forget()
            return None
        finally:
            os.close(fd)
        if (not isinstance(data, dict) or data.get("format") != FORMAT or data.get("server") != self.netloc
                or data.get("user") != self.user or not isinstance(data.get("cookie"), str) or not data["cookie"]):
            LOG.debug("session file %s is for another server or user; it is replaced", self.path)
            self.forget()
            return None
        version = data.get("api_version")
        return SavedSession(data["cookie"], version if isinstance(version, str) and version else None)

    def save(self, cookie: str, api_version: str | None) -> None:
        """Keep the session for the next launch (best effort: a failure only costs a login later)."""
        if not cookie or not self._private_directory():
            return
        data = {"format": FORMAT, "server": self.netloc, "user": self.user, "cookie": cookie,
                "api_version": api_version}
        try:
            fd, tmp = tempfile.mkstemp(prefix=".session-", dir=self.directory)  # mode 0600
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(data, fh)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as error:
            LOG.warning("cannot save the vSphere session in %s: %s", self.directory, error.strerror or error)

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
