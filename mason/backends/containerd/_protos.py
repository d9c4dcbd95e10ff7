"""Python gRPC stubs for containerd's API, generated at first use (never committed).

The sources are the ``.proto`` files that Debian's ``golang-github-containerd-containerd-dev``
installs under ``/usr/share/gocode/src``. Before handing them to ``grpc_tools.protoc`` we

* move every file under one Python package, ``mason.backends.containerd._stubs`` (the
  ``github.com/containerd/containerd/`` prefix, and gogo's copy of ``google/rpc``, are rewritten
  in file paths and ``import`` lines), so the generated ``*_pb2`` modules import each other
  without putting a generic top-level package such as ``github`` or ``google.rpc`` on sys.path;
* drop gogo's and containerd's ``fieldpath`` options and their ``import weak`` lines: they only
  steer Go code generation and never change the wire format.

The output lands in ``<cache>/containerd-stubs/<hash of the inputs>/``, written atomically
(:mod:`mason.ir.protogen`, which also does the rewriting). ``_stubs`` is a package object whose
``__path__`` points into that directory; nothing is added to ``sys.path``.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Mapping
from pathlib import Path

from mason.ir import protogen
from mason.ir.errors import MasonError

GOCODE = protogen.GOCODE
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


def _map_import(path: str) -> str | None:
    """Where an imported proto lives in the generated tree; None = provided elsewhere / dropped."""
    if path.startswith(CONTAINERD_SRC + "/"):
        return f"{_PKG_PATH}/{path[len(CONTAINERD_SRC) + 1:]}"
    if path.startswith("google/rpc/"):
        return f"{_PKG_PATH}/{path}"
    return None


def rewrite_proto(text: str) -> tuple[str, list[str]]:
    """Rewrite one of containerd's .proto files (:func:`mason.ir.protogen.rewrite_proto`); return
    the new text and the original paths of the imports that must be compiled with it."""
    return protogen.rewrite_proto(text, _map_import)


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
    return protogen.collect([f"{CONTAINERD_SRC}/{r}" for r in ROOTS], _map_import, _source_file,
                            package_hint=APT_PACKAGE)


def stubs_dir() -> Path:
    """The directory holding the generated tree, generating it if needed."""
    return protogen.generated_tree("containerd-stubs", _collect(), grpc=True, version=GENERATOR_VERSION,
                                   what="containerd's API stubs", packages=[_PKG_PATH])


class Stubs:
    """The generated modules the client uses (``*_pb2`` messages and ``*_pb2_grpc`` stubs), each
    imported on first use: building a service's descriptors is most of the stubs' cost, and a
    rebuild whose steps are all cached never touches tasks, containers or diff (issue 17)."""

    def __init__(self, names: Mapping[str, str]):
        self._names = dict(names)  # attribute -> module

    def __getattr__(self, attr: str) -> types.ModuleType:
        names = self.__dict__.get("_names")
        if names is None or attr not in names:
            raise AttributeError(attr)
        mod = importlib.import_module(names[attr])  # thread-safe; a second import is a lookup
        setattr(self, attr, mod)
        return mod

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

_MESSAGES = {  # modules with messages only
    "mount": "api.types.mount",
    "descriptor": "api.types.descriptor",
    "task": "api.types.task.task",
    "runc_options": "runtime.v2.runc.options.oci",
}


def _load() -> Stubs:
    protogen.mount_package(PACKAGE, stubs_dir() / _PKG_PATH, "containerd API stubs generated by mason")
    names = {}
    for attr, name in _MODULES.items():
        names[attr] = f"{PACKAGE}.{name}_pb2"
        names[attr + "_grpc"] = f"{PACKAGE}.{name}_pb2_grpc"
    for attr, name in _MESSAGES.items():
        names[attr] = f"{PACKAGE}.{name}_pb2"
    return Stubs(names)


_once = protogen.Once(_load)


def load() -> Stubs:
    """Generate (once per machine and input set) and import containerd's stubs (once per process)."""
    return _once()
