"""Image files for volumes (Cinder's copy_image_to_volume): where they come from, whether they are what the
configuration says, and how big a disk they hold — all settled before anything is created in vSphere.

The image kinds are Cinder's ``ImageDiskType``: ``streamOptimized`` and ``sparse`` are VMDK files of those
subformats (their header says the disk's capacity), ``preallocated`` is a raw flat extent (whole 512-byte
sectors) and ``thin`` a flat extent to be made thin. A ``source`` is a local path or an http(s) URL.

A local file is opened once: the bytes checked are the bytes uploaded, even if the path is replaced meanwhile.
A URL is downloaded (streamed, hashed on the way) into an unnamed temporary file in the system's temporary
directory (``TMPDIR``): a failed, cancelled or killed download never leaves a file behind, and the upload to
vSphere can be retried from it. Redirects are followed within a scheme, or from http up to https, never from
https down to http nor to any other scheme; a body shorter than its Content-Length is an error.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..framework.diagnostics import DiagnosticError
from .disk_types import IMAGE_DISK_TYPES
from .localfiles import os_reason

__all__ = ["IMAGE_DISK_TYPES", "LocalImage", "fetch_image", "image_capacity", "sha256_of", "sparse_header",
           "redirect_allowed", "open_local"]

CHUNK = 1 << 20
SECTOR = 512
HEAD = 64 * 1024  # what the kind of an image is decided from
DOWNLOAD_TIMEOUT = 300  # seconds a download may wait for the server at any one point
_HEADER = struct.Struct("<4sIIQQQQIQQQ")  # SparseExtentHeader up to overHead
_COMPRESSED = 1 << 16


@dataclass
class LocalImage:
    """An image ready to upload: an open file (a download's is an unnamed temporary file), its size, its
    disk's capacity, its checksum. ``open()`` gives a fresh reader of those ``size`` bytes each time (an upload
    attempt starts over); ``close()`` releases the file (a download's is gone with it)."""

    name: str
    size: int
    capacity: int
    sha256: str
    file: BinaryIO = field(repr=False)

    @property
    def label(self) -> str:
        """The file's name (for progress and messages): the last part of its path or URL path."""
        return Path(urllib.parse.urlsplit(self.name).path if "://" in self.name else self.name).name or "image"

    def open(self) -> BinaryIO:
        return io.BufferedReader(_Reader(self.file, self.size), CHUNK)

    def close(self) -> None:
        self.file.close()


class _Reader(io.RawIOBase):
    """Reads the first ``size`` bytes of an open file at its own offset (the file's is never moved)."""

    _lock = threading.Lock()  # only where os.pread is missing

    def __init__(self, file: BinaryIO, size: int) -> None:
        super().__init__()
        self._file, self._size, self._pos = file, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        if hasattr(os, "pread"):
            data = os.pread(self._file.fileno(), want, self._pos)
        else:  # pragma: no cover - Windows
            with self._lock:
                self._file.seek(self._pos)
                data = self._file.read(want)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def sha256_of(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def sparse_header(head: bytes) -> tuple[int, str] | None:
    """(capacity in bytes, createType) of a hosted sparse VMDK's first bytes, None when not one."""
    if len(head) < _HEADER.size or head[:4] != b"KDMV":
        return None
    _, _, flags, capacity, _, desc_offset, desc_size, *_ = _HEADER.unpack_from(head)
    create_type = ""
    if desc_offset and desc_size:
        text = head[desc_offset * SECTOR:(desc_offset + desc_size) * SECTOR].decode("ascii", "replace")
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "createType":
                create_type = value.strip().strip('"')
    if not create_type:
        create_type = "streamOptimized" if flags & _COMPRESSED else "monolithicSparse"
    return capacity * SECTOR, create_type


def image_capacity(head: bytes, size: int, disk_type: str, name: str) -> int:
    """The capacity of the disk an image holds, from its first bytes (``head``) and its size; an error on
    ``image.disk_type`` when the image (``name``, for messages) is not of that kind."""
    header = sparse_header(head)
    if disk_type in ("streamOptimized", "sparse"):
        want = "streamOptimized" if disk_type == "streamOptimized" else "monolithicSparse"
        if header is None or header[1] != want:
            found = "a raw (flat) file" if header is None else f"a {header[1]} VMDK"
            raise DiagnosticError(
                "The image is not of its disk_type",
                f"image.disk_type is {disk_type!r}, which needs a {want} VMDK, but {name} is {found}. Set "
                "image.disk_type to the image's kind (streamOptimized, sparse, preallocated or thin).",
                "image.disk_type")
        return header[0]
    if header is not None:
        raise DiagnosticError(
            "The image is not of its disk_type",
            f"image.disk_type is {disk_type!r}, a raw flat extent, but {name} is a {header[1]} VMDK. Set "
            f"image.disk_type = \"{'streamOptimized' if header[1] == 'streamOptimized' else 'sparse'}\".",
            "image.disk_type")
    if size == 0 or size % SECTOR:
        raise DiagnosticError(
            "The image is not a whole number of sectors",
            f"A {disk_type} image is a raw flat extent of whole 512-byte sectors; {name} has {size} bytes.",
            "image.source")
    return size


def scan(file: BinaryIO) -> tuple[int, str, bytes]:
    """(size, SHA-256, first bytes) of an open file, read to its end (stops when the operation is cancelled)."""
    from ..vsphere.connection import budget

    allowance = budget.current()
    digest, head, size = hashlib.sha256(), bytearray(), 0
    for block in iter(lambda: file.read(CHUNK), b""):
        allowance.check()
        digest.update(block)
        size += len(block)
        if len(head) < HEAD:
            head += block[:HEAD - len(head)]
    return size, digest.hexdigest(), bytes(head)


def open_local(path: Path, source: str, attribute: str = "image.source") -> BinaryIO:
    """A local image file, open for reading; an error on ``attribute`` when it is none."""
    import stat

    try:
        file = path.open("rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise DiagnosticError("Image not found", f"{attribute} {source!r} is not a readable file (a local path or "
                              "an http(s) URL).", attribute) from None
    except OSError as error:
        raise DiagnosticError("Cannot read the image", f"{attribute} {source!r}: {os_reason(error)}.",
                              attribute) from None
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        raise DiagnosticError("Image not found", f"{attribute} {source!r} is not a readable file (a local path or "
                              "an http(s) URL).", attribute)
    return file


# ---------------------------------------------------------------------------------------------- downloads
def redirect_allowed(source: str, target: str) -> bool:
    """A download follows a redirect within its scheme (http or https) or from http up to https: never from
    https down to http (the image would travel unauthenticated, in the clear), nor to any other scheme."""
    old, new = urllib.parse.urlsplit(source).scheme.lower(), urllib.parse.urlsplit(target).scheme.lower()
    return new in ("http", "https") and (new == old or (old, new) == ("http", "https"))


class _RedirectRefused(Exception):
    def __init__(self, source: str, target: str) -> None:
        super().__init__(target)
        self.source, self.target = source, target


def _redirect_handler() -> Any:
    import urllib.request  # only for downloads: it costs every provider launch a lot to import

    class Redirects(urllib.request.HTTPRedirectHandler):
        def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
            location = headers.get("location") or headers.get("uri")
            if location:
                target = urllib.parse.urljoin(req.full_url, location)
                if not redirect_allowed(req.full_url, target):
                    fp.close()
                    raise _RedirectRefused(req.full_url, target)
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    return Redirects()


class _LocalWriteError(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _network_reason(error: BaseException | str) -> str:
    """Why a download failed, in words (never Python's exception text)."""
    import http.client
    import socket
    import ssl

    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate could not be verified ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"the TLS connection failed ({error.reason or 'no details'})"
    if isinstance(error, TimeoutError):
        return f"the server sent nothing for {DOWNLOAD_TIMEOUT} s"
    if isinstance(error, socket.gaierror):
        return "its host name could not be resolved"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(error, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return "the connection was reset"
    if isinstance(error, http.client.HTTPException):
        return "the server's answer was not valid HTTP"
    if isinstance(error, OSError):
        return os_reason(error)
    if isinstance(error, str):
        return error  # urllib's reason for a URL it cannot use ("no host given")
    return "the download failed"


def _failed(url: str, why: str, summary: str = "Cannot download the image") -> DiagnosticError:
    return DiagnosticError(summary, f"image.source {url}: {why}. Nothing was created.", "image.source")


def _content_length(headers: Any) -> int | None:
    value = (headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def download(url: str, out: BinaryIO) -> tuple[int, str, bytes]:
    """Download ``url`` into ``out``: (size, SHA-256, first bytes). Every failure is an error on
    ``image.source`` that says what happened; a cancelled operation (StopProvider, the timeouts block) stops
    at the next chunk."""
    import http.client
    import urllib.error
    import urllib.request

    from ..vsphere.connection import budget

    allowance = budget.current()
    digest, head, received, expected = hashlib.sha256(), bytearray(), 0, None
    opener = urllib.request.build_opener(_redirect_handler())
    try:
        with opener.open(url, timeout=DOWNLOAD_TIMEOUT) as resp:  # noqa: S310 - http(s) only, checked above
            expected = _content_length(resp.headers)
            while True:
                allowance.check()
                block = resp.read(CHUNK)
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as error:
                    raise _LocalWriteError(error) from None
                digest.update(block)
                received += len(block)
                if len(head) < HEAD:
                    head += block[:HEAD - len(head)]
    except _RedirectRefused as refused:
        raise DiagnosticError(
            "Image download redirected off https" if refused.source.lower().startswith("https:")
            else "Image download redirected to another scheme",
            f"image.source {url}: the server redirected the download from {_shown(refused.source)} to "
            f"{_shown(refused.target)}. Redirects are followed within http or https, or from http up to https, "
            "never from https down to http (the image would travel unauthenticated) nor to another scheme. "
            "Point image.source at the image's own http(s) location. Nothing was created.", "image.source") from None
    except _LocalWriteError as failed:
        raise DiagnosticError(
            "Cannot store the downloaded image",
            f"image.source {url}: writing the download to the temporary directory {tempfile.gettempdir()} failed "
            f"after {received} bytes ({os_reason(failed.error)}). Set TMPDIR for Terraform to a directory with "
            "room for the image. Nothing was created.", "image.source") from None
    except urllib.error.HTTPError as error:
        raise _failed(url, f"the server answered HTTP {error.code} {error.reason}".rstrip()) from None
    except http.client.IncompleteRead as error:
        got = received + len(error.partial)
        raise _failed(url, f"the download ended after {got} bytes, before the end of the body the server "
                      "announced", "Image download incomplete") from None
    except urllib.error.URLError as error:
        raise _failed(url, _network_reason(error.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        why = _network_reason(error)
        raise _failed(url, f"{why}, after {received} bytes" if received else why) from None
    if expected is not None and received != expected:
        raise _failed(url, f"the download ended after {received} of {expected} bytes (the server's "
                      "Content-Length)", "Image download incomplete")
    return received, digest.hexdigest(), bytes(head)


def _shown(url: str) -> str:
    """A URL for a message: scheme, host and path (a query may hold a signed token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def fetch_image(source: str, disk_type: str, sha256: str | None) -> LocalImage:
    """The image as an open file, checked: it exists, its checksum (when given) matches, it is of its kind.
    Whatever fails, nothing is left behind (a download's file has no name and is closed)."""
    parts = urllib.parse.urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        name = source
        file: BinaryIO = tempfile.TemporaryFile(prefix="vmdk-image-")  # noqa: SIM115 - closed below or by close()
        try:
            size, digest, head = download(source, file)
        except BaseException:
            file.close()
            raise
    elif scheme in ("", "file"):
        path = Path(parts.path if scheme == "file" else source).expanduser()
        name = str(path)
        file = open_local(path, source)
        try:
            size, digest, head = scan(file)
        except BaseException:
            file.close()
            raise
    else:
        raise DiagnosticError("Unsupported image source", f"image.source {source!r}: use a local path or an "
                              "http(s) URL.", "image.source")
    try:
        if sha256 and digest.lower() != sha256.strip().lower():
            raise DiagnosticError(
                "Image checksum mismatch",
                f"image.sha256 is {sha256}, but {source} has SHA-256 {digest}. Nothing was created.", "image.sha256")
        capacity = image_capacity(head, size, disk_type, name)
    except BaseException:
        file.close()
        raise
    return LocalImage(name, size, capacity, digest, file)


def remove_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def describe(image: dict[str, Any] | None) -> str:
    return "" if not image else f"{image.get('disk_type')} image {image.get('source')}"
