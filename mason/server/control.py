"""BuildKit's ``moby.buildkit.v1.Control`` service on mason's solver and cache.

One :class:`Control` per daemon holds the open :class:`~mason.backends.solver.solver.Solver`
(containerd connection, result store). The cache calls (``ListWorkers``, ``DiskUsage``,
``Prune``, ``Info``) answer from it directly; builds (``Solve``, ``Status``, ``Session``) are in
:mod:`mason.server.solve` and :mod:`mason.server.session`.
"""

from __future__ import annotations

import platform
import threading
from typing import Any

import grpc

from mason.ir.errors import MasonError

VERSION_PACKAGE = "mason"
WORKER_ID = "mason"


def _version() -> str:
    try:
        from importlib.metadata import version

        return "v" + version("mason")
    except Exception:  # noqa: BLE001 - metadata missing in an odd install: still answer
        return "v0.0.0+unknown"


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def _ts(pb_ts: Any, seconds: float) -> None:
    pb_ts.FromNanoseconds(int(seconds * 1e9))


class Control:
    """The servicer (registered with :func:`register`); ``solver`` is an open Solver."""

    def __init__(self, stubs: Any, solver: Any):
        self.pb = stubs
        self.solver = solver
        self._lock = threading.Lock()
        self.builds: Any = None  # mason.server.solve.Builds, set by the daemon
        self.sessions: Any = None  # mason.server.session.Sessions

    # -- cache and worker calls ------------------------------------------------------------

    def worker_record(self) -> Any:
        """The one worker (this daemon), as ListWorkers and the gateway's Ping report it."""
        rec = self.pb.worker.WorkerRecord(ID=WORKER_ID, Labels={
            "org.mobyproject.buildkit.worker.executor": "containerd",
            "org.mobyproject.buildkit.worker.snapshotter": "overlayfs",
            "org.mobyproject.buildkit.worker.hostname": platform.node(),
            "org.mobyproject.buildkit.worker.network": "host",
        })
        rec.platforms.add(OS="linux", Architecture=_arch())
        rec.BuildkitVersion.package = VERSION_PACKAGE
        rec.BuildkitVersion.version = _version()
        return rec

    def ListWorkers(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        return self.pb.control.ListWorkersResponse(record=[self.worker_record()])

    def Info(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        resp = self.pb.control.InfoResponse()
        resp.buildkitVersion.package = VERSION_PACKAGE
        resp.buildkitVersion.version = _version()
        return resp

    def _usage_record(self, u: Any) -> Any:
        r = self.pb.control.UsageRecord(ID=u.key, Mutable=False, InUse=u.in_use, Size=u.size, Shared=u.shared,
                                        Description=u.description, RecordType="regular", UsageCount=1)
        _ts(r.CreatedAt, u.created)
        _ts(r.LastUsedAt, u.last_used)
        return r

    def DiskUsage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        from mason.backends.solver.gc import disk_usage

        if list(request.filter):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "mason serve: du filters are not supported yet")
        records = disk_usage(self.solver.client, self.solver.store)
        return self.pb.control.DiskUsageResponse(record=[self._usage_record(u) for u in records])

    def Prune(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        import time

        from mason.backends.solver.gc import prune

        if list(request.filter):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "mason serve: prune filters are not supported yet")
        keep = request.keepBytes or None
        until = time.time() - request.keepDuration / 1e9 if request.keepDuration else None
        with self._lock:  # one prune at a time; builds hold their results by claims and leases
            try:
                report = prune(self.solver.client, self.solver.store, all=request.all, keep_storage=keep,
                               until=until)
            except MasonError as e:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, e.format())
        for u in report.records:
            yield self._usage_record(u)

    # -- builds ------------------------------------------------------------------------------

    def Solve(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if self.builds is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "mason serve: builds are not available")
        return self.builds.solve(request, context)

    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if self.builds is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "mason serve: builds are not available")
        yield from self.builds.status(request, context)

    def Session(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if self.sessions is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "mason serve: sessions are not available")
        yield from self.sessions.serve(request_iterator, context)


def register(server: grpc.Server, stubs: Any, control: Control) -> None:
    stubs.control_grpc.add_ControlServicer_to_server(control, server)
