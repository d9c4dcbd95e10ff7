"""The values and errors of :mod:`.client`: mason's own small dataclasses for what crosses the
containerd boundary (:class:`Descriptor`, :class:`Mount`, ...), their protobuf conversions, and
:class:`ContainerdError` with its subclasses by gRPC status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from google.protobuf import any_pb2

from mason.backends.containerd import _protos
from mason.ir.errors import MasonError

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options"
RUNTIME = "io.containerd.runc.v2"
SNAPSHOTTER = "overlayfs"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_MEDIA_TYPE_UNCOMPRESSED = "application/vnd.oci.image.layer.v1.tar"
GC_EXPIRE = "containerd.io/gc.expire"
UNCOMPRESSED = "containerd.io/uncompressed"


class ContainerdError(MasonError):
    """A containerd call failed; ``code`` is the gRPC status's name (``"NOT_FOUND"``)."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class NotFound(ContainerdError):
    pass


class AlreadyExists(ContainerdError):
    pass


class Unavailable(ContainerdError):
    pass


ERRORS: dict[str | None, type[ContainerdError]] = {"NOT_FOUND": NotFound, "ALREADY_EXISTS": AlreadyExists,
                                                  "UNAVAILABLE": Unavailable}


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Mount:
    type: str
    source: str
    options: tuple[str, ...] = ()
    target: str = ""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    name: str
    parent: str
    kind: str  # "view" | "active" | "committed"
    labels: Mapping[str, str]
    created_ns: int = 0  # when containerd made it (a committed snapshot: when it was committed), ns since 1970


@dataclass(frozen=True, slots=True)
class ContentInfo:
    digest: str
    size: int
    labels: Mapping[str, str]
    created_ns: int = 0  # when the blob was committed, ns since 1970


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskInfo:
    id: str
    pid: int
    status: str  # "created" | "running" | "stopped" | "paused" | "pausing" | "unknown"
    exit_status: int


def desc_to_pb(pb: _protos.Stubs, d: Descriptor):
    return pb.descriptor.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size,
                                    annotations=dict(d.annotations))


def desc_from_pb(m) -> Descriptor:
    return Descriptor(m.media_type, m.digest, m.size, dict(m.annotations))


def mounts_from_pb(ms) -> list[Mount]:
    return [Mount(m.type, m.source, tuple(m.options), m.target) for m in ms]


def mounts_to_pb(pb: _protos.Stubs, ms: Iterable[Mount]):
    return [pb.mount.Mount(type=m.type, source=m.source, target=m.target, options=list(m.options)) for m in ms]


def snap_from_pb(pb: _protos.Stubs, i) -> SnapshotInfo:
    kind = pb.snapshots.Kind.Name(i.kind).lower()
    return SnapshotInfo(i.name, i.parent, kind, dict(i.labels), timestamp_ns(i.created_at))


LIST_BATCH = 100  # filters in one List request


def quoted(value: str) -> str:
    """``value`` as a quoted string in a containerd filter."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def timestamp_ns(ts) -> int:
    """A protobuf Timestamp in nanoseconds since 1970."""
    return ts.seconds * 1_000_000_000 + ts.nanos


def any_message(type_url: str, value: bytes) -> any_pb2.Any:
    return any_pb2.Any(type_url=type_url, value=value)


__all__ = ["SPEC_TYPE_URL", "RUNC_OPTIONS_TYPE_URL", "RUNTIME", "SNAPSHOTTER", "LAYER_MEDIA_TYPE",
           "LAYER_MEDIA_TYPE_UNCOMPRESSED", "GC_EXPIRE", "UNCOMPRESSED", "ContainerdError", "NotFound",
           "AlreadyExists", "Unavailable", "ERRORS", "Descriptor", "Mount", "SnapshotInfo", "ContentInfo",
           "Image", "TaskInfo", "desc_to_pb", "desc_from_pb", "mounts_from_pb", "mounts_to_pb", "snap_from_pb",
           "LIST_BATCH", "quoted", "timestamp_ns", "any_message"]
