"""Shared pieces of scripts/bench_refresh.py and scripts/bench_apply.py.

How round trips are counted: a small TLS-terminating reverse proxy (``CountingProxy``) sits in front of
vcsim and counts every HTTP request that reaches the server, by SOAP method. It sees all traffic of
every process Terraform starts (Terraform launches the provider several times per command, each with
its own login), so the number is what the server experienced, not what one process believes it sent.
The raw pyvmomi scripts go through the same proxy. Wall times are measured in separate runs *without*
the proxy, so its overhead never inflates them.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "provider"))
sys.path.insert(0, str(REPO / "scripts"))

_METHOD = re.compile(rb"<(?:soapenv:)?Body[^>]*>\s*<(?:\w+:)?(\w+)")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}


class CountingProxy:
    """HTTPS on 127.0.0.1 → the simulator; counts requests (by SOAP method) while ``counting`` is set."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        tls = Path(sim.workdir) / "tls"
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(tls / "server.pem", tls / "server-key.pem")  # valid for 127.0.0.1
        upstream_ctx = ssl.create_default_context(cafile=sim.ca_file)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _upstream(self) -> http.client.HTTPSConnection:
                conn = getattr(self, "_conn", None)
                if conn is None:
                    conn = http.client.HTTPSConnection(sim.host, sim.port, context=upstream_ctx, timeout=120)
                    self._conn = conn
                return conn

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                m = _METHOD.search(body[:2000]) if body else None
                key = m.group(1).decode() if m else f"{self.command} {self.path.split('?')[0]}"
                proxy._count(key)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                for attempt in (1, 2):
                    conn = self._upstream()
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (http.client.HTTPException, OSError):
                        conn.close()
                        self._conn = None
                        if attempt == 2:
                            raise
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward  # noqa: N815

        self.counting = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = server_ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="counting-proxy", daemon=True)
        self.thread.start()

    @property
    def server_address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def _count(self, key: str) -> None:
        if self.counting:
            with self._lock:
                self.counts[key] += 1

    def measure(self) -> _Measure:
        return _Measure(self)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Measure:
    def __init__(self, proxy: CountingProxy) -> None:
        self.proxy = proxy
        self.counts: Counter[str] = Counter()

    def __enter__(self) -> _Measure:
        with self.proxy._lock:
            self.proxy.counts.clear()
            self.proxy.counting = True
        return self

    def __exit__(self, *exc: object) -> None:
        with self.proxy._lock:
            self.proxy.counting = False
            self.counts = Counter(self.proxy.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def top(self, n: int = 6) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.counts.most_common(n))


class Lab:
    """vcsim + counting proxy + a temporary HOME with the provider launcher + a terraform working dir."""

    def __init__(self, terraform: str | None = None, keep: bool = False) -> None:
        from demo import find_terraform

        from tests.vcsim.harness import start_vcsim

        self.keep = keep
        self.work = Path(tempfile.mkdtemp(prefix="vmdk-bench-"))
        self.terraform = find_terraform(terraform)
        self.sim = start_vcsim(self.work)
        self.proxy = CountingProxy(self.sim)
        home = self.work / "home"
        home.mkdir()
        subprocess.run([sys.executable, "-m", "terraform_provider_vmdk", "install"], check=True,
                       capture_output=True, env=dict(os.environ, HOME=str(home)))
        self.config = self.work / "config"
        self.config.mkdir()
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("TF_", "VSPHERE_"))}
        base.update(HOME=str(home), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_CLI_CONFIG_FILE=os.devnull,
                    VSPHERE_USER=self.sim.user, VSPHERE_PASSWORD=self.sim.password,
                    VSPHERE_CA_FILE=self.sim.ca_file or "")
        self.base_env = base

    def version(self) -> str:
        return subprocess.run([self.terraform, "version"], capture_output=True, text=True,
                              env=self.base_env).stdout.splitlines()[0]

    def env(self, via_proxy: bool) -> dict[str, str]:
        server = self.proxy.server_address if via_proxy else self.sim.server
        return dict(self.base_env, VSPHERE_SERVER=server)

    def connection(self, via_proxy: bool) -> Any:
        from terraform_provider_vmdk.vsphere.connection.config import ConnectionConfig

        server = self.proxy.server_address if via_proxy else self.sim.server
        return ConnectionConfig(server=server, user=self.sim.user, password=self.sim.password,
                                ca_file=self.sim.ca_file)

    def tf(self, *args: str, via_proxy: bool = False, timeout: float = 900, check: bool = True
           ) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.terraform, *args], cwd=self.config, env=self.env(via_proxy),
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode not in (0,):
            raise RuntimeError(f"terraform {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def timed_tf(self, *args: str, via_proxy: bool = False) -> tuple[float, subprocess.CompletedProcess]:
        t0 = time.perf_counter()
        proc = self.tf(*args, via_proxy=via_proxy)
        return time.perf_counter() - t0, proc

    def write(self, name: str, text: str) -> None:
        (self.config / name).write_text(text)

    def close(self) -> None:
        self.proxy.close()
        self.sim.stop()
        if self.keep:
            print(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


PROVIDER_TF = """\
terraform {
  required_providers {
    vmdk = { source = "pyvmdk/vmdk" }
  }
}

provider "vmdk" {
  datacenter = "DC0"
}
"""


def raw_connect(config: Any) -> Any:
    """A plain pyVmomi connection (SmartConnect), verifying TLS against the simulator's CA."""
    from pyVim.connect import SmartConnect

    ctx = ssl.create_default_context(cafile=config.ca_file)
    host, _, port = config.server.partition(":")
    return SmartConnect(host=host, port=int(port or 443), user=config.user, pwd=config.password, sslContext=ctx)


def raw_wait(task: Any, poll: float) -> Any:
    """Poll a task's info (what a simple script does): one round trip per poll."""
    while True:
        info = task.info
        if info.state == "success":
            return info.result
        if info.state == "error":
            raise RuntimeError(info.error.msg if info.error else "task failed")
        time.sleep(poll)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(title: str, rows: list[tuple[str, float, int | None, str]]) -> None:
    print(f"\n{title}")
    print(f"  {'':<46} {'wall s':>8} {'requests':>9}")
    for label, seconds, requests, note in rows:
        req = "" if requests is None else str(requests)
        print(f"  {label:<46} {seconds:>8.2f} {req:>9}  {note}")


def dump_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))
