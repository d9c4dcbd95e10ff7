"""A thin, typed client for the parts of containerd's gRPC API the solver uses.

Every call carries ``containerd-namespace``; a client bound to a lease (``with_lease``,
``lease()``) also carries ``containerd-lease``, so everything it creates is protected from GC
until the lease goes. Values cross this boundary as mason's own small dataclasses
(:class:`Descriptor`, :class:`Mount`, ...): no generated protobuf type leaks out of
``backends/containerd``. gRPC failures become :class:`ContainerdError` (a ``MasonError``) naming
the call, never a gRPC traceback. The values, errors and their protobuf conversions are in
:mod:`.client_types` (re-exported here).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from google.protobuf import field_mask_pb2

from mason.backends.containerd import _protos
from mason.backends.containerd.client_types import (
    ERRORS,
    GC_EXPIRE,
    LAYER_MEDIA_TYPE,
    LAYER_MEDIA_TYPE_UNCOMPRESSED,
    LIST_BATCH,
    RUNC_OPTIONS_TYPE_URL,
    RUNTIME,
    SNAPSHOTTER,
    SPEC_TYPE_URL,
    UNCOMPRESSED,
    AlreadyExists,
    ContainerdError,
    ContentInfo,
    Descriptor,
    Image,
    Mount,
    NotFound,
    SnapshotInfo,
    TaskInfo,
    Unavailable,
    any_message,
    desc_from_pb,
    desc_to_pb,
    mounts_from_pb,
    mounts_to_pb,
    quoted,
    snap_from_pb,
    timestamp_ns,
)
from mason.backends.containerd.daemon import NAMESPACE, socket_path
from mason.backends.containerd.h2rpc import Channel, RpcError, Stub

__all__ = ["Client", "connect", "SPEC_TYPE_URL", "RUNC_OPTIONS_TYPE_URL", "RUNTIME", "SNAPSHOTTER",
           "LAYER_MEDIA_TYPE", "LAYER_MEDIA_TYPE_UNCOMPRESSED", "GC_EXPIRE", "UNCOMPRESSED", "ContainerdError",
           "NotFound", "AlreadyExists", "Unavailable", "Descriptor", "Mount", "SnapshotInfo", "ContentInfo",
           "Image", "TaskInfo"]

_CHUNK = 1 << 20

_NO_SPACE = re.compile(r"(?:write|open|mkdir|create) (\S+?):? no space left on device", re.IGNORECASE)


# -- client ---------------------------------------------------------------------------------


def rpc_errors() -> tuple[type[Exception], ...]:
    """The exceptions a failed call raises: h2rpc's, and grpc's once grpc is loaded. (Another
    thread may be importing grpc: the module is then in sys.modules without its RpcError yet,
    and no grpc call can have failed.)"""
    g = getattr(sys.modules.get("grpc"), "RpcError", None)
    return (RpcError, g) if g is not None else (RpcError,)



class Client:
    """A connection to one containerd, in one namespace, optionally inside one lease.

    ``with_lease`` and ``in_namespace`` return views sharing the channel; closing any closes
    the channel (close the one you created)."""

    def __init__(self, address: str, namespace: str = NAMESPACE, *, lease: str | None = None,
                 timeout: float | None = 60.0, _channel: Channel | None = None):
        self.address = socket_path(address)
        self.namespace = namespace
        self.lease_id = lease
        self.timeout = timeout
        self.pb = _protos.load()
        if _channel is None:
            _channel = Channel(self.address, options=[("grpc.max_receive_message_length", 64 << 20),
                                                      ("grpc.max_send_message_length", 64 << 20)])
        self.channel = _channel
        md = [("containerd-namespace", namespace)]
        if lease:
            md.append(("containerd-lease", lease))
        self._md = tuple(md)

    # each service's stub is made on first use (its generated modules load then: _protos.Stubs).
    # Unary and server-streaming calls go over mason's own HTTP/2 client (h2rpc: no grpc import
    # for a rebuild whose steps are all cached); Content.Write and the tasks service (Wait is
    # a future) use the generated stubs on the grpc channel.
    def _stub(self, module: str, service: str):
        mod = getattr(self.pb, module)
        return Stub(self.channel, mod.DESCRIPTOR.services_by_name[service],
                    lambda: getattr(getattr(self.pb, module + "_grpc"), service + "Stub")(self.channel.grpc()))

    @functools.cached_property
    def _namespaces(self):
        return self._stub("namespaces", "Namespaces")

    @functools.cached_property
    def _leases(self):
        return self._stub("leases", "Leases")

    @functools.cached_property
    def _content(self):
        return self._stub("content", "Content")

    @functools.cached_property
    def _snapshots(self):
        return self._stub("snapshots", "Snapshots")

    @functools.cached_property
    def _diff(self):
        return self._stub("diff", "Diff")

    @functools.cached_property
    def _containers(self):
        return self._stub("containers", "Containers")

    @functools.cached_property
    def _tasks(self):
        return self.pb.tasks_grpc.TasksStub(self.channel.grpc())

    @functools.cached_property
    def _images(self):
        return self._stub("images", "Images")

    @functools.cached_property
    def _version(self):
        return self._stub("version", "Version")

    # -- plumbing ---------------------------------------------------------------------------

    def in_namespace(self, namespace: str) -> "Client":
        return Client(self.address, namespace, lease=self.lease_id, timeout=self.timeout, _channel=self.channel)

    def with_lease(self, lease: str | None) -> "Client":
        return Client(self.address, self.namespace, lease=lease, timeout=self.timeout, _channel=self.channel)

    def close(self) -> None:
        self.channel.close()

    def wait_ready(self, timeout: float) -> None:
        """Wait until the channel is connected (after containerd came back: gRPC reconnects
        only after its back-off); :class:`Unavailable` if it is not within ``timeout``."""
        deadline = time.monotonic() + timeout
        if not self.channel.wait_ready(timeout):
            raise Unavailable(f"containerd at {self.address} is not answering (connect)")
        if self.channel.has_grpc():
            import grpc

            try:
                grpc.channel_ready_future(self.channel.grpc()).result(timeout=max(0.1, deadline - time.monotonic()))
            except grpc.FutureTimeoutError:
                raise Unavailable(f"containerd at {self.address} is not answering (connect)") from None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, method, request, *, timeout: float | None | bool = True):
        t = self.timeout if timeout is True else timeout
        try:
            return method(request, metadata=self._md, timeout=t)
        except rpc_errors() as e:
            raise self._error(what, e) from None

    def _error(self, what: str, e: Exception) -> ContainerdError:
        """A :class:`ContainerdError` of an h2rpc or grpc failure; its ``code`` is the status's
        name (``"NOT_FOUND"``)."""
        raw = e.code() if hasattr(e, "code") else None
        code = raw if isinstance(raw, str) or raw is None else getattr(raw, "name", str(raw))
        details = e.details() if hasattr(e, "details") else str(e)
        if code == "UNAVAILABLE":
            return Unavailable(f"containerd at {self.address} is not answering ({what}): {details}", code)
        cls = ERRORS.get(code, ContainerdError)
        if (full := _NO_SPACE.search(details or "")) is not None:  # the chain of wrappers says little more
            return cls(f"containerd: {what}: no space left on device (writing {full.group(1)})", code)
        return cls(f"containerd: {what}: {details}", code)

    # -- version, namespaces ----------------------------------------------------------------

    def version(self) -> str:
        from google.protobuf import empty_pb2

        return self._call("version", self._version.Version, empty_pb2.Empty(), timeout=10).version

    def ensure_namespace(self, name: str | None = None, labels: Mapping[str, str] | None = None) -> None:
        name = name or self.namespace
        req = self.pb.namespaces.CreateNamespaceRequest(
            namespace=self.pb.namespaces.Namespace(name=name, labels=dict(labels or {})))
        with contextlib.suppress(AlreadyExists):
            self._call(f"create namespace {name}", self._namespaces.Create, req)

    def list_namespaces(self) -> list[str]:
        r = self._call("list namespaces", self._namespaces.List, self.pb.namespaces.ListNamespacesRequest())
        return [n.name for n in r.namespaces]

    # -- leases -----------------------------------------------------------------------------

    def create_lease(self, lease_id: str | None = None, *, expire: float | None = 24 * 3600,
                     labels: Mapping[str, str] | None = None) -> str:
        """Create a lease; ``expire`` seconds from now containerd's GC may drop it (a crashed
        build's lease must not pin its garbage forever)."""
        lease_id = lease_id or f"mason-{uuid.uuid4().hex[:16]}"
        lab = dict(labels or {})
        if expire is not None:
            lab[GC_EXPIRE] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expire))
        req = self.pb.leases.CreateRequest(id=lease_id, labels=lab)
        return self._call(f"create lease {lease_id}", self._leases.Create, req).lease.id

    def delete_lease(self, lease_id: str, *, sync: bool = False) -> None:
        self._call(f"delete lease {lease_id}", self._leases.Delete,
                   self.pb.leases.DeleteRequest(id=lease_id, sync=sync))

    def list_leases(self, filters: Sequence[str] = ()) -> dict[str, dict[str, str]]:
        r = self._call("list leases", self._leases.List, self.pb.leases.ListRequest(filters=list(filters)))
        return {le.id: dict(le.labels) for le in r.leases}

    def add_lease_resource(self, lease_id: str, resource_id: str, resource_type: str) -> None:
        """Put an existing object into a lease (``resource_type`` like ``snapshots/overlayfs``
        or ``content``)."""
        req = self.pb.leases.AddResourceRequest(
            id=lease_id, resource=self.pb.leases.Resource(id=resource_id, type=resource_type))
        self._call(f"add {resource_type} {resource_id} to lease {lease_id}", self._leases.AddResource, req)

    def list_lease_resources(self, lease_id: str) -> list[tuple[str, str]]:
        """The (id, type) of every object a lease holds."""
        r = self._call(f"list resources of lease {lease_id}", self._leases.ListResources,
                       self.pb.leases.ListResourcesRequest(id=lease_id))
        return [(x.id, x.type) for x in r.resources]

    def delete_lease_resource(self, lease_id: str, resource_id: str, resource_type: str) -> None:
        """Take an object out of a lease (the object stays unless nothing else holds it)."""
        req = self.pb.leases.DeleteResourceRequest(
            id=lease_id, resource=self.pb.leases.Resource(id=resource_id, type=resource_type))
        self._call(f"remove {resource_type} {resource_id} from lease {lease_id}", self._leases.DeleteResource, req)

    @contextlib.contextmanager
    def lease(self, *, expire: float | None = 24 * 3600, labels: Mapping[str, str] | None = None,
              sync_delete: bool = False) -> Iterator["Client"]:
        """A client whose calls run inside a new lease, deleted at the end of the block."""
        lease_id = self.create_lease(expire=expire, labels=labels)
        try:
            yield self.with_lease(lease_id)
        finally:
            with contextlib.suppress(NotFound, Unavailable):
                self.delete_lease(lease_id, sync=sync_delete)

    # -- content ----------------------------------------------------------------------------

    def write_blob(self, data: bytes | Iterable[bytes], *, digest: str | None = None, size: int | None = None,
                   labels: Mapping[str, str] | None = None, ref: str | None = None) -> ContentInfo:
        """Write a blob to the content store through the Write stream and commit it with
        ``labels``. ``data`` is bytes or an iterable of chunks (then ``digest`` and ``size``
        are needed, or the blob is buffered). Writing a blob that exists writes nothing; it only
        joins the client's lease (and gets the labels it lacks)."""
        if not isinstance(data, (bytes, bytearray, memoryview)) and (digest is None or size is None):
            data = b"".join(data)
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
            digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
            size = len(data) if size is None else size
            chunks: Iterable[bytes] = (data[i:i + _CHUNK] for i in range(0, len(data), _CHUNK))
        else:
            chunks = data
        assert digest is not None and size is not None
        if self.lease_id:
            # First into the lease, then looked at: a blob found to exist (held by another
            # lease, or garbage GC has not collected yet) must not vanish before whatever the
            # caller writes next (a manifest's labels, an image record) holds it — containerd's
            # own Writer leases an existing blob the same way when the digest is expected.
            with contextlib.suppress(NotFound):
                self.add_lease_resource(self.lease_id, digest, "content")
        try:
            have = self.content_info(digest)
        except NotFound:
            pass
        else:  # there already: label it only where it differs (an Update is a write containerd syncs)
            if labels and any(have.labels.get(k) != v for k, v in labels.items()):
                self.update_content_labels(digest, labels)
                return self.content_info(digest)
            return have
        ref = ref or f"mason-write-{digest.split(':', 1)[-1][:32]}-{uuid.uuid4().hex[:8]}"
        pb = self.pb.content

        def requests() -> Iterator[Any]:
            yield pb.WriteContentRequest(action=pb.STAT, ref=ref)
            offset = 0
            for chunk in chunks:
                if chunk:
                    yield pb.WriteContentRequest(action=pb.WRITE, ref=ref, offset=offset, data=chunk,
                                                 total=size, expected=digest)
                    offset += len(chunk)
            yield pb.WriteContentRequest(action=pb.COMMIT, ref=ref, offset=offset, total=size,
                                         expected=digest, labels=dict(labels or {}))

        try:
            for _ in self._content.Write(requests(), metadata=self._md, timeout=None):
                pass
        except rpc_errors() as e:
            err = self._error(f"write blob {digest}", e)
            if isinstance(err, AlreadyExists):
                return self.content_info(digest)
            with contextlib.suppress(ContainerdError):
                self._call("abort write", self._content.Abort, pb.AbortRequest(ref=ref))
            raise err from None
        return self.content_info(digest)

    def read_blob(self, digest: str) -> bytes:
        return b"".join(self.read_blob_chunks(digest))

    def read_blob_chunks(self, digest: str, offset: int = 0) -> Iterator[bytes]:
        req = self.pb.content.ReadContentRequest(digest=digest, offset=offset)
        try:
            for r in self._content.Read(req, metadata=self._md, timeout=None):
                yield r.data
        except rpc_errors() as e:
            raise self._error(f"read blob {digest}", e) from None

    def content_info(self, digest: str) -> ContentInfo:
        i = self._call(f"content info {digest}", self._content.Info, self.pb.content.InfoRequest(digest=digest)).info
        return ContentInfo(i.digest, i.size, dict(i.labels), timestamp_ns(i.created_at))

    def content_exists(self, digest: str) -> bool:
        try:
            self.content_info(digest)
            return True
        except NotFound:
            return False

    def update_content_labels(self, digest: str, labels: Mapping[str, str]) -> None:
        pb = self.pb.content
        req = pb.UpdateRequest(info=pb.Info(digest=digest, labels=dict(labels)),
                               update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]))
        self._call(f"label blob {digest}", self._content.Update, req)

    def delete_content(self, digest: str) -> None:
        self._call(f"delete blob {digest}", self._content.Delete, self.pb.content.DeleteContentRequest(digest=digest))

    def content_infos(self, digests: Iterable[str]) -> dict[str, ContentInfo]:
        """The blobs among ``digests`` that are in the content store, by digest, in one round
        trip per 100 (as :meth:`snapshot_infos`)."""
        ds = list(dict.fromkeys(digests))
        out: dict[str, ContentInfo] = {}
        for i in range(0, len(ds), LIST_BATCH):
            out.update((c.digest, c) for c in self.list_content([f"digest=={quoted(d)}" for d in ds[i:i + LIST_BATCH]]))
        return out

    def list_content(self, filters: Iterable[str] = ()) -> list[ContentInfo]:
        out: list[ContentInfo] = []
        req = self.pb.content.ListContentRequest(filters=list(filters))
        try:
            for r in self._content.List(req, metadata=self._md, timeout=self.timeout):
                out.extend(ContentInfo(i.digest, i.size, dict(i.labels), timestamp_ns(i.created_at)) for i in r.info)
        except rpc_errors() as e:
            raise self._error("list content", e) from None
        return out

    # -- snapshots (overlayfs) --------------------------------------------------------------

    def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        req = self.pb.snapshots.PrepareSnapshotRequest(snapshotter=SNAPSHOTTER, key=key, parent=parent,
                                                       labels=dict(labels or {}))
        return mounts_from_pb(self._call(f"prepare snapshot {key}", self._snapshots.Prepare, req).mounts)

    def view(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> list[Mount]:
        req = self.pb.snapshots.ViewSnapshotRequest(snapshotter=SNAPSHOTTER, key=key, parent=parent,
                                                    labels=dict(labels or {}))
        return mounts_from_pb(self._call(f"view snapshot {parent}", self._snapshots.View, req).mounts)

    def mounts(self, key: str) -> list[Mount]:
        req = self.pb.snapshots.MountsRequest(snapshotter=SNAPSHOTTER, key=key)
        return mounts_from_pb(self._call(f"mounts of snapshot {key}", self._snapshots.Mounts, req).mounts)

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        req = self.pb.snapshots.CommitSnapshotRequest(snapshotter=SNAPSHOTTER, name=name, key=key,
                                                      labels=dict(labels or {}))
        self._call(f"commit snapshot {key} as {name}", self._snapshots.Commit, req)

    def update_snapshot_labels(self, key: str, labels: Mapping[str, str]) -> None:
        """Set ``labels`` on a snapshot (other labels kept)."""
        pb = self.pb.snapshots
        req = pb.UpdateSnapshotRequest(snapshotter=SNAPSHOTTER, info=pb.Info(name=key, labels=dict(labels)),
                                       update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]))
        self._call(f"label snapshot {key}", self._snapshots.Update, req)

    def remove_snapshot(self, key: str) -> None:
        req = self.pb.snapshots.RemoveSnapshotRequest(snapshotter=SNAPSHOTTER, key=key)
        self._call(f"remove snapshot {key}", self._snapshots.Remove, req)

    def stat_snapshot(self, key: str) -> SnapshotInfo:
        req = self.pb.snapshots.StatSnapshotRequest(snapshotter=SNAPSHOTTER, key=key)
        return snap_from_pb(self.pb, self._call(f"stat snapshot {key}", self._snapshots.Stat, req).info)

    def snapshot_exists(self, key: str) -> bool:
        try:
            self.stat_snapshot(key)
            return True
        except NotFound:
            return False

    def snapshot_infos(self, keys: Iterable[str]) -> dict[str, SnapshotInfo]:
        """The snapshots among ``keys`` that exist, by key, in one round trip per 100 keys
        (containerd ORs a List's filters) instead of a Stat each."""
        names = list(dict.fromkeys(keys))
        out: dict[str, SnapshotInfo] = {}
        for i in range(0, len(names), LIST_BATCH):
            batch = [f"name=={quoted(n)}" for n in names[i:i + LIST_BATCH]]
            out.update((s.name, s) for s in self.list_snapshots(batch))
        return out

    def list_snapshots(self, filters: Iterable[str] = ()) -> list[SnapshotInfo]:
        req = self.pb.snapshots.ListSnapshotsRequest(snapshotter=SNAPSHOTTER, filters=list(filters))
        out: list[SnapshotInfo] = []
        try:
            for r in self._snapshots.List(req, metadata=self._md, timeout=self.timeout):
                out.extend(snap_from_pb(self.pb, i) for i in r.info)
        except rpc_errors() as e:
            raise self._error("list snapshots", e) from None
        return out

    # -- diff -------------------------------------------------------------------------------

    def apply(self, layer: Descriptor, mounts: Iterable[Mount]) -> Descriptor:
        """Unpack a layer blob (already in the content store) onto ``mounts``."""
        req = self.pb.diff.ApplyRequest(diff=desc_to_pb(self.pb, layer), mounts=mounts_to_pb(self.pb, mounts))
        return desc_from_pb(self._call(f"apply layer {layer.digest}", self._diff.Apply, req, timeout=None).applied)

    def diff(self, lower: Iterable[Mount], upper: Iterable[Mount], *, media_type: str = LAYER_MEDIA_TYPE,
             ref: str | None = None, labels: Mapping[str, str] | None = None) -> Descriptor:
        """Compute the layer between two mounted trees, store it as a blob, return its
        descriptor (the blob carries ``containerd.io/uncompressed``)."""
        req = self.pb.diff.DiffRequest(left=mounts_to_pb(self.pb, lower), right=mounts_to_pb(self.pb, upper),
                                       media_type=media_type, ref=ref or f"mason-diff-{uuid.uuid4().hex[:16]}",
                                       labels=dict(labels or {}))
        return desc_from_pb(self._call("diff", self._diff.Diff, req, timeout=None).diff)

    # -- containers ---------------------------------------------------------------------------

    def create_container(self, container_id: str, spec: Mapping[str, Any], *, snapshot_key: str = "",
                         runc_root: str | None = None, labels: Mapping[str, str] | None = None,
                         runtime: str = RUNTIME) -> None:
        """Create a container whose OCI runtime spec is ``spec`` (a JSON-able dict)."""
        pb = self.pb
        opts = pb.runc_options.Options(root=runc_root or "")
        c = pb.containers.Container(
            id=container_id,
            labels=dict(labels or {}),
            runtime=pb.containers.Container.Runtime(
                name=runtime, options=any_message(RUNC_OPTIONS_TYPE_URL, opts.SerializeToString())),
            spec=any_message(SPEC_TYPE_URL, json.dumps(spec, separators=(",", ":")).encode()),
            snapshotter=SNAPSHOTTER if snapshot_key else "",
            snapshot_key=snapshot_key,
        )
        self._call(f"create container {container_id}", self._containers.Create,
                   pb.containers.CreateContainerRequest(container=c))

    def delete_container(self, container_id: str) -> None:
        self._call(f"delete container {container_id}", self._containers.Delete,
                   self.pb.containers.DeleteContainerRequest(id=container_id))

    def list_containers(self, filters: Iterable[str] = ()) -> list[str]:
        r = self._call("list containers", self._containers.List,
                       self.pb.containers.ListContainersRequest(filters=list(filters)))
        return [c.id for c in r.containers]

    def list_container_snapshots(self) -> list[str]:
        """The snapshot keys of every container on mason's snapshotter (what a GC must keep)."""
        r = self._call("list containers", self._containers.List, self.pb.containers.ListContainersRequest())
        return [c.snapshot_key for c in r.containers if c.snapshot_key and c.snapshotter in ("", SNAPSHOTTER)]

    def container_labels(self, container_id: str) -> dict[str, str]:
        r = self._call(f"get container {container_id}", self._containers.Get,
                       self.pb.containers.GetContainerRequest(id=container_id))
        return dict(r.container.labels)

    # -- tasks --------------------------------------------------------------------------------

    def create_task(self, container_id: str, rootfs: Iterable[Mount], *, stdout: str = "", stderr: str = "",
                    stdin: str = "") -> int:
        """Create (not start) the container's init process; ``stdout``/``stderr`` are FIFO
        paths or ``file://`` URIs. Returns the PID."""
        req = self.pb.tasks.CreateTaskRequest(container_id=container_id, rootfs=mounts_to_pb(self.pb, rootfs),
                                              stdin=stdin, stdout=stdout, stderr=stderr)
        return self._call(f"create task {container_id}", self._tasks.Create, req).pid

    def start_task(self, container_id: str) -> int:
        return self._call(f"start task {container_id}", self._tasks.Start,
                          self.pb.tasks.StartRequest(container_id=container_id)).pid

    def wait_task_future(self, container_id: str):
        """Tasks.Wait as a gRPC future (``.result()`` gives the response; it can be cancelled)."""
        return self._tasks.Wait.future(self.pb.tasks.WaitRequest(container_id=container_id),
                                       metadata=self._md, timeout=None)

    def wait_task(self, container_id: str, timeout: float | None = None) -> int:
        """Block until the task exits; returns its exit status. Polls so Ctrl-C gets through."""
        import grpc

        fut = self.wait_task_future(container_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                try:
                    return fut.result(timeout=0.25).exit_status
                except grpc.FutureTimeoutError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise ContainerdError(f"containerd: wait for task {container_id}: timed out") from None
                except grpc.RpcError as e:
                    raise self._error(f"wait for task {container_id}", e) from None
        finally:
            fut.cancel()

    def kill_task(self, container_id: str, sig: int = 9, *, all: bool = True) -> None:
        self._call(f"kill task {container_id}", self._tasks.Kill,
                   self.pb.tasks.KillRequest(container_id=container_id, signal=sig, all=all))

    def delete_task(self, container_id: str) -> int:
        """Delete a stopped (or created) task; returns its exit status."""
        return self._call(f"delete task {container_id}", self._tasks.Delete,
                          self.pb.tasks.DeleteTaskRequest(container_id=container_id)).exit_status

    def task(self, container_id: str) -> TaskInfo:
        p = self._call(f"get task {container_id}", self._tasks.Get,
                       self.pb.tasks.GetRequest(container_id=container_id)).process
        return TaskInfo(p.container_id or p.id, p.pid, self.pb.task.Status.Name(p.status).lower(), p.exit_status)

    def list_tasks(self) -> list[str]:
        r = self._call("list tasks", self._tasks.List, self.pb.tasks.ListTasksRequest())
        return [t.container_id or t.id for t in r.tasks]

    def force_delete_task(self, container_id: str, timeout: float = 10.0) -> None:
        """Kill (SIGKILL) a task if it runs, wait for it, delete it; missing tasks are fine."""
        try:
            info = self.task(container_id)
        except NotFound:
            return
        if info.status in ("running", "paused", "pausing"):
            with contextlib.suppress(NotFound):
                self.kill_task(container_id, 9, all=True)
            with contextlib.suppress(NotFound):
                self.wait_task(container_id, timeout=timeout)
        with contextlib.suppress(NotFound):
            self.delete_task(container_id)

    # -- images -------------------------------------------------------------------------------

    def _image_pb(self, image: Image):
        return self.pb.images.Image(name=image.name, target=desc_to_pb(self.pb, image.target),
                                    labels=dict(image.labels))

    @staticmethod
    def _image_from_pb(i) -> Image:
        return Image(i.name, desc_from_pb(i.target), dict(i.labels))

    def create_image(self, image: Image) -> Image:
        r = self._call(f"create image {image.name}", self._images.Create,
                       self.pb.images.CreateImageRequest(image=self._image_pb(image)))
        return self._image_from_pb(r.image)

    def update_image(self, image: Image) -> Image:
        """Point an existing image name at a new target (and labels)."""
        req = self.pb.images.UpdateImageRequest(image=self._image_pb(image))
        return self._image_from_pb(self._call(f"update image {image.name}", self._images.Update, req).image)

    def put_image(self, image: Image) -> Image:
        """Create the image, or update it if the name exists."""
        try:
            return self.create_image(image)
        except AlreadyExists:
            return self.update_image(image)

    def get_image(self, name: str) -> Image:
        r = self._call(f"get image {name}", self._images.Get, self.pb.images.GetImageRequest(name=name))
        return self._image_from_pb(r.image)

    def list_images(self, filters: Iterable[str] = ()) -> list[Image]:
        r = self._call("list images", self._images.List, self.pb.images.ListImagesRequest(filters=list(filters)))
        return [self._image_from_pb(i) for i in r.images]

    def delete_image(self, name: str, *, sync: bool = False) -> None:
        self._call(f"delete image {name}", self._images.Delete, self.pb.images.DeleteImageRequest(name=name, sync=sync))


def connect(address: str | None = None, root: str | None = None, *, namespace: str = NAMESPACE) -> Client:
    """A client for the daemon :func:`~mason.backends.containerd.daemon.resolve_address` picks,
    with the namespace created."""
    from mason.backends.containerd.daemon import resolve_address

    c = Client(resolve_address(address, root), namespace)
    c.ensure_namespace()
    return c
