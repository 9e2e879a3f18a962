"""The layers import only downwards, and starting the provider never imports pyvmomi."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "provider" / "terraform_provider_vmdk"

# layer -> layers it must not import
FORBIDDEN = {
    "vsphere": {"framework", "resources", "plugin"},
    "framework": {"resources", "vsphere", "plugin"},
    "resources": {"plugin"},
    "plugin": {"resources", "vsphere"},
}


# The cty value modules (once one values.py): the codecs and what they stand on.
VALUE_MODULES = ("numbers", "unknowns", "dynamic_value", "value_checks", "type_inference", "msgpack_codec",
                 "json_codec", "walk")


def _imports(path: Path) -> set[str]:
    layer_parts = path.relative_to(PKG).parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("terraform_provider_vmdk."):
                found.add(node.module.split(".")[1])
            elif node.level >= 2 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level >= 2:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("terraform_provider_vmdk."):
                    found.add(alias.name.split(".")[1])
    return found - {layer_parts[0]}


def test_value_modules_exist() -> None:
    """The start-up check below names these modules; a rename must not make it pass vacuously."""
    present = {p.stem for p in (PKG / "framework").glob("*.py")}
    assert set(VALUE_MODULES) <= present


def test_path_does_not_import_the_value_modules() -> None:
    """Paths are plain data: the value modules import ``path``, never the other way round (no cycle)."""
    tree = ast.parse((PKG / "framework" / "path.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
    assert imported & set(VALUE_MODULES) == set()


def test_layers_import_only_downwards() -> None:
    violations = []
    for layer, forbidden in FORBIDDEN.items():
        for path in (PKG / layer).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(PKG)} imports {sorted(bad)}")
    assert violations == []


def _loaded_after(setup: str, candidates: str) -> list[str]:
    """Which modules (``candidates``: a Python expression over ``sys.modules``) a fresh interpreter has
    loaded after running ``setup``."""
    code = f"import sys\n{setup}\nprint(sorted({candidates}))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out)


def test_startup_does_not_import_pyvmomi() -> None:
    setup = (
        "from terraform_provider_vmdk.cli import build_provider\n"
        "from terraform_provider_vmdk.framework.server import FrameworkServer\n"
        "from terraform_provider_vmdk.plugin.servicer import ProviderServicer\n"
        "import terraform_provider_vmdk.plugin.server\n"
        "s = ProviderServicer(lambda: FrameworkServer(build_provider()))\n"
        "s.GetProviderSchema(None, None)"
    )
    assert _loaded_after(setup, "m for m in sys.modules if m.startswith(('pyVmomi', 'pyVim'))") == []


def test_provider_service_loads_after_registration() -> None:
    """Before the handshake line only the transport is imported: tfplugin6 descriptors and the framework
    load afterwards (lazy_service), which is what keeps start-up near `import grpc`."""
    setup = (
        "import terraform_provider_vmdk.plugin.server\n"
        "from terraform_provider_vmdk.plugin.lazy_service import LazyProviderService\n"
        "svc = LazyProviderService(lambda: None)"
    )
    heavy = ("terraform_provider_vmdk.plugin._generated.tfplugin6_pb2", "terraform_provider_vmdk.framework.server",
             *(f"terraform_provider_vmdk.framework.{m}" for m in VALUE_MODULES), "msgpack")
    assert _loaded_after(setup, f"m for m in {heavy!r} if m in sys.modules") == []
