"""The layering rules, read from the source (STYLE.md "Layers", BRIEF.md "How to work").

* ``mason.ir`` imports nothing else of mason; ``mason.frontends`` and ``mason.passes`` import
  only ``mason.ir`` (and themselves); ``mason.backends`` imports ``mason.ir`` and the generated
  stubs of ``mason.protos``, never a frontend, a pass, the driver or the CLI.
* Frontends write LLB only through the builder API (``mason.ir.builder``): outside an
  ``if TYPE_CHECKING:`` block no module under ``mason/frontends`` imports ``mason.ir.ops``, nor
  any ``mason.ir.ops`` class from wherever it is re-exported, so none can construct an op (or
  ``dataclasses.replace`` one) by hand. Naming an op type in an annotation stays allowed.

Every import counts, also the ones inside functions. Each rule is also run on a small made-up
module, so a checker that found nothing because it looked at nothing would fail too.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import mason

ROOT = Path(mason.__file__).parent

# May import only themselves and these packages of mason.
ALLOWED = {
    "ir": ("mason.ir",),
    "frontends": ("mason.ir", "mason.frontends"),
    "passes": ("mason.ir", "mason.passes"),
    "backends": ("mason.ir", "mason.backends", "mason.protos"),  # protos: the generated stubs
}
# Leaf modules any layer may use: they import nothing of mason (checked below).
# mason._codecache caches compiled code of generated functions for start-up time.
LEAVES = ("mason._codecache",)
OPS = "mason.ir.ops"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, module: str, is_package: bool):
    """(line, imported module, names bound from it or None, under TYPE_CHECKING) for every
    import statement in ``tree``, relative ones resolved against ``module``."""
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for sub in node.body:
                typing_only.update(id(n) for n in ast.walk(sub))
    for node in ast.walk(tree):
        guarded = id(node) in typing_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None, guarded
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            yield node.lineno, base, [a.name for a in node.names], guarded


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def layer_violations(path: Path, allowed: tuple[str, ...], text: str | None = None) -> list[str]:
    """Imports of mason modules outside ``allowed`` (and the leaves) in one file."""
    module = _module_name(path)
    tree = ast.parse(path.read_text() if text is None else text)
    out = []
    for line, base, names, _ in _imports(tree, module, path.name == "__init__.py"):
        targets = [base] if base != "mason" or not names else [f"mason.{n}" for n in names]
        for t in targets:
            if t != "mason" and not t.startswith("mason."):
                continue
            if any(t == a or t.startswith(a + ".") for a in allowed + LEAVES):
                continue
            out.append(f"{path.relative_to(ROOT.parent)}:{line}: imports {t}")
    return out


def _is_op_class(module: str, name: str) -> bool:
    if module == OPS or f"{module}.{name}" == OPS:
        return True
    obj = getattr(importlib.import_module(module), name, None)
    return isinstance(obj, type) and obj.__module__ == OPS


def ops_violations(path: Path, text: str | None = None) -> list[str]:
    """Run-time imports of mason.ir.ops or of its classes in one frontend file."""
    module = _module_name(path)
    tree = ast.parse(path.read_text() if text is None else text)
    out = []
    for line, base, names, guarded in _imports(tree, module, path.name == "__init__.py"):
        if guarded:
            continue
        where = f"{path.relative_to(ROOT.parent)}:{line}"
        if names is None:
            if base == OPS:
                out.append(f"{where}: imports {OPS}")
            continue
        for n in names:
            if base.startswith("mason.") and _is_op_class(base, n):
                out.append(f"{where}: imports {base}.{n} (an IR op; use mason.ir.builder)")
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layer_imports(package: str) -> None:
    files = _sources(package)
    assert files, f"no sources under mason/{package}"
    bad = [v for f in files for v in layer_violations(f, ALLOWED[package])]
    assert not bad, f"mason.{package} may import only {ALLOWED[package]}:\n" + "\n".join(bad)


def test_leaves_import_nothing_of_mason() -> None:
    for leaf in LEAVES:
        path = ROOT.parent / (leaf.replace(".", "/") + ".py")
        # its prime() imports the package ``mason`` itself, to walk and import every module
        bad = [v for v in layer_violations(path, ()) if not v.endswith(": imports mason")]
        assert not bad, f"{leaf} is allowed everywhere only as a leaf: {bad}"


def test_frontends_build_llb_only_through_the_builder() -> None:
    files = _sources("frontends")
    bad = [v for f in files for v in ops_violations(f)]
    assert not bad, "frontends build LLB only through mason.ir.builder:\n" + "\n".join(bad)


def test_the_checkers_find_what_they_look_for() -> None:
    fake = ROOT / "frontends" / "demo" / "lower.py"
    text = (
        "from typing import TYPE_CHECKING\n"
        "from mason.ir.builder import image\n"           # fine
        "from mason.ir.ops import ExecOp\n"               # 3: an op class
        "from mason.ir import ops\n"                      # 4: the ops module
        "import mason.ir.ops as o\n"                      # 5: the ops module
        "from mason.ir.graph import Graph\n"              # fine: not an op
        "from mason.backends.solver import solver\n"      # 7: a layer above
        "from .. import registry\n"                       # fine: mason.frontends.registry
        "from mason import build\n"                       # 9: the driver
        "if TYPE_CHECKING:\n"
        "    from mason.ir.ops import Ref\n"              # fine: annotations only
        "def f():\n"
        "    from mason.cli import main\n"                # 13: lazy, still counts
    )
    layers = layer_violations(fake, ALLOWED["frontends"], text)
    assert [v.split(":")[1] for v in layers] == ["7", "9", "13"], layers
    ops = ops_violations(fake, text)
    assert [v.split(":")[1] for v in ops] == ["3", "4", "5"], ops


# The driver's modules, each importing only those before it (mason/driver/__init__.py's list).
DRIVER = ("inputs", "requests", "resolvers", "frontend", "outputs", "solvers", "records", "lowering", "solving",
          "building")


def test_the_driver_modules_import_only_the_ones_above() -> None:
    files = {p.stem for p in (ROOT / "driver").glob("*.py")} - {"__init__"}
    assert files == set(DRIVER), "a driver module not in the list (or a listed one gone)"
    bad = []
    for i, name in enumerate(DRIVER):
        later = {f"mason.driver.{n}" for n in DRIVER[i:]} | {"mason.driver"}
        path = ROOT / "driver" / f"{name}.py"
        for line, base, _, _ in _imports(ast.parse(path.read_text()), f"mason.driver.{name}", False):
            if base in later:
                bad.append(f"mason/driver/{name}.py:{line}: imports {base}")
    assert not bad, "\n".join(bad)


def test_mason_build_is_a_plain_function() -> None:
    import types

    import mason.driver

    assert isinstance(mason.build, types.FunctionType)
    assert type(mason.driver) is types.ModuleType  # no callable-module class swap
    assert mason.driver.build.__module__ == "mason.driver.building"
