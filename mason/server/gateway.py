"""BuildKit's ``LLBBridge`` (the gateway API) as a BuildKit client drives it next to a Solve.

``buildctl build`` (v0.32) does not put its frontend in ``Control/Solve``: it sends a Solve with
neither a frontend nor a Definition and, on the same connection, runs a *client-side build
function* against ``moby.buildkit.v1.frontend.LLBBridge`` — ``Ping`` (capabilities), ``Solve``
(``dockerfile.v0`` with the frontend options, or the Definition piped in) and finally ``Return``
with the result to export. Every bridge call carries the Solve's ref in the
``buildkit-controlapi-buildid`` header.

mason evaluates lazily, as BuildKit does: a bridge ``Solve`` records what was asked and answers
with a reference to it; the ``Control/Solve`` waiting for ``Return`` then runs the referenced
request (frontend, build, exporters) in one go, so its progress streams through ``Status`` like
a direct Solve's. Calls that need a result *before* ``Return`` (ReadFile, ReadDir, StatFile,
containers) are refused with a clear message, and the capabilities ``Ping`` reports say so.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from mason.ir.errors import MasonError

BUILD_ID_HEADER = "buildkit-controlapi-buildid"
WAIT_FOR_BUILD = 10.0  # seconds a bridge call waits for its Control/Solve to arrive

# Gateway API capabilities mason's bridge implements (BuildKit's frontend/gateway/pb caps IDs).
FRONTEND_CAPS = ("solve.base", "return", "returnmap", "proto.refarray", "importcaches", "gateway.solve.metadata")
# What it does not, with the reason a client reports.
FRONTEND_CAPS_OFF = ("solve.inlinereturn", "resolveimage", "resolveimage.resolvemode", "readfile", "readdir",
                     "statfile", "reference.output", "frontend.inputs", "gateway.exec", "gateway.solve.evaluate",
                     "frontend.caps")
# LLB capabilities (BuildKit's solver/pb caps IDs) a Definition sent to mason may need.
LLB_CAPS = (
    "source.image", "source.image.resolvemode", "source.local", "source.local.unique", "source.local.sessionid",
    "source.local.includepatterns", "source.local.followpaths", "source.local.excludepatterns",
    "source.local.sharedkeyhint", "source.git", "source.git.keepgitdir", "source.git.fullurl",
    "source.git.httpauth", "source.git.knownsshhosts", "source.git.mountsshsock", "source.http",
    "source.http.checksum", "source.http.perm", "soruce.http.uidgid", "exec.meta.base", "exec.meta.proxyenv",
    "exec.meta.network", "exec.meta.security", "exec.meta.setsdefaultpath", "exec.meta.ulimit",
    "exec.meta.hostname", "exec.meta.removemountstubs.recursive", "exec.mount.bind", "exec.mount.cache",
    "exec.mount.cache.sharing", "exec.mount.selector", "exec.mount.tmpfs", "exec.mount.tmpfs.size",
    "exec.mount.secret", "exec.mount.ssh", "exec.secret.env", "exec.meta.validexitcode", "file.base",
    "file.rm.wildcard", "file.copy.includepatterns", "merge.op", "diff.op", "constraints", "platform",
    "meta.ignorecache", "meta.description", "meta.exportcache", "source.date.epoch",
)


@dataclass(frozen=True)
class FrontendCall:
    """What a build asks for: a frontend with its options, or a marshaled Definition."""

    frontend: str = ""
    attrs: Mapping[str, str] = field(default_factory=dict)
    definition: bytes = b""
    # the bridge Solve's cache imports (buildctl's --import-cache): (type, attrs)
    cache_imports: tuple[tuple[str, Mapping[str, str]], ...] = ()

    @classmethod
    def of(cls, request: Any) -> FrontendCall:
        """From a ``Control/Solve`` or an ``LLBBridge/Solve`` request."""
        attrs = request.FrontendAttrs if hasattr(request, "FrontendAttrs") else request.FrontendOpt
        imports: list[tuple[str, Mapping[str, str]]] = []
        if hasattr(request, "CacheImports"):
            imports = [(e.Type, dict(e.Attrs)) for e in request.CacheImports]
            imports += [("registry", {"ref": r}) for r in request.ImportCacheRefsDeprecated]
        return cls(request.Frontend, dict(attrs), request.Definition.SerializeToString()
                   if len(getattr(request.Definition, "def")) else b"", tuple(imports))


class Forwarder:
    """One Control/Solve waiting for its client's build function to ``Return``."""

    def __init__(self, ref: str):
        self.ref = ref
        self.refs: dict[str, FrontendCall] = {}
        self.result: tuple[FrontendCall | None, str | None] | None = None
        self._cond = threading.Condition()

    def add(self, call: FrontendCall) -> str:
        rid = os.urandom(12).hex()
        with self._cond:
            self.refs[rid] = call
        return rid

    def finish(self, call: FrontendCall | None, error: str | None) -> None:
        with self._cond:
            if self.result is None:
                self.result = (call, error)
            self._cond.notify_all()

    def wait(self, cancelled: Callable[[], bool]) -> FrontendCall | None:
        """The returned request (None: an empty result); raises the client's error."""
        with self._cond:
            while self.result is None:
                self._cond.wait(0.5)
                if cancelled():
                    raise MasonError("the build was cancelled before the client returned its result")
            call, error = self.result
        if error is not None:
            raise MasonError(error)
        return call


class Bridge:
    """The ``LLBBridge`` servicer: routes each call to the Forwarder of its Solve."""

    def __init__(self, stubs: Any, worker_record: Callable[[], Any]):
        self.pb = stubs
        self.worker_record = worker_record
        self._by_ref: dict[str, Forwarder] = {}
        self._cond = threading.Condition()

    # -- the daemon's side -------------------------------------------------------------------

    def register(self, ref: str) -> Forwarder:
        fwd = Forwarder(ref)
        with self._cond:
            if ref in self._by_ref:
                raise MasonError(f"a build with ref {ref!r} is already running")
            self._by_ref[ref] = fwd
            self._cond.notify_all()
        return fwd

    def unregister(self, fwd: Forwarder) -> None:
        with self._cond:
            if self._by_ref.get(fwd.ref) is fwd:
                del self._by_ref[fwd.ref]
        fwd.finish(None, "the build ended")

    def _forwarder(self, context: grpc.ServicerContext) -> Forwarder:
        raw = next((v for k, v in context.invocation_metadata() if k.lower() == BUILD_ID_HEADER), "")
        ref = raw if isinstance(raw, str) else raw.decode()
        if not ref:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no {BUILD_ID_HEADER} header: which build is this for?")
        with self._cond:
            if not self._cond.wait_for(lambda: ref in self._by_ref, WAIT_FOR_BUILD):
                context.abort(grpc.StatusCode.NOT_FOUND, f"no build {ref!r} is waiting for a gateway client")
            return self._by_ref[ref]

    # -- LLBBridge ---------------------------------------------------------------------------

    def Ping(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        self._forwarder(context)
        g, caps = self.pb.gateway, self.pb.caps
        resp = g.PongResponse()
        resp.FrontendAPICaps.extend(caps.APICap(ID=c, Enabled=True) for c in FRONTEND_CAPS)
        resp.FrontendAPICaps.extend(caps.APICap(ID=c, Enabled=False, DisabledReason="mason",
                                                DisabledReasonMsg="not implemented by mason serve")
                                    for c in FRONTEND_CAPS_OFF)
        resp.LLBCaps.extend(caps.APICap(ID=c, Enabled=True) for c in LLB_CAPS)
        resp.Workers.append(self.worker_record())
        return resp

    def Solve(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        fwd = self._forwarder(context)
        call = FrontendCall.of(request)
        if not call.frontend and not call.definition:
            return self.pb.gateway.SolveResponse(result=self.pb.gateway.Result())  # an empty result
        if "requestid" in call.attrs:
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f"mason serve: the frontend subrequest {call.attrs['requestid']!r} is not supported yet")
        if request.Evaluate:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "mason serve: evaluating a result before Return "
                          "is not supported yet")
        rid = fwd.add(call)
        g = self.pb.gateway
        return g.SolveResponse(result=g.Result(ref=g.Ref(id=rid)))

    def Return(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        fwd = self._forwarder(context)
        if request.HasField("error") and request.error.code:
            fwd.finish(None, request.error.message or f"the client's build failed (code {request.error.code})")
            return self.pb.gateway.ReturnResponse()
        res = request.result
        kind = res.WhichOneof("result")
        ids: list[str] = []
        if kind == "ref":
            ids = [res.ref.id]
        elif kind == "refDeprecated":
            ids = [res.refDeprecated]
        elif kind == "refs":
            ids = sorted({r.id for r in res.refs.refs.values()})
        elif kind == "refsDeprecated":
            ids = sorted(set(res.refsDeprecated.refs.values()))
        ids = [i for i in ids if i]
        if len(ids) > 1:
            fwd.finish(None, "mason serve: a result with several references is not supported yet")
        elif not ids:
            fwd.finish(None, None)
        elif ids[0] not in fwd.refs:
            fwd.finish(None, f"the client returned an unknown reference {ids[0]!r}")
        else:
            fwd.finish(fwd.refs[ids[0]], None)
        return self.pb.gateway.ReturnResponse()

    def _unsupported(self, what: str) -> Callable[[Any, grpc.ServicerContext], Any]:
        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"mason serve: {what} is not supported yet")

        return deny

    def __getattr__(self, name: str) -> Any:
        # every other LLBBridge call (ResolveImageConfig, ReadFile, …, and any the stubs gain
        # later, e.g. ResolveSourceMeta) is one clear UNIMPLEMENTED, never a daemon that cannot start
        if name[:1].isupper() and not name.startswith("_"):
            return self._unsupported(f"the gateway call {name}")
        raise AttributeError(name)


def register(server: grpc.Server, stubs: Any, bridge: Bridge) -> None:
    stubs.gateway_grpc.add_LLBBridgeServicer_to_server(bridge, server)
