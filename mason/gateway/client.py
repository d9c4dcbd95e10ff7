"""A mason frontend as a BuildKit gateway client: the entrypoint of a ``mason frontend-image``.

``python3 -m mason.gateway.client NAME`` runs inside the frontend container that BuildKit (or
mason, :mod:`mason.gateway.run`) starts for ``--frontend gateway.v0 --opt source=IMAGE`` or
``# syntax=IMAGE``. As BuildKit's own frontend binaries do, it speaks gRPC on its stdio pipe to
the ``LLBBridge`` service of whoever started it:

1. ``Ping`` (the caps and the worker's platform);
2. the options from ``BUILDKIT_FRONTEND_OPT_<n>`` (``filename``, ``target``, ``platform``,
   ``build-arg:K``, ``context:NAME``, ``dockerfilekey``);
3. the build file: ``Solve`` of ``local://dockerfile`` (only that file) and ``ReadFile``; the
   context's ``.dockerignore`` the same way from ``local://context``;
4. the frontend ``NAME`` (a built-in, a plugin, or ``module:attribute``) lowers it, base images
   resolved with ``ResolveImageConfig``; the ``-O1`` passes make it plain BuildKit LLB;
5. ``Solve`` of that Definition per platform and ``Return`` with the ref(s) and the image config
   (``containerimage.config``, per platform ``containerimage.config/<p>`` and ``refs.platforms``);
   a user's mistake is returned as the result's error (``FILE:LINE:COL: error: …``).

grpcio cannot dial a file descriptor, so the process relays: its stdin/stdout pipe on one side,
an abstract unix socket (no file written, the root may be read-only) the channel dials on the
other. File descriptor 1 is pointed at stderr first, so nothing printed corrupts the protocol.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Mapping
from typing import Any

from mason.ir.errors import MasonError

OPT_PREFIX = "BUILDKIT_FRONTEND_OPT_"
CONFIG_KEY = "containerimage.config"
FILENAME_ENV = "MASON_FRONTEND_FILENAME"  # the image's default build file name
NEEDED_CAPS = ("solve.base", "readfile", "return")
_UNKNOWN = 2  # google.rpc.Code UNKNOWN


def frontend_opts(environ: Mapping[str, str]) -> dict[str, str]:
    """``BUILDKIT_FRONTEND_OPT_<n>=key=value`` in the order of ``n`` (a later key wins)."""
    items = []
    for k, v in environ.items():
        if k.startswith(OPT_PREFIX) and k[len(OPT_PREFIX):].isdigit() and "=" in v:
            items.append((int(k[len(OPT_PREFIX):]), v))
    out: dict[str, str] = {}
    for _, v in sorted(items):
        key, _, value = v.partition("=")
        out[key] = value
    return out


class _StdioRelay:
    """Bytes between this process's stdio pipe and the one connection on an abstract socket."""

    def __init__(self) -> None:
        self.name = f"mason-gateway-{os.getpid()}-{os.urandom(6).hex()}"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("\0" + self.name)
        self.listener.listen(1)
        self.rfd = os.dup(0)
        self.wfd = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)  # stray prints go to the log, not into the protocol
        threading.Thread(target=self._serve, name="gateway-relay", daemon=True).start()

    @property
    def target(self) -> str:
        return f"unix-abstract:{self.name}"

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.listener.close()

        def up() -> None:  # stdin -> the channel
            try:
                while data := os.read(self.rfd, 1 << 16):
                    conn.sendall(data)
            except OSError:
                pass
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        threading.Thread(target=up, name="gateway-stdin", daemon=True).start()
        try:
            while data := conn.recv(1 << 16):
                view = memoryview(data)
                while view:
                    view = view[os.write(self.wfd, view):]
        except OSError:
            pass


class BridgeResolver:
    """:class:`~mason.ir.resolver.ImageMetaResolver` over ``LLBBridge.ResolveImageConfig``."""

    def __init__(self, client: GatewayClient):
        self.client = client

    def resolve_image_config(self, ref: str, platform: Any = None) -> Any:
        from mason.ir.reference import normalize
        from mason.ir.resolver import ResolvedImage, pinned_ref

        g = self.client.pb.gateway
        name = normalize(ref)
        p = platform or self.client.platform
        req = g.ResolveImageConfigRequest(Ref=name, ResolveMode="default",
                                          LogName=f"[internal] load metadata for {name}")
        req.Platform.OS, req.Platform.Architecture = p.os, p.architecture
        if p.variant:
            req.Platform.Variant = p.variant
        resp = self.client.call("ResolveImageConfig", req)
        try:
            config = json.loads(resp.Config) if resp.Config else {}
        except ValueError:
            raise MasonError(f"the image config of {name} is not JSON") from None
        return ResolvedImage(pinned_ref(name, resp.Digest) if resp.Digest else name, resp.Digest, config, platform=p)


class GatewayClient:
    """The calls this frontend makes on ``LLBBridge`` (a gRPC error becomes a MasonError)."""

    def __init__(self, channel: Any):
        from mason.ir.resolver import PlatformSpec
        from mason.protos import buildkit

        self.pb = buildkit.load()
        self.stub = self.pb.gateway_grpc.LLBBridgeStub(channel)
        self.platform = PlatformSpec.default()
        self.caps: dict[str, bool] = {}

    def call(self, name: str, request: Any) -> Any:
        import grpc

        try:
            return getattr(self.stub, name)(request)
        except grpc.RpcError as e:
            detail = e.details() if hasattr(e, "details") else str(e)
            raise MasonError(f"gateway {name}: {detail}") from None

    def ping(self) -> None:
        from mason.ir.resolver import PlatformSpec

        pong = self.call("Ping", self.pb.gateway.PingRequest())
        self.caps = {c.ID: c.Enabled for c in pong.FrontendAPICaps}
        missing = [c for c in NEEDED_CAPS if not self.caps.get(c)]
        if missing:
            raise MasonError(f"the gateway does not support {', '.join(missing)}, which this frontend needs")
        for w in pong.Workers:
            if len(w.platforms):
                p = w.platforms[0]
                self.platform = PlatformSpec(p.OS, p.Architecture, p.Variant)
                break

    def solve(self, definition: bytes) -> str:
        """Solve a marshaled Definition; the reference's id."""
        g = self.pb.gateway
        req = g.SolveRequest(allowResultReturn=True, allowResultArrayRef=True)
        req.Definition.ParseFromString(definition)
        resp = self.call("Solve", req)
        res = resp.result
        kind = res.WhichOneof("result")
        if kind == "ref":
            return str(res.ref.id)
        if kind == "refDeprecated":
            return str(res.refDeprecated)
        return str(resp.ref)

    def read_file(self, ref: str, path: str) -> bytes | None:
        """The file's bytes, None when it does not exist."""
        import grpc

        try:
            return bytes(self.stub.ReadFile(self.pb.gateway.ReadFileRequest(Ref=ref, FilePath=path)).Data)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.NOT_FOUND,) or "no such file" in (e.details() or "").lower():
                return None
            raise MasonError(f"gateway ReadFile {path}: {e.details()}") from None

    def read_local(self, name: str, path: str, session: str) -> bytes | None:
        """``path`` of the client directory ``local://name`` (only that file is transferred)."""
        from mason.ir import builder as llb

        st = llb.local(name, include=[path], shared_key_hint=path, custom_name=f"[internal] load {path}",
                       session_id=session or None)
        return self.read_file(self.solve(st.marshal()), path)

    def warn(self, message: str) -> None:
        if self.caps.get("gateway.warnings"):
            import contextlib

            with contextlib.suppress(MasonError):
                self.call("Warn", self.pb.gateway.WarnRequest(level=1, short=message.encode()))

    def return_result(self, refs: Mapping[str, str], metadata: Mapping[str, bytes]) -> None:
        g = self.pb.gateway
        res = g.Result()
        if not refs:
            pass  # a subrequest's answer: metadata only
        elif set(refs) == {"default"}:
            res.ref.id = refs["default"]
        else:
            for k, rid in refs.items():
                res.refs.refs[k].id = rid
        for k, v in metadata.items():
            res.metadata[k] = v
        self.call("Return", g.ReturnRequest(result=res))

    def return_error(self, message: str) -> None:
        g = self.pb.gateway
        req = g.ReturnRequest()
        req.error.code = _UNKNOWN
        req.error.message = message
        self.call("Return", req)


def _platforms(text: str | None, default: Any) -> list[Any]:
    from mason.ir.resolver import PlatformSpec

    if not text:
        return [default]
    out = []
    for part in text.split(","):
        if part.strip():
            try:
                out.append(PlatformSpec.parse(part.strip()))
            except (MasonError, ValueError) as e:
                raise MasonError(f"frontend option platform={text!r}: {getattr(e, 'message', e)}") from None
    return out or [default]


def build(client: GatewayClient, frontend: Any, environ: Mapping[str, str]) -> None:
    """One build: read the file, lower it per platform, solve, return (see the module docstring)."""
    from dataclasses import replace

    from mason.frontends.base import FrontendRequest
    from mason.ir.codec import marshal
    from mason.ir.patterns import parse_dockerignore
    from mason.passes import run_pipeline

    opts = frontend_opts(environ)
    session = environ.get("BUILDKIT_SESSION_ID", "")
    filename = opts.get("filename") or environ.get(FILENAME_ENV) or "Dockerfile"
    data = client.read_local(opts.get("dockerfilekey") or "dockerfile", filename, session)
    if data is None:
        raise MasonError(f"failed to read {filename}: no such file in the build file's directory")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise MasonError(f"{filename}: not UTF-8 text") from None
    excludes: tuple[str, ...] = ()
    ignore = client.read_local("context", ".dockerignore", session)
    if ignore is not None:
        excludes = tuple(str(p) for p in parse_dockerignore(ignore.decode(errors="replace")))
    target = opts.get("target") or None
    request = FrontendRequest(
        text, filename, build_args={k[len("build-arg:"):]: v for k, v in opts.items() if k.startswith("build-arg:")},
        target=target, named_contexts={k[len("context:"):]: v for k, v in opts.items() if k.startswith("context:")},
        excludes=excludes, resolver=BridgeResolver(client))
    platforms = _platforms(opts.get("platform"), client.platform)
    if opts.get("requestid"):
        client.return_result({}, subrequest(frontend, replace(request, platform=platforms[0]), opts["requestid"]))
        return
    want = target or "default"
    refs: dict[str, str] = {}
    metadata: dict[str, bytes] = {}
    for plat in platforms:
        low = frontend.lower(replace(request, platform=plat))
        for w in low.warnings:
            client.warn(w.format())
        if want not in low.graph.names():
            names = ", ".join(n for n in low.graph.names() if n != "default")
            raise MasonError(f"target stage {target!r} could not be found (stages: {names})")
        graph = run_pipeline(low.graph, f"verify,hoist-config,dedupe,prune{{targets={json.dumps(want)}}}")
        out = next(o for o in graph.outputs if o.name == want)
        key = "default" if len(platforms) == 1 else str(plat)
        refs[key] = client.solve(marshal(out.ref, out.image_config, name=out.name))
        if out.image_config is not None:
            cfg = json.dumps(out.image_config, separators=(",", ":")).encode()
            metadata[CONFIG_KEY if key == "default" else f"{CONFIG_KEY}/{key}"] = cfg
    if len(platforms) > 1:
        metadata["refs.platforms"] = json.dumps({"platforms": [
            {"id": str(p), "platform": p.to_json()} for p in platforms]}).encode()
    client.return_result(refs, metadata)


SUBREQUESTS = {"frontend.outline": ("outline", "List all parameters current build target supports"),
               "frontend.targets": ("targets", "List all targets current build supports"),
               "frontend.lint": ("lint", "Lint the build file")}
DESCRIBE = "frontend.subrequests.describe"


def subrequest(frontend: Any, request: Any, requestid: str) -> dict[str, bytes]:
    """BuildKit's subrequest ``requestid`` answered by ``frontend``: ``result.json``,
    ``result.txt`` (not for lint, as BuildKit), ``result.statuscode`` for lint (1 when a check
    fired, as BuildKit's frontend says)."""
    from mason.cli.call import lint_json, outline_json, outline_text, targets_json, targets_text
    from mason.frontends.base import answers

    if requestid == DESCRIBE:
        rows = [{"name": rid, "version": "1.0.0", "type": "rpc", "description": desc}
                for rid, (what, desc) in SUBREQUESTS.items() if answers(frontend, what)]
        rows.append({"name": DESCRIBE, "version": "1.0.0", "type": "rpc", "description": "List available subrequests"})
        text = "".join(f"{r['name']} {r['version']} {r['description']}\n" for r in rows)
        return {"result.json": json.dumps(rows).encode(), "result.txt": text.encode()}
    if requestid not in SUBREQUESTS:
        raise MasonError(f"unknown subrequest {requestid!r} (this frontend answers: "
                         f"{', '.join([r for r, (w, _) in SUBREQUESTS.items() if answers(frontend, w)] + [DESCRIBE])})")
    what = SUBREQUESTS[requestid][0]
    if not answers(frontend, what):
        raise MasonError(f"the {frontend.name} frontend does not answer the {what!r} subrequest")
    if what == "outline":
        o = frontend.outline(request)
        return {"result.json": outline_json(o, request.text).encode(), "result.txt": outline_text(o).encode()}
    if what == "targets":
        t = frontend.targets(request)
        return {"result.json": targets_json(t, request.text).encode(), "result.txt": targets_text(t).encode()}
    report = frontend.lint(request)
    language = "Dockerfile" if frontend.name == "dockerfile" else frontend.name
    return {"result.json": lint_json(report, request.text, request.filename, language).encode(),
            "result.statuscode": b"1" if report.warnings or report.failed else b"0"}


def load_frontend(name: str) -> Any:
    """``NAME`` (built-in or plugin) or ``module:attribute``."""
    from mason.frontends import registry

    if ":" in name:
        import importlib

        module, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise MasonError(f"frontend {name!r} cannot be loaded: {type(e).__name__}: {e}") from None
        return registry._make(name, factory)
    return registry.load(name)


def prepare(name: str, site: str | None) -> None:
    """At image build time: the frontend and the stubs load, and ``site`` gets its bytecode."""
    from mason.ir import llb_pb
    from mason.protos import buildkit

    load_frontend(name)
    llb_pb.pb()
    buildkit.load()
    if site:
        import compileall

        if not compileall.compile_dir(site, quiet=1, workers=1):
            raise MasonError(f"byte-compiling {site} failed")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 2 and args[0] == "--prepare":
        try:
            prepare(args[1], args[2] if len(args) > 2 else None)
        except MasonError as e:
            print(e.format(), file=sys.stderr)
            return 1
        print(f"mason frontend {args[1]}: ready", file=sys.stderr)
        return 0
    if len(args) != 1:
        print("usage: python3 -m mason.gateway.client NAME (run by a BuildKit gateway as a frontend image)",
              file=sys.stderr)
        return 2
    import grpc

    relay = _StdioRelay()
    channel = grpc.insecure_channel(relay.target, options=[("grpc.max_receive_message_length", 128 << 20),
                                                           ("grpc.max_send_message_length", 128 << 20),
                                                           ("grpc.default_authority", "localhost")])
    client = GatewayClient(channel)
    try:
        client.ping()
        frontend = load_frontend(args[0])
        try:
            build(client, frontend, os.environ)
        except MasonError as e:
            client.return_error(e.format())
    except MasonError as e:
        print(e.format(), file=sys.stderr)
        return 1
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
