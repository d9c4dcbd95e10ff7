"""``mason build --host ADDR`` (or ``MASON_HOST``): the build runs on a daemon that speaks
BuildKit's ``moby.buildkit.v1.Control`` API — ``mason serve``, or BuildKit's own buildkitd.

The client sends a ``Solve`` for the ``dockerfile.v0`` frontend with the build's options as
frontend attributes (``filename``, ``target``, ``build-arg:K``, ``platform``, ``no-cache``), its
outputs as exporters and ``--cache-from``/``--cache-to`` as cache entries, and serves the build's
files, outputs, secrets and SSH agents through a session (:mod:`mason.remote.session`).
``Status`` streams the daemon's vertices and logs, which become mason's own progress events, so
the same renderers draw them. A failed build is one error line and exit code 1; Ctrl-C (or
SIGTERM) cancels the Solve, which cancels the build on the daemon.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mason.ir.errors import MasonError

FRONTEND = "dockerfile.v0"
FILE_OUTPUTS = ("tar", "oci", "docker")
MAX_MESSAGE = 64 << 20


@dataclass
class RemoteRequest:
    host: str
    context: str = "."
    dockerfile: str | None = None
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    outputs: Sequence[str] = ()
    tags: Sequence[str] = ()
    push: bool = False
    secrets: Sequence[str] = ()
    ssh: Sequence[str] = ()
    allow: Sequence[str] = ()
    no_cache: bool = False
    no_cache_filter: Sequence[str] = ()
    network_default: str = "default"
    cache_from: Sequence[str] = ()
    cache_to: Sequence[str] = ()
    build_contexts: Sequence[str] = ()
    events: Callable[[Any], None] | None = None
    tls: ClientTLS | None = None
    frontend_attrs: Mapping[str, str] = field(default_factory=dict)  # more, as sent (shm-size, ulimit)


@dataclass(frozen=True)
class ClientTLS:
    """TLS to the daemon, as buildctl's ``--tlscacert``/``--tlscert``/``--tlskey``/
    ``--tlsservername``: the CA that the daemon's certificate must chain to (default: the
    system's), the client's certificate and key (mutual TLS), the name the daemon's certificate
    must carry (default: the address's host)."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    servername: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.cacert or self.cert or self.key or self.servername)

    def credentials(self) -> Any:
        import grpc

        if bool(self.cert) != bool(self.key):
            raise MasonError("--tlscert and --tlskey go together (the client's certificate and its key)")

        def read(flag: str, p: str | None) -> bytes | None:
            if not p:
                return None
            try:
                return Path(p).read_bytes()
            except OSError as e:
                raise MasonError(f"cannot read {flag} {p}: {e.strerror}") from None

        return grpc.ssl_channel_credentials(root_certificates=read("--tlscacert", self.cacert),
                                            private_key=read("--tlskey", self.key),
                                            certificate_chain=read("--tlscert", self.cert))


@dataclass
class RemoteResult:
    digest: str | None
    names: tuple[str, ...]
    to_stdout: bool  # an output went to stdout
    response: dict[str, str]


def _channel(host: str, tls: ClientTLS | None = None) -> Any:
    """A channel to the daemon: TLS when ``tls`` says so; plain TCP only to a loopback
    address (the build's secrets and files cross this connection)."""
    import grpc

    from mason.server.daemon import parse_addr

    addr = parse_addr(host)
    opts: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_MESSAGE),
                                   ("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.enable_retries", 0)]
    if tls is not None and tls.enabled:
        if addr.scheme != "tcp":
            raise MasonError(f"--tlscacert/--tlscert/--tlskey need a tcp:// address (not {host})")
        if tls.servername:
            opts.append(("grpc.ssl_target_name_override", tls.servername))
        return grpc.secure_channel(addr.grpc, tls.credentials(), options=opts)
    if not addr.loopback:
        raise MasonError(f"--host {host} is not a loopback address: give --tlscacert (and --tlscert, --tlskey "
                         "for mutual TLS) so that the build's files and secrets are not sent in the clear")
    return grpc.insecure_channel(addr.grpc, options=opts)


def _exporters(req: RemoteRequest) -> tuple[list[tuple[str, dict[str, str]]], dict[int, Any], bool]:
    """(type, attrs) per output, the outputs that land here by exporter index, and whether
    one goes to stdout. Checked as a local build checks them, before anything runs."""
    from mason.driver import output_specs
    from mason.remote.session import Output

    exporters: list[tuple[str, dict[str, str]]] = []
    local: dict[int, Output] = {}
    stdout = False
    for i, spec in enumerate(output_specs(tuple(req.outputs), tuple(req.tags), push=req.push)):
        attrs = {k: v for k, v in spec.attrs.items() if k not in ("type", "dest", "name", "preserve-owner")}
        if spec.names:
            attrs["name"] = ",".join(spec.names)
        if spec.push:
            attrs["push"] = "true"
        if spec.type == "local":
            assert spec.dest is not None
            local[i] = Output("local", os.path.abspath(spec.dest), spec.preserve_owner)
        elif spec.type in FILE_OUTPUTS:
            if spec.dest is None:
                raise MasonError(f"output type={spec.type} needs dest= with --host")
            local[i] = Output("file", spec.dest if spec.dest == "-" else os.path.abspath(spec.dest))
            stdout = stdout or spec.dest == "-"
        exporters.append((spec.type, attrs))
    return exporters, local, stdout


def _cache_entries(specs: Sequence[str], what: str) -> list[tuple[str, dict[str, str]]]:
    from mason.backends.exporters.outputs import parse_attrs

    out = []
    for s in specs:
        attrs = parse_attrs(s, f"invalid {what} {s!r}") if "=" in s else {"type": "registry", "ref": s}
        t = attrs.pop("type", "registry")
        if t == "local":
            raise MasonError(f"{what} {s}: type=local cannot be used with --host yet (the daemon reaches the "
                             "directory through the session's content store, which mason's client does not serve)")
        out.append((t, attrs))
    return out


def _named_contexts(specs: Sequence[str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """``--build-context`` as buildx sends it: ``context:NAME`` frontend options, the
    directories the session serves under NAME (``local:NAME``), and the OCI layouts it serves as
    content stores (``oci:STORE`` for ``oci-layout://STORE@DIGEST``, resolved here)."""
    if not specs:
        return {}, {}, {}
    from mason.build_contexts import parse_build_contexts

    named = parse_build_contexts(specs)
    return ({f"context:{k}": v for k, v in named.values.items()}, dict(named.dirs),
            {f"oci:{k}": v for k, v in named.layouts.items()})


def _frontend_attrs(req: RemoteRequest, filename: str) -> dict[str, str]:
    fa = {"filename": filename}
    if req.target:
        fa["target"] = req.target
    if req.platform:
        fa["platform"] = req.platform
    for k, v in req.build_args.items():
        fa[f"build-arg:{k}"] = v
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde is not None and "SOURCE_DATE_EPOCH" not in req.build_args:
        fa["build-arg:SOURCE_DATE_EPOCH"] = sde  # as buildx sends it
    if req.no_cache:
        fa["no-cache"] = ""
    elif req.no_cache_filter:
        fa["no-cache"] = ",".join(req.no_cache_filter)
    if req.network_default == "host":
        fa["force-network-mode"] = "host"
    fa.update(req.frontend_attrs)
    return fa


def build(req: RemoteRequest) -> RemoteResult:
    """Run the build on ``req.host``; progress to ``req.events``."""
    # gRPC's core logs a failed TLS handshake on stderr; the error the client shows is enough
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    import grpc

    from mason.backends.solver.secrets import Secrets, parse_secret, parse_ssh
    from mason.protos import buildkit
    from mason.remote.session import ClientSession

    exporters, local_outputs, stdout = _exporters(req)
    imports = _cache_entries(req.cache_from, "--cache-from")
    exports = _cache_entries(req.cache_to, "--cache-to")
    context = os.path.abspath(req.context)
    if not os.path.isdir(context):
        raise MasonError(f"build context {req.context!r} is not a directory")
    tmp: str | None = None
    if req.dockerfile == "-":
        import sys

        tmp = tempfile.mkdtemp(prefix="mason-stdin-")
        Path(tmp, "Dockerfile").write_bytes(sys.stdin.buffer.read())
        df_dir, filename = tmp, "Dockerfile"
    else:
        path = os.path.abspath(req.dockerfile or os.path.join(context, "Dockerfile"))
        if not os.path.isfile(path):
            raise MasonError(f"cannot read the Dockerfile {req.dockerfile or path}: no such file")
        df_dir, filename = os.path.dirname(path), os.path.basename(path)
    named_attrs, named_dirs, layouts = _named_contexts(req.build_contexts)
    secrets = Secrets([parse_secret(s) for s in req.secrets], dict(parse_ssh(s) for s in req.ssh))
    pb = buildkit.load()
    channel = _channel(req.host, req.tls)
    session = ClientSession(pb, {**named_dirs, "context": context, "dockerfile": df_dir}, secrets=secrets,
                            outputs=local_outputs, stores=layouts)
    ref = uuid.uuid4().hex
    c = pb.control
    sreq = c.SolveRequest(Ref=ref, Frontend=FRONTEND, Session=session.id,
                          FrontendAttrs={**_frontend_attrs(req, filename), **named_attrs},
                          Entitlements=list(req.allow))
    for t, attrs in exporters:
        sreq.Exporters.add(Type=t, Attrs=attrs)
    for t, attrs in imports:
        sreq.Cache.Imports.add(Type=t, Attrs=attrs)
    for t, attrs in exports:
        sreq.Cache.Exports.add(Type=t, Attrs=attrs)
    status = _Status(pb, channel, ref, req.events)
    solve = channel.unary_unary("/moby.buildkit.v1.Control/Solve", request_serializer=c.SolveRequest.SerializeToString,
                                response_deserializer=c.SolveResponse.FromString)
    future = None
    try:
        session.open(channel)
        status.start()
        future = solve.future(sreq)
        while True:
            try:
                resp = future.result(timeout=0.5)
                break
            except grpc.FutureTimeoutError:
                continue
            except grpc.RpcError as e:
                status.finish()
                if session.errors:
                    raise MasonError(session.errors[0]) from None
                raise _remote_error(e, req.host) from None
        status.finish()
        if session.errors:
            raise MasonError(session.errors[0])
    finally:
        if future is not None and not future.done():
            future.cancel()  # Ctrl-C / SIGTERM: the daemon cancels the build
        status.stop()
        session.close()
        channel.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    er = dict(resp.ExporterResponse)
    names = tuple(n for n in er.get("image.name", "").split(",") if n)
    return RemoteResult(er.get("containerimage.digest"), names, stdout, er)


def _remote_error(e: Any, host: str) -> MasonError:
    import grpc

    code = e.code() if callable(getattr(e, "code", None)) else None
    details = (e.details() if callable(getattr(e, "details", None)) else None) or str(e)
    if code == grpc.StatusCode.UNAVAILABLE:
        return MasonError(f"cannot reach the build daemon at {host}: {details}")
    return RemoteFailure(details)


class RemoteFailure(MasonError):
    """The daemon's own error text: kept as it is when it is already ``…error: …`` (mason
    serve's located errors), else ``error: TEXT``."""

    def format(self) -> str:
        text = self.message.strip()
        first = text.splitlines()[0] if text else ""
        return text if first.startswith("error: ") or ": error: " in first else f"error: {text}"


class _Status:
    """Reads ``Control/Status`` for the build and turns BuildKit's vertices into mason events."""

    def __init__(self, pb: Any, channel: Any, ref: str, sink: Callable[[Any], None] | None):
        self.pb, self.ref, self.sink = pb, ref, sink
        c = pb.control
        self._call_fn = channel.unary_stream("/moby.buildkit.v1.Control/Status",
                                             request_serializer=c.StatusRequest.SerializeToString,
                                             response_deserializer=c.StatusResponse.FromString)
        self._call: Any = None
        self._thread: threading.Thread | None = None
        self._n: dict[str, int] = {}
        self._state: dict[str, str] = {}  # digest -> started | done
        self._started: dict[str, float] = {}

    def start(self) -> None:
        self._call = self._call_fn(self.pb.control.StatusRequest(Ref=self.ref))
        self._thread = threading.Thread(target=self._run, name="mason-status", daemon=True)
        self._thread.start()

    def finish(self, timeout: float = 10.0) -> None:
        """Wait for the stream to end (the daemon closes it when the build ends)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        if self._call is not None:
            self._call.cancel()

    def _run(self) -> None:
        import grpc

        try:
            for resp in self._call:
                self._emit(resp)
        except grpc.RpcError:
            return

    def _emit(self, resp: Any) -> None:
        from mason.backends.solver import events as ev

        if self.sink is None:
            return
        for v in resp.vertexes:
            d = v.digest
            n = self._n.setdefault(d, len(self._n) + 1)
            name = v.name
            if name.startswith("WARNING: ") and v.HasField("completed"):
                if self._state.get(d) != "done":
                    self._state[d] = "done"
                    self.sink(ev.Warning(name[len("WARNING: "):]))
                continue
            if v.cached and v.HasField("completed"):
                if self._state.get(d) != "done":
                    self._state[d] = "done"
                    self.sink(ev.VertexCached(n, d, name))
                continue
            if v.HasField("started") and d not in self._state:
                self._state[d] = "started"
                t = v.started.ToNanoseconds() / 1e9
                self._started[d] = t
                self.sink(ev.VertexStarted(n, d, name, t))
            if (v.HasField("completed") or v.error) and self._state.get(d) != "done":
                if d not in self._state:
                    self.sink(ev.VertexStarted(n, d, name))
                    self._started[d] = time.time()
                self._state[d] = "done"
                end = v.completed.ToNanoseconds() / 1e9 if v.HasField("completed") else time.time()
                duration = max(0.0, end - self._started.get(d, end))
                cancelled = v.error.endswith("context canceled")
                self.sink(ev.VertexDone(n, d, name, duration, error=None if cancelled else (v.error or None),
                                        cancelled=cancelled))
        for lg in resp.logs:
            k = self._n.get(lg.vertex)
            if k is not None:
                self.sink(ev.VertexLog(k, "stderr" if lg.stream == 2 else "stdout", lg.msg))
        for w in getattr(resp, "warnings", ()):
            self.sink(ev.Warning(w.short.decode("utf-8", "replace") if isinstance(w.short, bytes) else str(w.short)))
