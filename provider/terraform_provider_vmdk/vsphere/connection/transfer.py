"""Moving bytes to and from vSphere over HTTPS: datastore files (``/folder``) and HttpNfcLease device URLs.

http.client, not requests, so that only the session's own SSL context decides trust (REQUESTS_CA_BUNDLE and
friends play no role). Bodies stream in 1 MiB chunks — a 100 GiB disk never sits in memory — and the
thread's budget (timeouts block, Ctrl-C) is checked between chunks. A transfer is retried from its start
when the connection fails or the server answers 503 (a PUT overwrites, a GET is re-read into a fresh sink),
and once after a new login when the session has ended (401/403); ``api_timeout`` bounds every read.

Every transfer carries the vSphere session cookie, a credential, so it goes only where vSphere itself sent
us, and only over HTTPS with the session's TLS settings: to the server we connected to, or to a host the
HttpNfcLease's own ``deviceUrl`` entries name (vCenter names the ESXi host that serves the disk). Anything
else — a plain ``http://`` URL, another host — is refused before a connection is opened (``TransferRefused``);
``device_url`` turns a lease's ``*`` host, or a plain-http URL of the server we connected to, into an HTTPS
URL of that server.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol

from .. import exceptions as exc
from . import budget as _budget


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


__all__ = ["ReadStream", "WriteStream", "CHUNK", "folder_url", "device_url", "lease_hosts", "upload", "download",
           "upload_file", "download_file"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
CHUNK = 1 << 20
PROGRESS_EVERY = 5.0  # seconds between progress log lines / callbacks


def folder_url(session: Any, datacenter_path: str, datastore_name: str, path: str) -> str:
    """Absolute URL of a datastore file (path relative to the datastore root)."""
    quoted = urllib.parse.quote(path.lstrip("/"), safe="/")
    query = urllib.parse.urlencode({"dcPath": datacenter_path, "dsName": datastore_name})
    return f"{session.http_url(f'/folder/{quoted}')}?{query}"


def _host_key(host: str | None) -> str:
    """A host as compared: lower case, no trailing dot or IPv6 brackets, an IP address in one spelling."""
    text = (host or "").strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for messages: an NFC URL's path is the lease's own secret."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.scheme else "a URL without a scheme"


def lease_hosts(urls: Iterable[str]) -> frozenset[str]:
    """The hosts an HttpNfcLease's ``deviceUrl`` entries name (``*``, the server we talk to, is not one)."""
    hosts = set()
    for url in urls:
        try:
            host = urllib.parse.urlsplit(url).hostname
        except ValueError:
            continue
        if host and host != "*":
            hosts.add(_host_key(host))
    return frozenset(hosts)


def device_url(session: Any, url: str) -> str:
    """An HttpNfcLease device URL to transfer with: its ``*`` host becomes the server we talk to, and a plain
    ``http://`` URL of that server becomes HTTPS to it (where it serves the API, so the session's TLS
    settings hold). A plain-http URL of any other host is refused: the session cookie never goes unencrypted,
    and we cannot know that host serves HTTPS."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise exc.TransferRefused("the lease's device URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    ours: str = session.config.netloc
    if scheme in ("http", "https") and (host in ("*", None) or (
            scheme == "http" and _host_key(host) == _host_key(session.config.host))):
        return urllib.parse.urlunsplit(("https", ours, parts.path, parts.query, ""))
    if scheme == "https":
        return url
    raise exc.TransferRefused(
        f"vSphere's lease names {_origin(url)}, which is not HTTPS; the provider sends the vSphere session only "
        f"over HTTPS (to {ours}, or to the hosts the lease names)",
        hint="Check that the ESXi host named in the lease serves NFC over HTTPS (port 443), as vSphere does by "
        "default")


def _check_target(session: Any, url: str, hosts: Collection[str], what: str) -> None:
    """Refuse, before anything is sent, a URL the session cookie must not go to: not HTTPS, or a host that is
    neither the server we connected to nor one of ``hosts`` (those the lease names)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise exc.TransferRefused(f"{what}: the URL is not valid") from None
    if parts.scheme.lower() != "https":
        raise exc.TransferRefused(f"{what}: {_origin(url)} is not HTTPS; the provider sends the vSphere session "
                                  "only over HTTPS")
    allowed = {_host_key(session.config.host), *(_host_key(h) for h in hosts)}
    if not host or _host_key(host) not in allowed:
        raise exc.TransferRefused(f"{what}: {_origin(url)} is neither the vSphere server {session.config.netloc} "
                                  "nor a host vSphere named for this transfer; the session is not sent there")


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


def _connection(session: Any, url: str) -> tuple[http.client.HTTPSConnection, str]:
    """An HTTPS connection for a URL ``_check_target`` accepted (never plain HTTP)."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    timeout = session.config.api_timeout
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
           content_type: str = "application/octet-stream", progress: Callable[[int], None] | None = None,
           hosts: Collection[str] = ()) -> int:
    """Send ``size`` bytes from a fresh ``opener()`` (each attempt starts over); returns the bytes sent.
    ``url`` must be HTTPS to the server we connected to or to one of ``hosts`` (a lease's, ``lease_hosts``);
    anything else is TransferRefused before a connection is opened."""
    _check_target(session, url, hosts, what)

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
             progress: Callable[[int], None] | None = None, hosts: Collection[str] = ()) -> int:
    """Write the body into a fresh ``opener()`` sink (each attempt starts over); returns the bytes written.
    ``url`` and ``hosts`` as for ``upload``."""
    _check_target(session, url, hosts, what)

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
