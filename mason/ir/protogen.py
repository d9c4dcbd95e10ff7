"""Python modules generated from ``.proto`` files at first use (never committed), shared by every
set of stubs mason uses: its own LLB module (:mod:`mason.ir.llb_pb`), containerd's API
(:mod:`mason.backends.containerd._protos`) and BuildKit's control and session API
(:mod:`mason.protos.buildkit`).

The Go projects' ``.proto`` files (as Debian installs them under ``/usr/share/gocode/src``) need
two changes before ``grpc_tools.protoc`` sees them, made by :func:`rewrite_proto`:

* their ``github.com/...`` import paths are mapped into one Python package per stub set (so the
  generated ``*_pb2`` modules import each other without putting a generic top-level package such
  as ``github`` or ``google.rpc`` on ``sys.path``), or onto a file another set provides;
* gogo's (and containerd's ``fieldpath``) options and their ``import weak`` lines go: they only
  steer Go code generation and never change the wire format.

:func:`generated_tree` writes a set into ``<cache>/<kind>/<hash of the inputs>/``, atomically (a
temporary directory renamed into place, so two processes racing both end up importing one
complete tree); :func:`mount_package` makes a package object whose ``__path__`` points into it,
without touching ``sys.path``; :func:`load_stubs` imports a set's modules from it, and
:class:`Once` makes each set's ``load()`` run once per process.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from mason.ir.errors import MasonError
from mason.ir.paths import cache_root

__all__ = ["GOCODE", "rewrite_proto", "collect", "generated_tree", "mount_package", "load_stubs", "Once",
           "tools_version"]

T = TypeVar("T")

GOCODE = Path(os.environ.get("MASON_GOCODE", "/usr/share/gocode/src"))

_IMPORT_RE = re.compile(r'^\s*import\s+(weak\s+|public\s+)?"([^"]+)"\s*;\s*$', re.M)
_DROPPED_PREFIXES = ("(gogoproto.", "(containerd.plugin.")
_OPTION_STMT_RE = re.compile(r"^\s*option\s+\((?:gogoproto|containerd\.plugin)\.[\w.]+\)\s*=\s*[^;]*;[^\n]*$", re.M)
_FIELD_OPTS_RE = re.compile(r"\[([^\[\]]*\((?:gogoproto|containerd\.plugin)\.[^\[\]]*)\]")
_GO_ONLY_IMPORTS = ("gogoproto/gogo.proto", "github.com/gogo/protobuf/gogoproto/gogo.proto")

# Where an import goes: a path inside the generated tree (compiled with it, its dependencies
# followed), ``("external", path)`` for a file another tree provides on the include path, or
# None to keep the line as it is (google/protobuf/*, which grpc_tools ships).
ImportMap = Callable[[str], "str | tuple[str, str] | None"]


def _split_options(body: str) -> list[str]:
    """Split ``a = 1, b = "x,y"`` at top-level commas (not inside quotes)."""
    parts, cur, quote = [], [], ""
    for ch in body:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _strip_field_options(m: re.Match[str]) -> str:
    kept = [p for p in _split_options(m.group(1)) if not p.startswith(_DROPPED_PREFIXES)]
    return f"[{', '.join(kept)}]" if kept else ""


def rewrite_proto(text: str, map_import: ImportMap) -> tuple[str, list[str]]:
    """Rewrite one .proto file; return the new text and the original paths of the imports that
    must be compiled with it."""
    deps: list[str] = []

    def imp(m: re.Match[str]) -> str:
        modifier, path = (m.group(1) or "").strip(), m.group(2)
        if path in _GO_ONLY_IMPORTS or path.endswith("/protobuf/plugin/fieldpath.proto"):
            return ""
        mapped = map_import(path)
        if mapped is None:
            return m.group(0)
        prefix = f"import {modifier} " if modifier == "public" else "import "
        if isinstance(mapped, tuple):
            return f'{prefix}"{mapped[1]}";'
        deps.append(path)
        return f'{prefix}"{mapped}";'

    text = _IMPORT_RE.sub(imp, text)
    text = _OPTION_STMT_RE.sub("", text)
    text = _FIELD_OPTS_RE.sub(_strip_field_options, text)
    return text, deps


def collect(roots: Iterable[str], map_import: ImportMap, source_file: Callable[[str], Path], *,
            package_hint: str, patch: Callable[[str, str], str] | None = None) -> dict[str, str]:
    """Every rewritten proto that ``roots`` (original import paths) need: generated-tree path ->
    text. ``source_file`` finds an original on disk; ``patch(original path, text)`` may amend a
    file before it is rewritten; ``package_hint`` names the Debian package to reinstall when one
    cannot be read."""
    out: dict[str, str] = {}
    todo = list(roots)
    while todo:
        path = todo.pop()
        dest = map_import(path)
        if not isinstance(dest, str):
            raise AssertionError(f"{path} is not part of this tree")
        if dest in out:
            continue
        src = source_file(path)
        try:
            raw = src.read_text()
        except OSError as e:
            raise MasonError(f"cannot read {src}: {e.strerror}; install the Debian package {package_hint}") from None
        if patch is not None:
            raw = patch(path, raw)
        out[dest], deps = rewrite_proto(raw, map_import)
        todo.extend(deps)
    return out


def tools_version() -> str:
    """protobuf's and grpcio-tools' versions (part of every cache key)."""
    import google.protobuf

    try:  # cheap (importlib.metadata costs a no-op build ~0.1 s)
        from grpc_tools.grpc_version import VERSION as tools
    except ImportError:  # pragma: no cover - the dependency is declared
        tools = "?"
    return f"{google.protobuf.__version__}/{tools}"


def generated_tree(kind: str, protos: Mapping[str, str], *, grpc: bool, includes: Sequence[Path] = (),
                   version: str = "1", what: str = "protobuf modules", packages: Sequence[str] = ()) -> Path:
    """The directory holding the Python modules generated from ``protos`` (tree path -> text),
    generating them if needed. ``includes`` are further ``-I`` directories (for external imports;
    say what they hold in ``version``, which is part of the cache key); ``packages`` are tree
    directories that get ``__init__.py`` files all the way down. The directory also holds the
    ``.proto`` inputs and an ``INPUTS`` list."""
    h = hashlib.sha256(f"{version}/{tools_version()}/{int(grpc)}".encode())
    for rel in sorted(protos):
        h.update(rel.encode() + b"\0" + protos[rel].encode() + b"\0")
    dest = cache_root() / kind / h.hexdigest()[:20]
    if not (dest / "INPUTS").exists():
        _generate(protos, dest, grpc=grpc, includes=includes, what=what, packages=packages)
    return dest


def _generate(protos: Mapping[str, str], dest: Path, *, grpc: bool, includes: Sequence[Path], what: str,
              packages: Sequence[str]) -> None:
    try:
        from grpc_tools import protoc  # imported only when generating
    except ImportError as e:  # pragma: no cover - the dependency is declared
        raise MasonError(f"grpcio-tools is needed to generate {what}: pip install grpcio-tools") from e
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as e:
        raise MasonError(f"cannot write {what} under {dest.parent}: {e.strerror}; "
                         "set MASON_CACHE to a writable directory") from None
    try:
        out = tmp / "out"
        for rel, text in protos.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text(text)
        bundled = str(Path(protoc.__file__).parent / "_proto")
        args = ["grpc_tools.protoc", f"-I{out}", *(f"-I{d}" for d in includes), f"-I{bundled}",
                f"--python_out={out}"]
        if grpc:
            args.append(f"--grpc_python_out={out}")
        rc = protoc.main(args + sorted(protos))
        if rc != 0:
            raise MasonError(f"generating {what} failed (protoc exit {rc}; inputs in {out})")
        for pkg in packages:  # regular packages all the way down, for plain import machinery
            top = out / pkg
            for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
                (d / "__init__.py").touch()
        (out / "INPUTS").write_text("\n".join(sorted(protos)) + "\n")
        try:
            os.rename(out, dest)
        except OSError:
            if not (dest / "INPUTS").exists():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mount_package(package: str, root: Path, doc: str = "") -> types.ModuleType:
    """The package object ``package`` whose modules live in ``root`` (created once per process;
    a second tree for the same package is an error)."""
    pkg = sys.modules.get(package)
    if pkg is None:
        pkg = types.ModuleType(package, doc)
        pkg.__path__ = [str(root)]
        pkg.__package__ = package
        sys.modules[package] = pkg
    elif str(root) not in pkg.__path__:
        raise MasonError(f"{package} was already loaded from {pkg.__path__}")
    return pkg


def load_stubs(package: str, root: Path, doc: str, services: Mapping[str, str],
               modules: Mapping[str, str] = {}) -> dict[str, types.ModuleType]:
    """Mount the generated tree ``root`` as ``package`` and import from it, by attribute name:
    each of ``services`` (``attr`` its ``NAME_pb2`` messages, ``attr_grpc`` its ``NAME_pb2_grpc``
    stubs) and each of ``modules`` (``NAME_pb2`` only) — the fields of a set's ``Stubs``."""
    mount_package(package, root, doc)

    def mod(name: str) -> types.ModuleType:
        return importlib.import_module(f"{package}.{name}")

    out: dict[str, types.ModuleType] = {}
    for attr, name in services.items():
        out[attr] = mod(name + "_pb2")
        out[attr + "_grpc"] = mod(name + "_pb2_grpc")
    for attr, name in modules.items():
        out[attr] = mod(name + "_pb2")
    return out


class Once(Generic[T]):
    """``make()``'s value, made on the first call and only once per process (thread-safe):
    what every stub set's ``load()`` returns."""

    def __init__(self, make: Callable[[], T]):
        self._make = make
        self._lock = threading.Lock()
        self._value: T | None = None

    def __call__(self) -> T:
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value
