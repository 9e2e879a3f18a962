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
# The rooms of vsphere: the connection knows nothing of placement or volumes; placement knows nothing of
# volumes; the volume operations use both. exceptions (at vsphere's top) uses none of them.
VSPHERE_ROOMS = {
    "connection": {"placement", "volumes"},
    "placement": {"volumes"},
    "volumes": set(),
}


# The cty value modules (once one values.py): the codecs and what they stand on.
VALUE_MODULES = ("numbers", "unknowns", "dynamic_value", "value_checks", "type_inference", "msgpack_codec",
                 "json_codec", "walk")


def _module_of(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute_imports(path: Path) -> set[str]:
    """Every module of the package ``path`` imports (``TYPE_CHECKING`` blocks and function bodies included),
    relative imports resolved; ``from X import name`` counts ``X.name`` when that is a module."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("terraform_provider_vmdk"):
                continue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("terraform_provider_vmdk"))
    modules = {_module_of(p) for p in PKG.rglob("*.py")}
    return {m for m in found if m in modules}


def _imports(path: Path) -> set[str]:
    """The layers (top-level packages) ``path`` imports, besides its own."""
    layer = path.relative_to(PKG).parts[0]
    return {m.split(".")[1] for m in _absolute_imports(path) if m.count(".") >= 1} - {layer}


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


def test_vsphere_rooms_import_only_downwards() -> None:
    violations = []
    for room, forbidden in VSPHERE_ROOMS.items():
        assert (PKG / "vsphere" / room / "__init__.py").is_file(), room
        for path in (PKG / "vsphere" / room).rglob("*.py"):
            rooms = {m.split(".")[2] for m in _absolute_imports(path)
                     if m.startswith("terraform_provider_vmdk.vsphere.")}
            if rooms & forbidden:
                violations.append(f"{path.relative_to(PKG)} imports {sorted(rooms & forbidden)}")
    for top in ("exceptions.py",):
        rooms = {m.split(".")[2] for m in _absolute_imports(PKG / "vsphere" / top)
                 if m.startswith("terraform_provider_vmdk.vsphere.")}
        if rooms & set(VSPHERE_ROOMS):
            violations.append(f"vsphere/{top} imports {sorted(rooms & set(VSPHERE_ROOMS))}")
    assert violations == []


def test_no_import_cycles() -> None:
    """No module imports, even only for type checking, a module that imports it back at any depth."""
    graph = {_module_of(p): _absolute_imports(p) - {_module_of(p)} for p in PKG.rglob("*.py")}
    for module in graph:  # a package's __init__ is what importing a submodule runs first: not an edge back
        graph[module] = {m for m in graph[module] if not module.startswith(m + ".")}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


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
