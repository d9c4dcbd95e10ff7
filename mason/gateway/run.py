"""Run a frontend image with BuildKit's gateway conventions and take what it returns.

The image (resolved from mason's image store, then registries) becomes a ``docker-image://``
source solved like any other; its entrypoint (default ``/run``) runs as a container on it with

* the image's env plus ``BUILDKIT_FRONTEND_OPT_<n>=key=value`` for each option (``build-arg:K``,
  ``target``, ``filename``, ``platform``, ``context:NAME``, ``cmdline``), ``BUILDKIT_SESSION_ID``,
  ``BUILDKIT_WORKERS`` (JSON) and ``BUILDKIT_EXPORTEDPRODUCT``;
* its own Definition read-only at ``/run/config/buildkit/metadata/frontend.bin``;
* no network when the image has the label ``moby.buildkit.frontend.network.none=true`` (else the
  host's, as a frontend BuildKit runs with the host network mode);
* stdin and stdout carrying one gRPC connection, on which mason serves ``LLBBridge``
  (:mod:`mason.gateway.bridge`): the container's stdout is relayed into a private unix socket
  of an in-process gRPC server and the server's bytes back into the container's stdin FIFO;
  stderr becomes the build's log.

The caps a build needs from the frontend (``frontend.caps``, named contexts) are checked against
the image's ``moby.buildkit.frontend.caps`` label first. A frontend that exits non-zero, writes
something that is not HTTP/2 on stdout, exits without returning, or outlives ``timeout`` is one
clear error; its container and task are always deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mason.ir.errors import MasonError

FRONTEND_BIN = "/run/config/buildkit/metadata/frontend.bin"
LABEL_NETWORK_NONE = "moby.buildkit.frontend.network.none"
LABEL_CAPS = "moby.buildkit.frontend.caps"
CAP_CONTEXTS = "moby.buildkit.frontend.contexts"
CAP_INPUTS = "moby.buildkit.frontend.inputs"
CAP_SUBREQUESTS = "moby.buildkit.frontend.subrequests"
PRODUCT = "mason"
DEFAULT_ENTRYPOINT = ("/run",)
BROKEN_GRACE = 2.0  # seconds a frontend may live on after its gRPC connection broke


@dataclass
class GatewayRun:
    """One frontend run: the options it got (in order), the gRPC calls it made, its stderr, the
    frontend's own Definition, how long each phase took."""

    image: str
    opts: list[tuple[str, str]] = field(default_factory=list)
    env: tuple[str, ...] = ()
    calls: list[str] = field(default_factory=list)
    stderr: bytes = b""
    frontend_bin: bytes = b""
    exit_code: int | None = None
    timings: dict[str, float] = field(default_factory=dict)


def frontend_opts(*, filename: str, build_args: Mapping[str, str], target: str | None, platform: str | None,
                  named_contexts: Mapping[str, str] = (), cmdline: str | None = "",  # type: ignore[assignment]
                  extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The frontend options of a build, as buildctl/buildx send them."""
    out: list[tuple[str, str]] = [("filename", filename)]
    if target:
        out.append(("target", target))
    if platform:
        out.append(("platform", platform))
    out += [(f"build-arg:{k}", v) for k, v in sorted(build_args.items())]
    out += [(f"context:{k}", v) for k, v in sorted(dict(named_contexts).items())]
    if cmdline is not None:  # present: the frontend does not forward to # syntax= again
        out.append(("cmdline", cmdline))
    out += sorted((extra or {}).items())
    return out


def _labels(config: Mapping[str, Any]) -> dict[str, str]:
    return dict((config.get("config") or {}).get("Labels") or {})


def check_caps(image: str, config: Mapping[str, Any], wanted: list[str]) -> None:
    """Every cap in ``wanted`` is in the image's ``moby.buildkit.frontend.caps`` label."""
    have = {c.strip() for c in _labels(config).get(LABEL_CAPS, "").split(",") if c.strip()}
    missing = [c for c in wanted if c not in have]
    if missing:
        raise MasonError(f"frontend image {image} does not support {', '.join(missing)} (its label {LABEL_CAPS} "
                         f"lists {', '.join(sorted(have)) or 'none'})")


def _user(spec: str) -> tuple[int, int]:
    if not spec:
        return 0, 0
    u, _, g = spec.partition(":")
    try:
        return int(u), int(g or u)
    except ValueError:
        raise MasonError(f"frontend image: user {spec!r} must be numeric (uid[:gid])") from None


class _Relay:
    """Bytes between the container's stdio and the bridge's unix socket."""

    def __init__(self, sock_path: str, stdin_fifo: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sock_path)
        os.mkfifo(stdin_fifo, 0o600)
        # read+write: opening never blocks, and the shim's reader never sees a premature EOF
        self.wfd = os.open(stdin_fifo, os.O_RDWR)
        self.broken = threading.Event()  # the gRPC side closed the connection
        self._closed = False
        self._t = threading.Thread(target=self._pump, name="gateway-stdin", daemon=True)
        self._t.start()

    def _pump(self) -> None:
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    n = os.write(self.wfd, view)
                    view = view[n:]
        except OSError:
            pass
        self.broken.set()

    def to_server(self, data: bytes) -> None:
        if self.broken.is_set():
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.broken.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._t.join(5)
        with contextlib.suppress(OSError):
            os.close(self.wfd)


def _worker(pb: Any) -> tuple[Any, str]:
    from mason.ir.resolver import PlatformSpec

    p = PlatformSpec.default()
    rec = pb.worker.WorkerRecord(ID="mason", Labels={"org.mobyproject.buildkit.worker.executor": "containerd",
                                                     "org.mobyproject.buildkit.worker.snapshotter": "overlayfs"})
    rec.platforms.add(OS=p.os, Architecture=p.architecture, Variant=p.variant)
    plat: dict[str, str] = {"os": p.os, "architecture": p.architecture}
    if p.variant:
        plat["variant"] = p.variant
    env = json.dumps([{"id": "mason", "labels": dict(rec.Labels), "platforms": [plat]}], separators=(",", ":"))
    return rec, env


def run_frontend_image(image: str, *, session: Any, resolver: Any, opts: list[tuple[str, str]],
                       timeout: float | None = None, session_id: str | None = None,
                       wanted_caps: list[str] | None = None, log: Callable[[str], None] | None = None,
                       warn: Callable[[str], None] | None = None,
                       frontend: Callable[[str, Mapping[str, str], Mapping[str, Any]], Any] | None = None,
                       image_resolver: Any = None) -> tuple[Any, GatewayRun]:
    """Run frontend ``image`` in the solver ``session`` (a :class:`BuildSession`) and return
    (the :class:`~mason.gateway.bridge.Returned` result, the :class:`GatewayRun`). ``resolver``
    answers the frontend's ResolveImageConfig; ``image_resolver`` (default: ``resolver``) finds
    the frontend image itself."""
    import grpc

    from mason.backends.containerd.spec import BindMount, Process
    from mason.backends.exporters.layer import viewed
    from mason.gateway.bridge import FrontendBridge
    from mason.ir import builder
    from mason.ir.codec import decode_graph
    from mason.ir.resolver import pinned_ref
    from mason.protos import buildkit

    run = GatewayRun(image, list(opts))
    t0 = time.perf_counter()
    find = image_resolver if image_resolver is not None else resolver
    if find is None:
        raise MasonError(f"frontend image {image}: images cannot be resolved offline")
    try:
        got = find.resolve_image_config(image)
    except MasonError as e:
        from mason.frontends import registry

        raise MasonError(f"frontend image {image} cannot be found: {e.message} (frontends: "
                         f"{', '.join(i.name for i in registry.available())})") from None
    check_caps(image, got.config, wanted_caps or [])
    cfg = got.config.get("config") or {}
    run.frontend_bin = builder.image(pinned_ref(image, got.digest)).marshal()
    solved = session.solve(decode_graph(run.frontend_bin))
    base = next(iter(solved.values())).result
    run.timings["image"] = time.perf_counter() - t0

    pb = buildkit.load()
    lock = threading.Lock()

    def solve(graph: Any) -> Any:
        with lock:
            out = session.solve(graph)
            return session.materialize(out[graph.outputs[0].name].result)

    def view(result: Any) -> Any:
        return viewed(session.client, (result.snapshot or None) if result is not None else None)

    worker, workers_env = _worker(pb)
    warnings: list[str] = []
    bridge = FrontendBridge(pb, solve=solve, view=view, resolver=resolver, worker=worker,
                            warn=warn or warnings.append, frontend=frontend)
    sid = os.urandom(13).hex() if session_id is None else session_id
    env = [e for e in cfg.get("Env") or () if "=" in e]
    env += [f"BUILDKIT_FRONTEND_OPT_{i}={k}={v}" for i, (k, v) in enumerate(opts)]
    env += [f"BUILDKIT_SESSION_ID={sid}", f"BUILDKIT_WORKERS={workers_env}", f"BUILDKIT_EXPORTEDPRODUCT={PRODUCT}"]
    run.env = tuple(env)
    args = tuple(cfg.get("Entrypoint") or ()) + tuple(cfg.get("Cmd") or ())
    uid, gid = _user(str(cfg.get("User") or ""))
    network = "none" if _labels(got.config).get(LABEL_NETWORK_NONE, "").lower() == "true" else "host"

    work = tempfile.mkdtemp(prefix="mason-gateway-")
    server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="gateway"),
                         options=[("grpc.max_receive_message_length", 128 << 20),
                                  ("grpc.max_send_message_length", 128 << 20)])
    relay: _Relay | None = None
    timer: threading.Timer | None = None
    stderr: list[bytes] = []
    cid: list[str] = []
    why: list[str] = []
    try:
        meta = os.path.join(work, "frontend.bin")
        with open(meta, "wb") as f:
            f.write(run.frontend_bin)
        pb.gateway_grpc.add_LLBBridgeServicer_to_server(bridge, server)
        sock = os.path.join(work, "bridge.sock")
        server.add_insecure_port(f"unix:{sock}")
        server.start()
        relay = _Relay(sock, os.path.join(work, "stdin"))
        ex = session.ctx.executor

        def kill(reason: str) -> None:
            if not why:
                why.append(reason)
            if cid:
                with contextlib.suppress(MasonError):
                    ex.client.kill_task(cid[0], 9)

        def output(stream: str, data: bytes) -> None:
            if stream == "stdout":
                assert relay is not None
                relay.to_server(data)
                return
            stderr.append(data)
            if log is not None:
                for line in data.decode(errors="replace").splitlines():
                    log(line)

        def watch() -> None:  # the connection broke while the process lives on: stop it soon
            assert relay is not None
            relay.broken.wait()
            if not bridge.done.wait(BROKEN_GRACE) and run.exit_code is None:
                kill("broke the gateway protocol (what it wrote on stdout is not a gRPC connection)")

        def started(c: str) -> None:
            cid.append(c)
            if why:
                kill(why[0])

        threading.Thread(target=watch, name="gateway-watch", daemon=True).start()
        if timeout is not None:
            timer = threading.Timer(timeout, kill, (f"did not return within --frontend-timeout {timeout:g}s",))
            timer.daemon = True
            timer.start()
        process = Process(args=args or DEFAULT_ENTRYPOINT, env=tuple(env), cwd=cfg.get("WorkingDir") or "/",
                          uid=uid, gid=gid, network=network,  # type: ignore[arg-type]
                          mounts=(BindMount(meta, FRONTEND_BIN, readonly=True),))
        t0 = time.perf_counter()
        res = ex.run_step(process, base.snapshot, None, output=output, stdin=os.path.join(work, "stdin"),
                          started=started)
        run.exit_code = res.exit_code
        run.timings["run"] = time.perf_counter() - t0
    finally:
        if timer is not None:
            timer.cancel()
        if relay is not None:
            relay.close()
        server.stop(None)
        shutil.rmtree(work, ignore_errors=True)
        run.calls = list(bridge.calls)
        run.stderr = b"".join(stderr)
    returned = bridge.returned
    tail = _tail(run.stderr)
    if why:
        raise MasonError(f"frontend image {image} {why[0]}; it was stopped{tail}")
    if returned is not None and returned.error is not None:
        raise MasonError(f"frontend image {image}: {returned.error}")
    if run.exit_code != 0:
        raise MasonError(f"frontend image {image} exited with code {run.exit_code} without a result{tail}")
    if returned is None:
        raise MasonError(f"frontend image {image} exited without returning a result (it never called "
                         f"LLBBridge.Return){tail}")
    returned.warnings = warnings
    return returned, run


def _tail(stderr: bytes, n: int = 10) -> str:
    lines = stderr.decode(errors="replace").rstrip().splitlines()[-n:]
    return (": its last output:\n" + "\n".join("  " + ln for ln in lines)) if lines else ""
