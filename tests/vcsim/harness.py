"""Build and run the vcsim simulator of ``tests/vcsim/main.go`` for tests and demos.

    from tests.vcsim.harness import start_vcsim
    sim = start_vcsim()           # HTTPS on 127.0.0.1, a fresh CA, fixed credentials
    ...  sim.server, sim.user, sim.password, sim.ca_file, sim.datacenter
    sim.stop()                    # SIGTERM (vcsim removes its datastore folders), then our temp folder

    start_vcsim(stock=True)       # govmomi's default VPX inventory, as a stock vcsim serves it
    start_vcsim(esx=True)         # a standalone ESXi host: ha-datacenter, datastore1/datastore2, fidelity layer
    start_vcsim(untagged=True)    # govmomi's VPX model as simulator.VPX() embedded in Go serves it (no tags)
    start_vcsim(mode="esx")       # the same by name: one of MODES

The simulator's model, its fidelity layer and the test endpoints are documented at the top of main.go.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import fcntl
import ipaddress
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MAIN_GO = HERE / "main.go"
GO_SOURCES = "*.go"  # every Go file of the main package in tests/vcsim
BINARY = HERE / "bin" / "vcsim"
GOPATH = Path("/usr/share/gocode")
GOVMOMI_SRC = GOPATH / "src" / "github.com" / "vmware" / "govmomi" / "simulator"

USER = "vmdk"
PASSWORD = "vmdk-Secr3t!pw"
DATACENTER = "DC0"
ESX_DATACENTER = "ha-datacenter"
ESX_DATASTORES = ("datastore1", "datastore2")  # VMFS, on the one host (-esx); vcsim's LocalDS_0 (OTHER) too
# Datastore clusters (StoragePods) of our vCenter model and their member datastores (main.go's table):
# pod-gold (Storage DRS on, automated), pod-silver (on, manual), pod-off (Storage DRS disabled).
PODS: dict[str, tuple[str, ...]] = {
    "pod-gold": ("gold-1", "gold-2", "gold-3"),
    "pod-silver": ("silver-1", "silver-2"),
    "pod-off": ("off-1", "off-2"),
}
POD_MEMBERS = frozenset(ds for members in PODS.values() for ds in members)
# Each member's capacity and free space at start (GiB) and the hosts that mount it (sdrs.go ourPods).
POD_MEMBER_TABLE: dict[str, tuple[int, int, frozenset[str]]] = {
    "gold-1": (1000, 400, frozenset({"DC0_C0_H1", "DC0_C0_H2"})),
    "gold-2": (900, 280, frozenset({"DC0_C0_H1", "DC0_C0_H2"})),
    "gold-3": (500, 180, frozenset({"DC0_C0_H2"})),
    "silver-1": (1200, 600, frozenset({"DC0_C0_H1", "DC0_C0_H2"})),
    "silver-2": (600, 160, frozenset({"DC0_C0_H1", "DC0_C0_H2"})),
    "off-1": (700, 256, frozenset({"DC0_C0_H1", "DC0_C0_H2"})),
    "off-2": (800, 200, frozenset({"DC0_C0_H1", "DC0_C0_H2"})),
}

# The simulator's modes by name: the keyword arguments of start_vcsim each stands for.
MODES: dict[str, dict[str, bool]] = {
    "vcenter": {},                                   # our vCenter model with the fidelity layer (default)
    "esx": {"esx": True},                            # a standalone ESXi host with the fidelity layer
    "stock": {"stock": True},                        # govmomi's VPX model as the vcsim command serves it
    "stock-esx": {"stock": True, "esx": True},       # govmomi's ESX model as `vcsim -esx` serves it
    "untagged": {"untagged": True},                  # govmomi's VPX model as embedded in a Go program
    "untagged-esx": {"untagged": True, "esx": True},  # govmomi's ESX model as embedded in a Go program
}
START_TIMEOUT = 60.0


def _apt_install() -> None:
    if os.geteuid() != 0:
        raise RuntimeError("vcsim needs `go` and govmomi: apt-get install golang-go golang-github-vmware-govmomi-dev")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "golang-go",
                    "golang-github-vmware-govmomi-dev"], check=True, env=env, stdout=subprocess.DEVNULL)


def go_sources() -> list[Path]:
    """The Go files the binary is built from (tests/vcsim/*.go)."""
    return sorted(HERE.glob(GO_SOURCES))


def ensure_built() -> Path:
    """Return the vcsim binary, installing Go/govmomi and (re)building when a Go source is newer."""
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    with open(BINARY.parent / ".build.lock", "w") as lock:  # several test runs may share the checkout
        fcntl.flock(lock, fcntl.LOCK_EX)
        newest = max(p.stat().st_mtime for p in go_sources())
        if BINARY.exists() and BINARY.stat().st_mtime >= newest:
            return BINARY
        if shutil.which("go") is None or not GOVMOMI_SRC.is_dir():
            _apt_install()
        tmp = BINARY.with_name(f".vcsim.{os.getpid()}")
        env = dict(os.environ, GOPATH=str(GOPATH), GO111MODULE="off",
                   GOCACHE=os.environ.get("GOCACHE", str(Path.home() / ".cache" / "go-build")))
        proc = subprocess.run(["go", "build", "-o", str(tmp), "."], cwd=HERE, env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"building vcsim failed:\n{proc.stderr}")
        os.replace(tmp, BINARY)
    return BINARY


# ------------------------------------------------------------------------------------------ TLS

def make_certificates(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``hosts`` signed by it (RSA 2048).  Returns (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "terraform-provider-vmdk test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


# ------------------------------------------------------------------------------------- process

@dataclass
class Vcsim:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    ca_file: str | None
    datacenter: str = DATACENTER
    workdir: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    log_file: Path | None = None
    stock: bool = False      # govmomi's model without our fidelity layer, datastores or test endpoints
    esx: bool = False        # a standalone ESXi host (about.apiType HostAgent, datacenter ha-datacenter)
    untagged: bool = False   # (stock) without the vcsim command's "(govmomi simulator)" tags

    @property
    def mode(self) -> str:
        """The name of this simulator's mode in MODES."""
        base = "untagged" if self.untagged else "stock" if self.stock else "vcenter"
        if self.esx:
            return "esx" if base == "vcenter" else f"{base}-esx"
        return base

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``https://host:port/sdk`` (no credentials)."""
        return f"https://{self.server}/sdk"

    @property
    def tmpdir(self) -> Path | None:
        """TMPDIR of the simulator: its datastore folders live below."""
        return self.workdir / "tmp" if self.workdir else None

    def connection_config(self, **overrides):
        from terraform_provider_vmdk.vsphere.connection.config import ConnectionConfig

        kw = {"server": self.server, "user": self.user, "password": self.password, "ca_file": self.ca_file}
        kw.update(overrides)
        return ConnectionConfig(**kw)

    def set_datastore(self, name: str, *, accessible: bool | None = None, maintenance: str | None = None,
                      capacity: int | None = None, free: int | None = None) -> None:
        """Change a datastore's state through main.go's test endpoint (not a vSphere API)."""
        form = {"name": name}
        if accessible is not None:
            form["accessible"] = "true" if accessible else "false"
        if maintenance is not None:
            form["maintenance"] = maintenance
        if capacity is not None:
            form["capacity"] = str(capacity)
        if free is not None:
            form["free"] = str(free)
        self._post("/vmdk-test/datastore", form)

    def start_task(self, seconds: float, fault: str | None = None) -> str:
        """Start a vcsim task that runs ``seconds`` then succeeds (result: the root folder) or fails with
        ``fault`` (NoDiskSpace, FileAlreadyExists, FileNotFound).  Returns the task's moref value."""
        form = {"seconds": repr(float(seconds))}
        if fault:
            form["fault"] = fault
        return self._post("/vmdk-test/task", form)

    def set_delay(self, method: str, seconds: float, count: int | None = None) -> None:
        """Make the next ``count`` calls (default: all) of ``method`` (a ``*_Task`` method, e.g.
        ``CreateVM_Task``) answer their task at once, running, and do the work ``seconds`` later, as a
        real vCenter runs tasks in the background; CancelTask meanwhile ends the task in error
        RequestCanceled without doing the work.  ``seconds=0`` clears the delay."""
        form = {"method": method, "seconds": repr(float(seconds))}
        if count is not None:
            form["count"] = str(int(count))
        self._post("/vmdk-test/delay", form)

    def set_datastore_tag(self, datastore: str, category: str, tag: str | None) -> None:
        """Tag a datastore for the PBM placement solver (``tag=None`` removes the category's tags)."""
        self._post("/vmdk-test/tag", {"datastore": datastore, "category": category, "tag": tag or ""})

    def set_pod(self, name: str, *, sdrs: bool | None = None, behavior: str | None = None,
                add: tuple[str, ...] | list[str] = (), remove: tuple[str, ...] | list[str] = ()) -> None:
        """Change a datastore cluster through main.go's test endpoint (not a vSphere API): Storage DRS on or
        off, ``behavior`` ``manual`` or ``automated``, datastores moved in (``add``) or out to the datacenter's
        datastore folder (``remove``)."""
        form = {"name": name}
        if sdrs is not None:
            form["sdrs"] = "on" if sdrs else "off"
        if behavior is not None:
            form["behavior"] = behavior
        if add:
            form["add"] = ",".join(add)
        if remove:
            form["remove"] = ",".join(remove)
        self._post("/vmdk-test/pod", form)

    def pods(self) -> list[dict]:
        """The datastore clusters as the test endpoint lists them: name, sdrs, behavior, datastores."""
        import json

        return json.loads(self._get("/vmdk-test/pod"))

    def svmotion(self, vm: str, datastore: str, disk: int | None = None) -> None:
        """Move a VM's files and disks (``disk``: only that disk, by device key) to ``datastore`` as a storage
        vMotion (Storage DRS in automated mode, or an administrator) would, outside any client's view; ``vm``
        is its name or moref value.  A fault (e.g. FileLocked) raises urllib.error.HTTPError 409."""
        form = {"vm": vm, "datastore": datastore}
        if disk is not None:
            form["disk"] = str(int(disk))
        self._post("/vmdk-test/svmotion", form)

    def set_nfc_origin(self, scheme: str = "", host: str = "") -> None:
        """Scheme and host the device URLs of leases made from now on name (``""``: vCenter's ``https``, ``*``)."""
        self._post("/vmdk-test/nfc", {"scheme": scheme, "host": host})

    def _post(self, path: str, form: dict[str, str]) -> str:
        return self._request(path, "POST", urllib.parse.urlencode(form).encode())

    def _get(self, path: str) -> str:
        return self._request(path, "GET", None)

    def _request(self, path: str, method: str, data: bytes | None) -> str:
        import ssl

        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        scheme = "https" if self.ca_file else "http"
        req = urllib.request.Request(f"{scheme}://{self.server}{path}", data=data, method=method)
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.read().decode()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (vcsim removes its datastore folders), then remove our work folder.  Idempotent."""
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout:
                proc.stdout.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Vcsim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_vcsim(tmpdir: str | Path | None = None, *, port: int = 0, user: str = USER, password: str = PASSWORD,
                tls: bool = True, stock: bool = False, esx: bool = False, untagged: bool = False,
                mode: str | None = None) -> Vcsim:
    """Start the simulator on 127.0.0.1 and wait until it listens.

    ``tmpdir``: parent of the work folder (certificates, the simulator's TMPDIR, its log); default the
    system temp dir.  The work folder is removed by ``stop()`` (and at interpreter exit as a last resort).
    ``stock``: serve govmomi's default VPX inventory exactly as a stock vcsim does (no extra datastores,
    policy, fidelity layer or /vmdk-test endpoints); only the address, TLS and credentials are ours.
    ``esx``: a standalone ESXi host instead of vCenter: govmomi's ESX model (datacenter ``ha-datacenter``)
    with our fidelity layer and the VMFS datastores ``datastore1`` and ``datastore2`` (``ESX_DATASTORES``);
    with ``stock``/``untagged``, govmomi's ESX model alone.
    ``untagged``: as ``stock``, but the model as a Go program embedding the simulator gets it (no
    "(govmomi simulator)" tags in About.fullName and the host vendor).
    ``mode``: a name from ``MODES``, the same as its keyword arguments.
    """
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f"unknown vcsim mode {mode!r}: one of {', '.join(MODES)}")
        flags = MODES[mode]
        stock, esx, untagged = (stock or flags.get("stock", False), esx or flags.get("esx", False),
                                untagged or flags.get("untagged", False))
    stock = stock or untagged
    binary = ensure_built()
    workdir = Path(tempfile.mkdtemp(prefix="vmdk-vcsim-", dir=tmpdir))
    try:
        sim_tmp = workdir / "tmp"
        sim_tmp.mkdir()
        args = [str(binary), "-port", str(port), "-user", user, "-password", password]
        if stock:
            args.append("-stock")
        if untagged:
            args.append("-untagged")
        if esx:
            args.append("-esx")
        ca_file = None
        if tls:
            ca, cert, key = make_certificates(workdir / "tls")
            ca_file = str(ca)
            args += ["-cert", str(cert), "-key", str(key)]
        log_file = workdir / "vcsim.log"
        env = dict(os.environ, TMPDIR=str(sim_tmp))
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env, text=True,
                                    start_new_session=True)
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, name="vcsim-stdout", daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT)
        except queue.Empty:
            line = ""
        if not line.startswith("VCSIM_URL="):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"vcsim did not start: {line!r}; log:\n{log_file.read_text(errors='replace')}")
        u = urllib.parse.urlsplit(line.split("=", 1)[1].strip())
        sim = Vcsim(host=u.hostname or "127.0.0.1", port=u.port or 443, user=user, password=password,
                    ca_file=ca_file, datacenter=ESX_DATACENTER if esx else DATACENTER, workdir=workdir,
                    process=proc, log_file=log_file, stock=stock, esx=esx, untagged=untagged)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    atexit.register(sim.stop)
    return sim
