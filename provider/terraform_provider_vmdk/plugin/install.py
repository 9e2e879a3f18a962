"""Install a launcher into Terraform's implied local mirror.

Terraform finds providers under ``~/.terraform.d/plugins/HOST/NS/TYPE/VERSION/OS_ARCH/``
without any CLI configuration, and ``terraform init`` accepts an executable
script there. The launcher pins the *current* interpreter (so the provider runs
in the virtualenv it was installed from) and execs ``python -m terraform_provider_vmdk``.

``terraform init`` records an ``h1:`` hash of the launcher's directory in
``.terraform.lock.hcl``; rewriting the launcher (a different interpreter path,
say) breaks every lock file pinning this version, which is why an unchanged
launcher is left alone and a changed one comes with a warning.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

HOSTNAME = "registry.terraform.io"
NAMESPACE = "pyvmdk"
TYPE = "vmdk"

_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "i386": "386", "i686": "386", "armv7l": "arm", "armv6l": "arm"}
_GO_OS = {"linux": "linux", "darwin": "darwin", "win32": "windows", "freebsd": "freebsd"}


def go_platform() -> str:
    """This machine as Terraform names platforms, e.g. ``linux_amd64``."""
    os_name = _GO_OS.get(sys.platform, sys.platform.rstrip("0123456789"))
    machine = platform.machine().lower()
    return f"{os_name}_{_GO_ARCH.get(machine, machine)}"


def launcher_text(python: str | None = None) -> str:
    python = os.path.abspath(python or sys.executable)  # keep venv symlinks: they select the venv
    return (
        "#!/bin/sh\n"
        "# terraform-provider-vmdk launcher, written by terraform_provider_vmdk.plugin.install.\n"
        f"exec {shlex.quote(python)} -m terraform_provider_vmdk \"$@\"\n"
    )


def launcher_path(version: str, home: str | os.PathLike[str] | None = None) -> Path:
    base = Path(home) if home is not None else Path.home()
    return (base / ".terraform.d" / "plugins" / HOSTNAME / NAMESPACE / TYPE / version / go_platform()
            / f"terraform-provider-{TYPE}_v{version}")


def install(version: str, home: str | os.PathLike[str] | None = None) -> Path:
    """Write the launcher for ``version`` (idempotent) and return its path."""
    path = launcher_path(version, home)
    text = launcher_text()
    try:
        existing: str | None = path.read_text()
    except FileNotFoundError:
        existing = None
    if existing == text:
        if not os.access(path, os.X_OK):
            path.chmod(0o755)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".launcher-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)  # atomic: a concurrent terraform never sees half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if existing is not None:
        sys.stderr.write(
            f"warning: replaced the launcher for {NAMESPACE}/{TYPE} {version} at {path}.\n"
            f"  Existing .terraform.lock.hcl files that pin {HOSTNAME}/{NAMESPACE}/{TYPE} {version} will\n"
            "  no longer match: their h1: hash covers this launcher file, whose content changed.\n"
            "  In each affected configuration run `terraform init -upgrade`, or delete the\n"
            f"  provider \"{HOSTNAME}/{NAMESPACE}/{TYPE}\" block from .terraform.lock.hcl and run `terraform init`.\n"
        )
    return path


def compile_package() -> bool:
    """Write the package's bytecode (``__pycache__``), as pip does when it installs a wheel.

    Terraform starts the provider three to five times per command. Where nothing wrote bytecode (an editable
    install, or ``PYTHONDONTWRITEBYTECODE`` set, as in many container images) every launch compiles each
    module again, which costs about a tenth of a second per launch. Best effort: a read-only package (a wheel
    installed by root, already compiled) is left as it is. Returns whether every module compiled."""
    import compileall

    package = Path(__file__).resolve().parent.parent
    try:
        return bool(compileall.compile_dir(str(package), quiet=2, workers=1))
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """``python -m terraform_provider_vmdk.plugin.install [VERSION]``: print the installed path."""
    from .. import __version__

    args = sys.argv[1:] if argv is None else argv
    print(install(args[0] if args else __version__))
    compile_package()
    return 0


if __name__ == "__main__":
    sys.exit(main())
