#!/usr/bin/env python3
"""Generate the Python gRPC stubs for proto/*.proto into the plugin package.

The stubs are committed (so installing the provider needs no grpcio-tools);
``--check`` regenerates into a scratch directory and exits 1 when the committed
files differ, which keeps them honest in CI (tests/unit/test_proto_fresh.py).

protoc emits absolute imports (``import tfplugin6_pb2``) that only work with
the output directory on sys.path; we rewrite them to package-relative ones.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "provider" / "terraform_provider_vmdk" / "plugin" / "_generated"
PROTOS = ("tfplugin6.proto", "grpc_controller.proto", "grpc_stdio.proto", "grpc_broker.proto")

INIT_TEXT = '''"""Generated protobuf/gRPC stubs. Do not edit: run scripts/gen_proto.py."""
'''

# "import foo_pb2 as foo__pb2" for our own modules -> "from . import foo_pb2 as foo__pb2"
_LOCAL_MODULES = tuple(Path(p).stem + "_pb2" for p in PROTOS)
_IMPORT_RE = re.compile(r"^import (" + "|".join(_LOCAL_MODULES) + r")( as \w+)?$", re.MULTILINE)


def _fix_imports(text: str) -> str:
    return _IMPORT_RE.sub(lambda m: f"from . import {m.group(1)}{m.group(2) or ''}", text)


def generate(out: Path) -> None:
    """Run protoc (from grpcio-tools) for all protos into ``out``."""
    import grpc_tools
    from grpc_tools import protoc  # imported lazily: only needed when generating

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(PROTO_DIR / p) for p in PROTOS),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    for path in out.iterdir():
        if path.suffix in (".py", ".pyi"):
            path.write_text(_fix_imports(path.read_text()))
    (out / "__init__.py").write_text(INIT_TEXT)


def _snapshot(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    return {
        p.name: p.read_text()
        for p in sorted(directory.iterdir())
        if p.is_file() and p.suffix in (".py", ".pyi")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if committed stubs are stale")
    opts = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp)
        generate(fresh_dir)
        fresh = _snapshot(fresh_dir)

    current = _snapshot(OUT_DIR)
    if opts.check:
        if fresh == current:
            print(f"stubs in {OUT_DIR.relative_to(ROOT)} are up to date")
            return 0
        for name in sorted(set(fresh) | set(current)):
            if fresh.get(name) != current.get(name):
                diff = difflib.unified_diff(
                    current.get(name, "").splitlines(keepends=True),
                    fresh.get(name, "").splitlines(keepends=True),
                    f"committed/{name}",
                    f"fresh/{name}",
                )
                sys.stdout.writelines(list(diff)[:40])
        print("stale stubs: run scripts/gen_proto.py", file=sys.stderr)
        return 1

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in set(current) - set(fresh):
        (OUT_DIR / name).unlink()
    for name, text in fresh.items():
        target = OUT_DIR / name
        if current.get(name) != text:
            target.write_text(text)
    print(f"wrote {len(fresh)} files to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
