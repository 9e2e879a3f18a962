"""Moving bytes to and from vSphere over HTTPS: datastore files (``/folder``) and HttpNfcLease device URLs.

http.client, not requests, so that only the session's own SSL context decides trust (REQUESTS_CA_BUNDLE and
friends play no role). Bodies stream in 1 MiB chunks — a 100 GiB disk never sits in memory — and the
thread's budget (timeouts block, Ctrl-C) is checked between chunks. A transfer is retried from its start
when the connection fails or the server answers 503 (a PUT overwrites, a GET is re-read into a fresh sink),
and once after a new login when the session has ended (401/403); ``api_timeout`` bounds every read.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Protocol

from . import budget as _budget
from . import exceptions as exc


class ReadStream(Protocol):
    """What an upload reads from: a file opened for reading, or anything that reads like one."""

    def read(self, n: int = -1, /) -> bytes: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None,
                 /) -> Any: ...


class WriteStream(Protocol):
    """What a download writes to: a file opened for writing, or anything that writes like one."""

    def write(self, data: bytes, /) -> int: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None,
                 /) -> Any: ...


__all__ = ["ReadStream", "WriteStream", "CHUNK", "folder_url", "device_url", "upload", "download", "upload_file",
           "download_file"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
CHUNK = 1 << 20
PROGRESS_EVERY = 5.0  # seconds between progress log lines / callbacks


def folder_url(session: Any, datacenter_path: str, datastore_name: str, path: str) -> str:
    """Absolute URL of a datastore file (path relative to the datastore root)."""
    quoted = urllib.parse.quote(path.lstrip("/"), safe="/")
    query = urllib.parse.urlencode({"dcPath": datacenter_path, "dsName": datastore_name})
    return f"{session.http_url(f'/folder/{quoted}')}?{query}"


def device_url(session: Any, url: str) -> str:
    """An HttpNfcLease device URL with its ``*`` host replaced by the server we talk to."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname in ("*", None):
        netloc: str = session.config.netloc
        return urllib.parse.urlunsplit(("https", netloc, parts.path, parts.query, ""))
    return url


class _Progress:
    """Logs (and reports) how far a transfer got, every PROGRESS_EVERY seconds."""

    def __init__(self, what: str, total: int | None, report: Callable[[int], None] | None) -> None:
        self.what, self.total, self.report = what, total, report
        self.done = 0
        self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            share = f" ({100 * self.done // self.total}%)" if self.total else ""
            LOG.info("%s: %d MiB%s", self.what, self.done >> 20, share)
            if self.report is not None:
                self.report(self.done)


def _connection(session: Any, url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    timeout = session.config.api_timeout
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout), target
    return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                       context=session.ssl_context), target


def _chunks(stream: ReadStream) -> Iterator[bytes]:
    while True:
        block = stream.read(CHUNK)
        if not block:
            return
        yield block


class _Retry(Exception):
    """This attempt failed in a way that another attempt may not."""


def _check(resp: http.client.HTTPResponse, what: str, generation: int, session: Any) -> None:
    if resp.status in (200, 201, 204):
        return
    body = resp.read(2048).decode("utf-8", "replace").strip()[:200]
    if resp.status in (401, 403):
        session.renew_login(generation)
        raise _Retry(f"HTTP {resp.status}: the session ended")
    if resp.status == 404:
        raise exc.NotFound(f"{what}: not found")
    if resp.status in (502, 503, 504):
        raise _Retry(f"HTTP {resp.status} {resp.reason}")
    raise exc.VMwareDriverError(f"{what}: HTTP {resp.status} {resp.reason} {body}".rstrip())


def _attempts(session: Any, what: str, attempt: Callable[[int], int]) -> int:
    """Run ``attempt(generation)`` until it succeeds, with backoff, ``api_retry_count`` retries at most."""
    allowance = _budget.current()
    tries = 0
    while True:
        allowance.check()
        generation = session.generation
        try:
            return attempt(generation)
        except ssl.SSLCertVerificationError:
            raise
        except (_Retry, OSError, http.client.HTTPException) as error:
            tries += 1
            if tries > session.config.api_retry_count:
                raise exc.VMwareDriverError(f"{what}: the transfer kept failing ({error}); gave up after "
                                            f"{tries} attempts") from None
            delay = min(10.0, 0.2 * 2 ** (tries - 1)) * (0.5 + random.random() / 2)
            LOG.warning("%s failed (%s); retrying from the start in %.1f s", what, error, delay)
            allowance.sleep(delay)


def upload(session: Any, url: str, opener: Callable[[], ReadStream], size: int, *, what: str, method: str = "PUT",
           content_type: str = "application/octet-stream", progress: Callable[[int], None] | None = None) -> int:
    """Send ``size`` bytes from a fresh ``opener()`` (each attempt starts over); returns the bytes sent."""

    def attempt(generation: int) -> int:
        conn, target = _connection(session, url)
        meter = _Progress(what, size, progress)
        allowance = _budget.current()
        try:
            with opener() as stream:
                conn.putrequest(method, target)
                headers = {"Content-Type": content_type, "Content-Length": str(size)}
                cookie = session.session_cookie()
                if cookie:
                    headers["Cookie"] = cookie
                for key, value in headers.items():
                    conn.putheader(key, value)
                conn.endheaders()
                for block in _chunks(stream):
                    allowance.check()
                    conn.send(block)
                    meter.add(len(block))
            resp = conn.getresponse()
            _check(resp, what, generation, session)
            resp.read()
            return meter.done
        finally:
            conn.close()

    return _attempts(session, what, attempt)


def download(session: Any, url: str, opener: Callable[[], WriteStream], *, what: str,
             progress: Callable[[int], None] | None = None) -> int:
    """Write the body into a fresh ``opener()`` sink (each attempt starts over); returns the bytes written."""

    def attempt(generation: int) -> int:
        conn, target = _connection(session, url)
        allowance = _budget.current()
        try:
            cookie = session.session_cookie()
            conn.request("GET", target, headers={"Cookie": cookie} if cookie else {})
            resp = conn.getresponse()
            _check(resp, what, generation, session)
            length = resp.getheader("Content-Length")
            meter = _Progress(what, int(length) if length and length.isdigit() else None, progress)
            with opener() as sink:
                while True:
                    allowance.check()
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    sink.write(block)
                    meter.add(len(block))
            return meter.done
        finally:
            conn.close()

    return _attempts(session, what, attempt)


# ---------------------------------------------------------------------------------------------- files
def upload_file(session: Any, datacenter_path: str, datastore_name: str, path: str,
                opener: Callable[[], ReadStream], size: int) -> int:
    """PUT a file onto a datastore; returns the bytes sent."""
    url = folder_url(session, datacenter_path, datastore_name, path)
    return upload(session, url, opener, size, what=f"upload of [{datastore_name}] {path}")


def download_file(session: Any, datacenter_path: str, datastore_name: str, path: str,
                  opener: Callable[[], WriteStream]) -> int:
    """GET a datastore file into ``opener()``; returns the bytes written."""
    url = folder_url(session, datacenter_path, datastore_name, path)
    return download(session, url, opener, what=f"download of [{datastore_name}] {path}")
