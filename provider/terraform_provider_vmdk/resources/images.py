"""Image files for volumes (Cinder's copy_image_to_volume): where they come from, whether they are what the
configuration says, and how big a disk they hold — all settled before anything is created in vSphere.

The image kinds are Cinder's ``ImageDiskType``: ``streamOptimized`` and ``sparse`` are VMDK files of those
subformats (their header says the disk's capacity), ``preallocated`` is a raw flat extent (whole 512-byte
sectors) and ``thin`` a flat extent to be made thin. A ``source`` is a local path or an http(s) URL, which is
downloaded (streamed) into a temporary file first: the checksum is checked, and the upload to vSphere can be
retried, from a local copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..framework.diagnostics import DiagnosticError
from .disk_types import IMAGE_DISK_TYPES

__all__ = ["IMAGE_DISK_TYPES", "LocalImage", "fetch_image", "image_capacity", "sha256_of", "sparse_header"]

CHUNK = 1 << 20
SECTOR = 512
_HEADER = struct.Struct("<4sIIQQQQIQQQ")  # SparseExtentHeader up to overHead
_COMPRESSED = 1 << 16


@dataclass
class LocalImage:
    """An image file ready to upload: its bytes, its disk's capacity, its checksum."""

    path: Path
    size: int
    capacity: int
    sha256: str
    temporary: bool = False
    _dir: str | None = field(default=None, repr=False)

    def open(self) -> BinaryIO:
        return self.path.open("rb")

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


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


def image_capacity(path: Path, disk_type: str) -> int:
    """The capacity of the disk an image holds; an error on ``image.disk_type`` when the file is not that kind."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(64 * 1024)
    header = sparse_header(head)
    if disk_type in ("streamOptimized", "sparse"):
        want = "streamOptimized" if disk_type == "streamOptimized" else "monolithicSparse"
        if header is None or header[1] != want:
            found = "a raw (flat) file" if header is None else f"a {header[1]} VMDK"
            raise DiagnosticError(
                "The image is not of its disk_type",
                f"image.disk_type is {disk_type!r}, which needs a {want} VMDK, but {path} is {found}. Set "
                "image.disk_type to the image's kind (streamOptimized, sparse, preallocated or thin).",
                "image.disk_type")
        return header[0]
    if header is not None:
        raise DiagnosticError(
            "The image is not of its disk_type",
            f"image.disk_type is {disk_type!r}, a raw flat extent, but {path} is a {header[1]} VMDK. Set "
            f"image.disk_type = \"{'streamOptimized' if header[1] == 'streamOptimized' else 'sparse'}\".",
            "image.disk_type")
    if size == 0 or size % SECTOR:
        raise DiagnosticError(
            "The image is not a whole number of sectors",
            f"A {disk_type} image is a raw flat extent of whole 512-byte sectors; {path} has {size} bytes.",
            "image.source")
    return size


def _download(url: str, directory: str) -> Path:
    import urllib.request  # only for downloads: it costs every provider launch a lot to import

    target = Path(directory) / (Path(urllib.parse.urlsplit(url).path).name or "image")
    try:
        with urllib.request.urlopen(url, timeout=300) as resp, target.open("wb") as out:  # noqa: S310 - http(s) only
            shutil.copyfileobj(resp, out, CHUNK)
    except (OSError, ValueError) as error:
        raise DiagnosticError("Cannot download the image", f"image.source {url}: {error}.", "image.source") from None
    return target


def fetch_image(source: str, disk_type: str, sha256: str | None) -> LocalImage:
    """The image as a local file, checked: it exists, its checksum (when given) matches, it is of its kind."""
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    directory = None
    if scheme in ("http", "https"):
        directory = tempfile.mkdtemp(prefix="vmdk-image-")
        path = _download(source, directory)
    elif scheme in ("", "file"):
        path = Path(urllib.parse.urlsplit(source).path if scheme == "file" else source).expanduser()
        if not path.is_file():
            raise DiagnosticError("Image not found", f"image.source {source!r} is not a readable file (a local "
                                  "path or an http(s) URL).", "image.source")
    else:
        raise DiagnosticError("Unsupported image source", f"image.source {source!r}: use a local path or an "
                              "http(s) URL.", "image.source")
    try:
        with path.open("rb") as fh:
            digest = sha256_of(fh)
        if sha256 and digest.lower() != sha256.strip().lower():
            raise DiagnosticError(
                "Image checksum mismatch",
                f"image.sha256 is {sha256}, but {source} has SHA-256 {digest}. Nothing was created.", "image.sha256")
        capacity = image_capacity(path, disk_type)
    except BaseException:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return LocalImage(path, path.stat().st_size, capacity, digest, directory is not None, directory)


def remove_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def describe(image: dict[str, Any] | None) -> str:
    return "" if not image else f"{image.get('disk_type')} image {image.get('source')}"
