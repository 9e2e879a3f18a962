"""Local files the provider writes (exports, backups): how they are written, and how the provider proves,
before it removes one, that it is the file it wrote.

A file is written under a staging name of its own beside its path (``.NAME.RANDOM.partial``, so two writers
never share one) and renamed into place when complete; a failure removes that staging file. What a resource
wrote is recorded in its private state: the file's identity (device, inode, size, modification time) and its
SHA-256. Delete removes the file at the path only while it is still that file — for a state written before
identities were recorded, only while it still has the SHA-256 the state records — and leaves anything else
there, with a warning: the provider destroys only what it can prove it made.

A file changed outside Terraform is drift: read puts its checksum in the state, and the plan replaces the
resource, says so (a warning on ``path``) and records which file it announced (``APPROVED``): the replacement's
delete removes that one, as the plan said, and only while it is unchanged since.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..framework.diagnostics import DiagnosticError, Diagnostics
from ..framework.resource import PlanRequest
from ..framework.unknowns import UNKNOWN

__all__ = ["staged", "publish_new", "identity", "same_file", "remove_written", "os_reason", "file_sha256",
           "written_of", "note_written", "changed_outside", "plan_drift_replacement", "verify_written",
           "WRITTEN", "APPROVED"]

# keys of the private state
WRITTEN = "written"  # {"sha256": what the resource wrote, "file": its identity when last verified}
APPROVED = "replace_changed"  # the identity of a changed file a replacement plan announced it would remove

_CHUNK = 1 << 20
_IDENTITY = ("dev", "ino", "size", "mtime_ns")
LOG = logging.getLogger(__name__)

# The files this provider process wrote (path -> identity): Terraform runs one provider process per apply, so
# the destroy of an object that create_before_destroy replaced sees here that the file at its path is its
# replacement's, and leaves it without a warning.
_written_here: dict[str, dict[str, int]] = {}
_written_lock = threading.Lock()


def os_reason(error: OSError) -> str:
    """What went wrong, in words (the system's message, not Python's exception text)."""
    if isinstance(error, FileNotFoundError):
        return "it does not exist"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError):
        return "it is a directory"
    if isinstance(error, NotADirectoryError):
        return "a part of the path is not a directory"
    return (error.strerror or type(error).__name__).lower()


def _new_staging(path: Path) -> Path:
    """Create an empty staging file beside ``path`` that no other writer uses (created exclusively, with the
    permissions a new file gets: 0666 less the umask)."""
    for _ in range(16):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"no free staging name beside {path}")


@contextlib.contextmanager
def staged(path: Path, publish: Callable[[Path, Path], None] = os.replace) -> Iterator[Path]:
    """A staging file beside ``path`` (its directory is created) that becomes ``path`` only when the block
    completes; whatever ends the block early, the staging file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _new_staging(path)
    try:
        yield staging
        publish(staging, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()


def publish_new(staging: Path, path: Path) -> None:
    """Rename ``staging`` to ``path`` unless ``path`` exists (FileExistsError): a hard link, which never
    replaces, where the file system has them; else a check and a rename."""
    try:
        os.link(staging, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network file systems)
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(staging, path)
        return
    staging.unlink()


def identity(path: Path) -> dict[str, int] | None:
    """The identity of the regular file at ``path`` (not following a symlink); None when there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def note_written(path: Path) -> dict[str, int] | None:
    """The identity of the file just written at ``path`` (recorded for this process too)."""
    found = identity(path)
    if found is not None:
        with _written_lock:
            _written_here[str(path)] = found
    return found


def same_file(current: dict[str, int] | None, recorded: Any) -> bool:
    return (current is not None and isinstance(recorded, dict)
            and all(current[key] == recorded.get(key) for key in _IDENTITY))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def written_of(private: dict[str, Any]) -> dict[str, Any]:
    written = private.get(WRITTEN)
    return written if isinstance(written, dict) else {}


def remove_written(path: Path, private: dict[str, Any], sha256: str | None, diags: Diagnostics, what: str) -> bool:
    """Remove the file at ``path`` if it is the one ``what`` wrote: its identity as last verified (private
    state), or the changed file a replacement plan announced (``APPROVED``), or — when no identity was ever
    recorded (a state from before they were) — a file with the SHA-256 it wrote (``sha256``: the state's, when
    the private state has none). Anything else is left where it is, with a warning. True when no file of ours
    is left at ``path``."""
    current = identity(path)
    if current is None:
        if not os.path.lexists(path):
            return True  # already gone
        ours = False  # a directory, a symlink, a device: never something this resource wrote
    else:
        written = written_of(private)
        if "file" in written:
            ours = same_file(current, written["file"])
        else:
            wrote = written.get("sha256") or sha256
            ours = bool(wrote) and _sha_matches(path, str(wrote))
        ours = ours or same_file(current, private.get(APPROVED))
    if not ours and current is not None:
        with _written_lock:
            replacement = same_file(current, _written_here.get(str(path)))
        if replacement:
            LOG.info("%s is the file of the %s that replaced this one: left in place", path, what)
            return False
    if not ours:
        diags.warning(
            "File left in place",
            f"{path} is not the file this {what} wrote: it was changed or replaced outside Terraform (or another "
            "resource wrote it) since, so destroy did not remove it. Remove it yourself if it is not needed.",
            "path")
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        raise DiagnosticError(f"Cannot remove {path.name}", f"{path} could not be removed ({os_reason(error)}); "
                              f"the {what} stays in the state. Fix that and run terraform destroy again.") from None
    return True


def _sha_matches(path: Path, sha256: str) -> bool:
    try:
        return file_sha256(path) == sha256
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- drift
def changed_outside(prior: dict[str, Any], private: dict[str, Any]) -> str | None:
    """The SHA-256 this resource wrote when the refreshed state says its file now has another (drift)."""
    wrote = written_of(private).get("sha256")
    return wrote if wrote and prior.get("sha256") != wrote else None


def plan_drift_replacement(req: PlanRequest, path: Path, what: str, computed: tuple[str, ...]) -> None:
    """A file changed outside Terraform: plan its replacement (on ``sha256``), say so on ``path``, and
    record which file the plan announced it replaces (delete removes that one, and only while unchanged)."""
    if req.prior is None:
        return  # a create (also the create half of a replacement: what the first half planned is kept)
    prior, plan = req.prior, req.plan
    wrote = changed_outside(prior, req.private) if plan is not None else None
    if plan is None or wrote is None:
        req.private.pop(APPROVED, None)  # a destroy removes only what was written, never a changed file
        return
    now = prior.get("sha256")
    req.requires_replace.add("sha256")
    for name in computed:
        plan[name] = UNKNOWN
    found = identity(path)
    if found is not None:
        req.private[APPROVED] = found
    req.diagnostics.warning(
        f"The {what} changed outside Terraform",
        f"{path} no longer holds what this {what} wrote (SHA-256 {wrote}); it "
        + (f"now has SHA-256 {now}" if now else "is gone") + f". Apply replaces the {what}: the changed file "
        f"goes, and the {what} is written again.", "path")


def verify_written(path: Path, state: dict[str, Any], private: dict[str, Any], diags: Diagnostics,
                   what: str) -> str | None:
    """Read the file at ``path``: its SHA-256 (None when it cannot be read: a warning, the state is kept).
    When it is what this resource wrote, its identity is recorded again (private state)."""
    written = dict(written_of(private))
    written.setdefault("sha256", state.get("sha256"))  # a state from before private records
    try:
        digest = file_sha256(path)
    except OSError as error:
        diags.warning(f"Cannot read the {what}", f"{path} could not be read ({os_reason(error)}), so whether it "
                      "is still what Terraform wrote is not known; the state is kept as it was.")
        return None
    if digest == written["sha256"]:
        found = identity(path)
        if found is not None:
            written["file"] = found
    private[WRITTEN] = written
    return digest
