"""Datastore file transfer over vSphere's HTTPS ``/folder`` interface.

``/folder/<path>?dcPath=<datacenter>&dsName=<datastore>`` with the SOAP session
cookie.  http.client (not requests) so that only the session's own SSL context
decides trust: REQUESTS_CA_BUNDLE and friends play no role.  Bodies stream in
chunks, so large VMDK extents never sit in memory.
"""

from __future__ import annotations

import http.client
import io
import os
import urllib.parse
from collections.abc import Iterator
from typing import Any, BinaryIO

from . import exceptions as exc

CHUNK = 1 << 20


def folder_url(session: Any, datacenter_path: str, datastore_name: str, path: str) -> str:
    """Absolute URL of a datastore file (path relative to the datastore root)."""
    quoted = urllib.parse.quote(path.lstrip("/"), safe="/")
    query = urllib.parse.urlencode({"dcPath": datacenter_path, "dsName": datastore_name})
    http_url = getattr(session, "http_url", None)
    base = http_url(f"/folder/{quoted}") if http_url is not None else f"https://{session.config.server}/folder/{quoted}"
    return f"{base}{'&' if '?' in base else '?'}{query}"


def _connection(session: Any, url: str, timeout: float | None) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname
    if host is None:  # folder_url always names the server
        raise ValueError(f"no host in datastore URL {url!r}")
    if parts.scheme == "http":
        return http.client.HTTPConnection(host, parts.port, timeout=timeout), target
    context = getattr(session, "ssl_context", None)
    return http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=context), target


def _headers(session: Any) -> dict[str, str]:
    cookie = session.session_cookie()
    return {"Cookie": cookie} if cookie else {}


def _fail(resp: http.client.HTTPResponse, what: str) -> None:
    body = resp.read(2048).decode("utf-8", "replace")
    if resp.status == 404:
        raise exc.NotFound(f"{what}: not found")
    raise exc.VMwareDriverError(f"{what}: HTTP {resp.status} {resp.reason} {body.strip()[:200]}")


def _length(data: bytes | BinaryIO, size: int | None) -> int:
    if size is not None:
        return size
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    try:
        return os.fstat(data.fileno()).st_size - data.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        pos = data.tell()
        end = data.seek(0, io.SEEK_END)
        data.seek(pos)
        return end - pos


def _chunks(data: bytes | BinaryIO) -> Iterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            yield bytes(view[i : i + CHUNK])
        return
    while True:
        block = data.read(CHUNK)
        if not block:
            return
        yield block


def upload_file(
    session: Any,
    datacenter_path: str,
    datastore_name: str,
    path: str,
    data: bytes | BinaryIO,
    *,
    size: int | None = None,
    timeout: float | None = None,
) -> int:
    """HTTP PUT a file onto a datastore; returns the bytes sent."""
    url = folder_url(session, datacenter_path, datastore_name, path)
    length = _length(data, size)
    conn, target = _connection(session, url, timeout)
    try:
        conn.putrequest("PUT", target)
        for k, v in {**_headers(session), "Content-Type": "application/octet-stream",
                     "Content-Length": str(length)}.items():
            conn.putheader(k, v)
        conn.endheaders()
        sent = 0
        for block in _chunks(data):
            conn.send(block)
            sent += len(block)
        resp = conn.getresponse()
        if resp.status not in (200, 201, 204):
            _fail(resp, f"upload of [{datastore_name}] {path}")
        resp.read()
        return sent
    finally:
        conn.close()


def download_file(
    session: Any,
    datacenter_path: str,
    datastore_name: str,
    path: str,
    dest: BinaryIO | None = None,
    *,
    timeout: float | None = None,
) -> bytes | int:
    """HTTP GET a datastore file: the bytes, or the byte count written to ``dest``."""
    url = folder_url(session, datacenter_path, datastore_name, path)
    conn, target = _connection(session, url, timeout)
    try:
        conn.request("GET", target, headers=_headers(session))
        resp = conn.getresponse()
        if resp.status != 200:
            _fail(resp, f"download of [{datastore_name}] {path}")
        if dest is None:
            return resp.read()
        total = 0
        while True:
            block = resp.read(CHUNK)
            if not block:
                return total
            dest.write(block)
            total += len(block)
    finally:
        conn.close()
