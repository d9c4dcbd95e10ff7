"""Python gRPC stubs for containerd's API, generated at first use (never committed).

The sources are the ``.proto`` files that Debian's ``golang-github-containerd-containerd-dev``
installs under ``/usr/share/gocode/src``. Before handing them to ``grpc_tools.protoc`` we

* move every file under one Python package, ``mason.backends.containerd._stubs`` (the
  ``github.com/containerd/containerd/`` prefix, and gogo's copy of ``google/rpc``, are rewritten
  in file paths and ``import`` lines), so the generated ``*_pb2`` modules import each other
  without putting a generic top-level package such as ``github`` or ``google.rpc`` on sys.path;
* drop gogo's and containerd's ``fieldpath`` options and their ``import weak`` lines: they only
  steer Go code generation and never change the wire format.

The output lands in ``<cache>/containerd-stubs/<hash of the inputs>/`` and is written
atomically (a temporary directory renamed into place, so two processes racing both end up
importing one complete tree). ``_stubs`` is a package object created here whose ``__path__``
points into that directory; nothing is added to ``sys.path``.
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
from dataclasses import dataclass
from pathlib import Path

from mason.ir.errors import MasonError

GOCODE = Path(os.environ.get("MASON_GOCODE", "/usr/share/gocode/src"))
CONTAINERD_SRC = "github.com/containerd/containerd"
GOOGLEAPIS_SRC = "github.com/gogo/googleapis"
APT_PACKAGE = "golang-github-containerd-containerd-dev"

PACKAGE = "mason.backends.containerd._stubs"
_PKG_PATH = PACKAGE.replace(".", "/")

# Bump when the rewriting below changes, so old caches are not reused.
GENERATOR_VERSION = "1"

# Proto files we compile, relative to the containerd source tree (their containerd imports
# are followed automatically).
ROOTS = (
    "api/services/namespaces/v1/namespace.proto",
    "api/services/leases/v1/leases.proto",
    "api/services/content/v1/content.proto",
    "api/services/snapshots/v1/snapshots.proto",
    "api/services/diff/v1/diff.proto",
    "api/services/containers/v1/containers.proto",
    "api/services/tasks/v1/tasks.proto",
    "api/services/images/v1/images.proto",
    "api/services/version/v1/version.proto",
    "api/services/introspection/v1/introspection.proto",
    "runtime/v2/runc/options/oci.proto",
)

_IMPORT_RE = re.compile(r'^\s*import\s+(weak\s+|public\s+)?"([^"]+)"\s*;\s*$', re.M)
_DROPPED_PREFIXES = ("(gogoproto.", "(containerd.plugin.")
_OPTION_STMT_RE = re.compile(r"^\s*option\s+\((?:gogoproto|containerd\.plugin)\.[\w.]+\)\s*=\s*[^;]*;[^\n]*$", re.M)
_FIELD_OPTS_RE = re.compile(r"\[([^\[\]]*\((?:gogoproto|containerd\.plugin)\.[^\[\]]*)\]")


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


def _map_import(path: str) -> str | None:
    """Where an imported proto lives in the generated tree; None = provided elsewhere / dropped."""
    if path.startswith(CONTAINERD_SRC + "/"):
        return f"{_PKG_PATH}/{path[len(CONTAINERD_SRC) + 1:]}"
    if path.startswith("google/rpc/"):
        return f"{_PKG_PATH}/{path}"
    return None


def rewrite_proto(text: str) -> tuple[str, list[str]]:
    """Rewrite one .proto file; return the new text and the original paths of the imports that
    must be compiled with it."""
    deps: list[str] = []

    def imp(m: re.Match[str]) -> str:
        modifier, path = (m.group(1) or "").strip(), m.group(2)
        if path == "gogoproto/gogo.proto" or path.endswith("/protobuf/plugin/fieldpath.proto"):
            return ""
        mapped = _map_import(path)
        if mapped is None:  # google/protobuf/*: grpc_tools ships these
            return m.group(0)
        deps.append(path)
        prefix = f"import {modifier} " if modifier == "public" else "import "
        return f'{prefix}"{mapped}";'

    text = _IMPORT_RE.sub(imp, text)
    text = _OPTION_STMT_RE.sub("", text)
    text = _FIELD_OPTS_RE.sub(_strip_field_options, text)
    return text, deps


def _source_file(path: str) -> Path:
    if path.startswith(CONTAINERD_SRC + "/"):
        return GOCODE / path
    if path.startswith("google/rpc/"):
        return GOCODE / GOOGLEAPIS_SRC / path
    raise AssertionError(path)


def _collect() -> dict[str, str]:
    """All rewritten protos: generated-tree path -> text."""
    if not (GOCODE / CONTAINERD_SRC / "api").is_dir():
        raise MasonError(
            f"containerd's API definitions are missing ({GOCODE / CONTAINERD_SRC / 'api'}); "
            f"install the Debian package {APT_PACKAGE}"
        )
    out: dict[str, str] = {}
    todo = [f"{CONTAINERD_SRC}/{r}" for r in ROOTS]
    while todo:
        path = todo.pop()
        dest = _map_import(path)
        assert dest is not None
        if dest in out:
            continue
        src = _source_file(path)
        try:
            raw = src.read_text()
        except OSError as e:
            raise MasonError(f"cannot read {src}: {e.strerror}; reinstall the Debian package {APT_PACKAGE}") from None
        out[dest], deps = rewrite_proto(raw)
        todo.extend(deps)
    return out


def _versions() -> str:
    import google.protobuf
    import grpc_tools

    tools_version = getattr(grpc_tools, "__version__", "")
    if not tools_version:
        try:
            from importlib.metadata import version

            tools_version = version("grpcio-tools")
        except Exception:  # noqa: BLE001 - any metadata problem just weakens the cache key
            tools_version = "?"
    return f"{GENERATOR_VERSION}/{google.protobuf.__version__}/{tools_version}"


def cache_root() -> Path:
    """``$MASON_CACHE``, else ``$XDG_CACHE_HOME/mason``, else ``~/.cache/mason``."""
    if os.environ.get("MASON_CACHE"):
        return Path(os.environ["MASON_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mason"


def _generate(protos: dict[str, str], dest: Path) -> None:
    from grpc_tools import protoc

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as e:
        raise MasonError(f"cannot write containerd's API stubs under {dest.parent}: {e.strerror}; "
                         "set MASON_CACHE to a writable directory") from None
    try:
        src, py = tmp / "proto", tmp / "py"
        for rel, text in protos.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_text(text)
        py.mkdir()
        include = str(Path(protoc.__file__).parent / "_proto")
        args = ["grpc_tools.protoc", f"-I{src}", f"-I{include}", f"--python_out={py}", f"--grpc_python_out={py}"]
        rc = protoc.main(args + sorted(protos))
        if rc != 0:
            raise MasonError(f"generating containerd's API stubs failed (protoc exit {rc}; inputs in {src})")
        # Regular packages (with __init__.py) all the way down, for plain import machinery.
        for d in [py / _PKG_PATH, *(p for p in (py / _PKG_PATH).rglob("*") if p.is_dir())]:
            (d / "__init__.py").touch()
        (py / "INPUTS").write_text("\n".join(sorted(protos)) + "\n")
        try:
            os.rename(py, dest)
        except OSError:
            if not (dest / "INPUTS").exists():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stubs_dir() -> Path:
    """The directory holding the generated tree, generating it if needed."""
    protos = _collect()
    h = hashlib.sha256(_versions().encode())
    for rel in sorted(protos):
        h.update(rel.encode() + b"\0" + protos[rel].encode() + b"\0")
    dest = cache_root() / "containerd-stubs" / h.hexdigest()[:20]
    if not (dest / "INPUTS").exists():
        _generate(protos, dest)
    return dest


@dataclass(frozen=True)
class Stubs:
    """The generated modules the client uses (``*_pb2`` messages and ``*_pb2_grpc`` stubs)."""

    namespaces: types.ModuleType
    namespaces_grpc: types.ModuleType
    leases: types.ModuleType
    leases_grpc: types.ModuleType
    content: types.ModuleType
    content_grpc: types.ModuleType
    snapshots: types.ModuleType
    snapshots_grpc: types.ModuleType
    diff: types.ModuleType
    diff_grpc: types.ModuleType
    containers: types.ModuleType
    containers_grpc: types.ModuleType
    tasks: types.ModuleType
    tasks_grpc: types.ModuleType
    images: types.ModuleType
    images_grpc: types.ModuleType
    version: types.ModuleType
    version_grpc: types.ModuleType
    introspection: types.ModuleType
    introspection_grpc: types.ModuleType
    mount: types.ModuleType
    descriptor: types.ModuleType
    task: types.ModuleType
    runc_options: types.ModuleType


_MODULES = {
    "namespaces": "api.services.namespaces.v1.namespace",
    "leases": "api.services.leases.v1.leases",
    "content": "api.services.content.v1.content",
    "snapshots": "api.services.snapshots.v1.snapshots",
    "diff": "api.services.diff.v1.diff",
    "containers": "api.services.containers.v1.containers",
    "tasks": "api.services.tasks.v1.tasks",
    "images": "api.services.images.v1.images",
    "version": "api.services.version.v1.version",
    "introspection": "api.services.introspection.v1.introspection",
}

_lock = threading.Lock()
_loaded: Stubs | None = None


def load() -> Stubs:
    """Generate (once per machine and input set) and import containerd's stubs."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        root = stubs_dir() / _PKG_PATH
        pkg = sys.modules.get(PACKAGE)
        if pkg is None:
            pkg = types.ModuleType(PACKAGE, "containerd API stubs generated by mason._protos")
            pkg.__path__ = [str(root)]
            pkg.__package__ = PACKAGE
            sys.modules[PACKAGE] = pkg
        elif str(root) not in pkg.__path__:
            raise MasonError(f"{PACKAGE} was already loaded from {pkg.__path__}")

        def mod(name: str) -> types.ModuleType:
            return importlib.import_module(f"{PACKAGE}.{name}")

        kw: dict[str, types.ModuleType] = {}
        for attr, name in _MODULES.items():
            kw[attr] = mod(name + "_pb2")
            kw[attr + "_grpc"] = mod(name + "_pb2_grpc")
        kw["mount"] = mod("api.types.mount_pb2")
        kw["descriptor"] = mod("api.types.descriptor_pb2")
        kw["task"] = mod("api.types.task.task_pb2")
        kw["runc_options"] = mod("runtime.v2.runc.options.oci_pb2")
        _loaded = Stubs(**kw)
        return _loaded
