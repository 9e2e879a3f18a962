"""Install the provider into Terraform's implied local mirror.

Terraform finds providers under ``~/.terraform.d/plugins/HOST/NS/TYPE/VERSION/OS_ARCH/``
without any CLI configuration, and ``terraform init`` accepts an executable
script there. From a virtualenv, ``install`` writes a launcher that pins the
*current* interpreter (so the provider runs in the virtualenv it was installed
from) and execs ``python -m terraform_provider_vmdk``. From the packaged provider
(a release zip, built by scripts/release.py: there is no ``python -m`` then), it
copies the executable and its ``_internal/`` folder there instead.

``terraform init`` records an ``h1:`` hash of that directory in
``.terraform.lock.hcl``; rewriting it (a different interpreter path, say)
breaks every lock file pinning this version, which is why an unchanged
installation is left alone and a changed one comes with a warning.
"""

from __future__ import annotations

import filecmp
import os
import platform
import shlex
import shutil
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


def is_frozen() -> bool:
    """Whether this is the packaged provider (PyInstaller): no interpreter to exec, no ``python -m``."""
    return bool(getattr(sys, "frozen", False))


def _stale_lock_warning(version: str, where: Path, what: str) -> None:
    sys.stderr.write(
        f"warning: replaced the {what} for {NAMESPACE}/{TYPE} {version} at {where}.\n"
        f"  Existing .terraform.lock.hcl files that pin {HOSTNAME}/{NAMESPACE}/{TYPE} {version} will\n"
        f"  no longer match: their h1: hash covers this directory, whose content changed.\n"
        "  In each affected configuration run `terraform init -upgrade`, or delete the\n"
        f"  provider \"{HOSTNAME}/{NAMESPACE}/{TYPE}\" block from .terraform.lock.hcl and run `terraform init`.\n"
    )


def install(version: str, home: str | os.PathLike[str] | None = None) -> Path:
    """Install ``version`` (idempotent) and return the executable's path: a launcher for this interpreter, or
    the packaged provider itself when running frozen."""
    if is_frozen():
        return install_frozen(version, home)
    path = launcher_path(version, home)
    text = launcher_text()
    support = path.parent / FROZEN_CONTENTS  # left by an install of the packaged provider: not ours now
    replaced_package = support.exists()
    if replaced_package:
        shutil.rmtree(support)
        path.unlink(missing_ok=True)
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
    if existing is not None or replaced_package:
        _stale_lock_warning(version, path, "launcher")
    return path


FROZEN_CONTENTS = "_internal"  # PyInstaller onedir's support folder, beside the executable (scripts/release.py)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=[])
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def install_frozen(version: str, home: str | os.PathLike[str] | None = None) -> Path:
    """Copy the running packaged provider (its executable and ``_internal/``) into the implied local mirror,
    as Terraform would unpack the release zip there. Idempotent; replacing a different installation (an
    older build, or a venv's launcher) warns about lock files, as ``install`` does."""
    exe = Path(sys.executable).resolve()
    contents = Path(getattr(sys, "_MEIPASS", exe.parent / FROZEN_CONTENTS)).resolve()
    if contents.name != FROZEN_CONTENTS or contents.parent != exe.parent:
        raise SystemExit(f"terraform-provider-vmdk install: expected the folder {FROZEN_CONTENTS}/ beside {exe}, "
                         f"found {contents}; unpack the release zip as it is, or use its filesystem mirror")
    path = launcher_path(version, home)
    target = path.parent
    if target.resolve() == exe.parent:
        return path  # running the installed copy
    if path.is_file() and (target / FROZEN_CONTENTS).is_dir() and sorted(p.name for p in target.iterdir()) == sorted(
            [path.name, FROZEN_CONTENTS]) and filecmp.cmp(exe, path, shallow=False) and _same_tree(
            contents, target / FROZEN_CONTENTS):
        return path
    existed = target.exists() and any(target.iterdir())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-new-"))
    old = target.parent / f".{target.name}-old-{os.getpid()}"
    try:
        shutil.copy2(exe, staging / path.name)
        shutil.copytree(contents, staging / FROZEN_CONTENTS, symlinks=False)
        staging.chmod(0o755)
        if target.exists():
            os.replace(target, old)  # a terraform init meanwhile sees no directory, never half of one
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if existed:
        _stale_lock_warning(version, target, "installation")
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
    if not is_frozen():  # the packaged provider holds compiled modules only
        compile_package()
    return 0


if __name__ == "__main__":
    sys.exit(main())
