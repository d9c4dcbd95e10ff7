"""The ``LLBBridge`` a frontend image talks to: BuildKit's gateway API, served eagerly.

``mason serve``'s bridge (:mod:`mason.server.gateway`) is lazy: a buildctl client only builds a
request and returns it. A frontend *image* needs answers before it returns — it reads the build
file (``ReadFile`` on ``local://dockerfile``), looks at directories, resolves base images — so
this bridge solves what it is asked to read at once, in the build session it is given, and reads
the result's files from a read-only view of its snapshot (every path resolved inside it).

Calls: Ping (the caps below), Solve (a Definition; ``Evaluate`` solves it now; a ``Frontend``
— ``dockerfile.v0``, ``gateway.v0`` — goes to the ``frontend`` callback), ReadFile, ReadDir, StatFile,
ResolveImageConfig, Evaluate, Inputs, Warn, Return. Containers (``NewContainer`` …) are refused
with a clear message, and Ping says so.
"""

from __future__ import annotations

import fnmatch
import json
import os
import stat as statmod
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from mason.ir.errors import MasonError
from mason.server.gateway import FRONTEND_CAPS_OFF, LLB_CAPS
from mason.server.transfer import go_mode

# Gateway API caps this bridge implements (BuildKit's frontend/gateway/pb IDs).
CAPS = ("solve.base", "solve.inlinereturn", "resolveimage", "resolveimage.resolvemode", "readfile", "readdir",
        "statfile", "return", "returnmap", "proto.refarray", "frontend.inputs", "gateway.solve.metadata",
        "gateway.solve.evaluate", "gateway.evaluate", "gateway.warnings", "source.metaresolver")
CAPS_OFF = tuple(c for c in FRONTEND_CAPS_OFF + ("importcaches", "source.metaresolver", "reference.attestations")
                 if c not in CAPS)
READ_LIMIT = 64 << 20  # bytes one ReadFile returns at most without a range


@dataclass
class Returned:
    """What the frontend returned: the graph (one output per platform key, ``default`` for a
    single ref), the result's metadata, or its error."""

    refs: dict[str, Any] = field(default_factory=dict)  # key ("default" or platform) -> Graph
    metadata: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


class FrontendBridge:
    """The LLBBridge servicer for one frontend run.

    ``solve(graph) -> Result`` solves a graph in the build's session; ``view(result)`` is a
    context manager giving a read-only directory of a result's files; ``resolver`` answers
    ResolveImageConfig; ``frontend(name, opts, inputs) -> (Graph, metadata)`` runs the frontend a
    frontend asks for (``Solve`` with ``Frontend``); ``warn`` gets the frontend's warnings."""

    def __init__(self, stubs: Any, *, solve: Callable[[Any], Any], view: Callable[[Any], Any], resolver: Any,
                 worker: Any, warn: Callable[[str], None],
                 frontend: Callable[[str, Mapping[str, str], Mapping[str, Any]], Any] | None = None,
                 inputs: Mapping[str, Any] | None = None):
        self.pb = stubs
        self._solve, self._view, self.resolver, self.worker = solve, view, resolver, worker
        self._warn, self._frontend = warn, frontend
        self.inputs = dict(inputs or {})
        self.refs: dict[str, Any] = {}  # id -> Graph
        self._solved: dict[str, Any] = {}  # id -> Result
        self._lock = threading.RLock()
        self.returned: Returned | None = None
        self.done = threading.Event()
        self.calls: list[str] = []  # the calls the frontend made, in order (tests look at them)

    # -- helpers ------------------------------------------------------------------------------

    def _add(self, graph: Any) -> str:
        rid = os.urandom(12).hex()
        with self._lock:
            self.refs[rid] = graph
        return rid

    def _result(self, ref: str, context: grpc.ServicerContext) -> Any:
        with self._lock:
            if ref in self._solved:
                return self._solved[ref]
            graph = self.refs.get(ref)
            if graph is None:
                if not ref:
                    return None  # the empty result (scratch)
                context.abort(grpc.StatusCode.NOT_FOUND, f"no reference {ref!r} in this build")
            try:
                res = self._solve(graph)
            except MasonError as e:
                context.abort(grpc.StatusCode.UNKNOWN, e.format())
            self._solved[ref] = res
            return res

    def _host_path(self, root: str, path: str, context: grpc.ServicerContext, follow: bool = True) -> str:
        from mason.backends.solver.fsutil import resolve_in_root

        try:
            return resolve_in_root(root, path, follow_final=follow)
        except (MasonError, OSError) as e:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{path}: {e}")
            raise  # not reached

    def _stat(self, host: str, name: str) -> Any:
        st = os.lstat(host)
        s = self.pb.stat.Stat(path=name, mode=go_mode(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                              size=st.st_size if statmod.S_ISREG(st.st_mode) else 0,
                              modTime=st.st_mtime_ns)
        if statmod.S_ISLNK(st.st_mode):
            s.linkname = os.readlink(host)
        if statmod.S_ISCHR(st.st_mode) or statmod.S_ISBLK(st.st_mode):
            s.devmajor, s.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        return s

    # -- LLBBridge ------------------------------------------------------------------------------

    def Ping(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC names
        self.calls.append("Ping")
        g, caps = self.pb.gateway, self.pb.caps
        resp = g.PongResponse()
        resp.FrontendAPICaps.extend(caps.APICap(ID=c, Enabled=True) for c in CAPS)
        resp.FrontendAPICaps.extend(caps.APICap(ID=c, Enabled=False, DisabledReason="mason",
                                                DisabledReasonMsg="not implemented by mason") for c in CAPS_OFF)
        resp.LLBCaps.extend(caps.APICap(ID=c, Enabled=True) for c in LLB_CAPS)
        resp.Workers.append(self.worker)
        return resp

    def Solve(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append("Solve")
        from mason.ir.codec import decode_graph

        g = self.pb.gateway
        opts = dict(request.FrontendOpt)
        metadata: Mapping[str, bytes] = {}
        if request.Frontend:
            run = self._frontend
            if request.Frontend not in ("dockerfile.v0", "gateway.v0") or run is None:
                context.abort(grpc.StatusCode.UNIMPLEMENTED,
                              f"mason: a frontend image cannot call the frontend {request.Frontend!r} "
                              "(only dockerfile.v0 and gateway.v0)")
            if "requestid" in opts:
                context.abort(grpc.StatusCode.UNIMPLEMENTED,
                              f"mason: the subrequest {opts['requestid']!r} is not supported through the gateway")
            self.calls.append(f"Frontend {request.Frontend} {opts.get('source', '')}".rstrip())
            try:
                graph, metadata = run(request.Frontend, opts, dict(request.FrontendInputs))  # type: ignore[misc]
            except MasonError as e:
                context.abort(grpc.StatusCode.UNKNOWN, e.format())
        elif len(getattr(request.Definition, "def")):
            try:
                graph = decode_graph(request.Definition.SerializeToString())
            except MasonError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"mason: the frontend's Definition: {e.message}")
        else:
            return g.SolveResponse(result=g.Result())  # the empty result
        rid = self._add(graph)
        if request.Evaluate:
            self._result(rid, context)
        res = g.Result(ref=g.Ref(id=rid)) if request.allowResultArrayRef else g.Result(refDeprecated=rid)
        for k, v in metadata.items():
            res.metadata[k] = v
        out = g.SolveResponse(result=res)
        if not request.allowResultReturn:
            out.ref = rid
        return out

    def ReadFile(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append(f"ReadFile {request.FilePath}")
        res = self._result(request.Ref, context)
        with self._view(res) as root:
            host = self._host_path(root, request.FilePath, context)
            try:
                with open(host, "rb") as f:
                    if request.HasField("Range"):
                        f.seek(request.Range.Offset)
                        data = f.read(request.Range.Length)
                    else:
                        data = f.read(READ_LIMIT)
            except IsADirectoryError:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{request.FilePath}: is a directory")
            except OSError as e:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"open {request.FilePath}: {(e.strerror or str(e)).lower()}")
        return self.pb.gateway.ReadFileResponse(Data=data)

    def ReadDir(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append(f"ReadDir {request.DirPath}")
        res = self._result(request.Ref, context)
        out = self.pb.gateway.ReadDirResponse()
        with self._view(res) as root:
            host = self._host_path(root, request.DirPath, context)
            try:
                names = sorted(os.listdir(host))
            except OSError as e:
                context.abort(grpc.StatusCode.NOT_FOUND, f"readdir {request.DirPath}: {(e.strerror or str(e)).lower()}")
            for n in names:
                if request.IncludePattern and not fnmatch.fnmatchcase(n, request.IncludePattern):
                    continue
                out.entries.append(self._stat(os.path.join(host, n), n))
        return out

    def StatFile(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append(f"StatFile {request.Path}")
        res = self._result(request.Ref, context)
        with self._view(res) as root:
            host = self._host_path(root, request.Path, context, follow=False)
            try:
                st = self._stat(host, request.Path)
            except OSError as e:
                context.abort(grpc.StatusCode.NOT_FOUND, f"stat {request.Path}: {(e.strerror or str(e)).lower()}")
        return self.pb.gateway.StatFileResponse(stat=st)

    def ResolveImageConfig(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append(f"ResolveImageConfig {request.Ref}")
        from mason.ir.resolver import PlatformSpec

        plat = None
        if request.HasField("Platform") and request.Platform.OS:
            plat = PlatformSpec(request.Platform.OS, request.Platform.Architecture, request.Platform.Variant)
        if self.resolver is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"mason: cannot resolve {request.Ref}: no resolver (offline)")
        try:
            got = self.resolver.resolve_image_config(request.Ref, plat)
        except MasonError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, e.message)
        return self.pb.gateway.ResolveImageConfigResponse(
            Digest=got.digest, Config=json.dumps(got.config, separators=(",", ":")).encode(), Ref=request.Ref)

    def ResolveSourceMeta(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """A ``docker-image://`` source's digest and config (the resolver's, as ResolveImageConfig);
        other kinds (git, http) are refused with a message rather than answered without metadata."""
        ident = request.Source.identifier
        self.calls.append(f"ResolveSourceMeta {ident}")
        from mason.ir.resolver import PlatformSpec

        if not ident.startswith("docker-image://"):
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f"mason: ResolveSourceMeta resolves docker-image:// sources only, not {ident.split(':')[0]}")
        if self.resolver is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"mason: cannot resolve {ident}: no resolver (offline)")
        plat = None
        if request.HasField("Platform") and request.Platform.OS:
            plat = PlatformSpec(request.Platform.OS, request.Platform.Architecture, request.Platform.Variant)
        try:
            got = self.resolver.resolve_image_config(ident[len("docker-image://"):], plat)
        except MasonError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, e.message)
        out = self.pb.gateway.ResolveSourceMetaResponse()
        out.Source.CopyFrom(request.Source)
        out.Image.Digest = got.digest
        if not (request.HasField("Image") and request.Image.NoConfig):
            out.Image.Config = json.dumps(got.config, separators=(",", ":")).encode()
        return out

    def Evaluate(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append("Evaluate")
        self._result(request.Ref, context)
        return self.pb.gateway.EvaluateResponse()

    def Inputs(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append("Inputs")
        resp = self.pb.gateway.InputsResponse()
        for k, v in self.inputs.items():
            resp.Definitions[k].CopyFrom(v)
        return resp

    def Warn(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append("Warn")
        msg = request.short.decode(errors="replace")
        if request.HasField("info") and request.info.filename and len(request.ranges):
            msg = f"{request.info.filename}:{request.ranges[0].start.line}: {msg}"
        self._warn(msg)
        return self.pb.gateway.WarnResponse()

    def Return(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls.append("Return")
        out = Returned()
        if request.HasField("error") and request.error.code:
            out.error = request.error.message or f"the frontend failed (code {request.error.code})"
        else:
            res = request.result
            out.metadata = dict(res.metadata)
            kind = res.WhichOneof("result")
            ids: dict[str, str] = {}
            if kind == "ref":
                ids = {"default": res.ref.id}
            elif kind == "refDeprecated":
                ids = {"default": res.refDeprecated}
            elif kind == "refs":
                ids = {k: r.id for k, r in res.refs.refs.items()}
            elif kind == "refsDeprecated":
                ids = dict(res.refsDeprecated.refs)
            for k, rid in ids.items():
                if rid and rid not in self.refs:
                    out.error = f"the frontend returned an unknown reference {rid!r}"
                    break
                out.refs[k] = self.refs.get(rid) if rid else None
        with self._lock:
            if self.returned is None:
                self.returned = out
        self.done.set()
        return self.pb.gateway.ReturnResponse()

    def _refuse(self, name: str) -> Callable[[Any, grpc.ServicerContext], Any]:
        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            self.calls.append(name)
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"mason: the gateway call {name} is not supported")

        return refuse

    def __getattr__(self, name: str) -> Any:
        if name in ("NewContainer", "ReleaseContainer", "ExecProcess"):
            return self._refuse(name)
        raise AttributeError(name)
