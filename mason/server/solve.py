"""``Control/Solve`` and ``Control/Status``: a BuildKit client's build on mason's driver.

A Solve names a frontend (``dockerfile.v0``: mason's Dockerfile frontend) or carries a raw
Definition, a session (the client's local directories, its outputs), exporters and frontend
options. The Dockerfile and the context's ``.dockerignore`` are fetched first (small
transfers); the context itself is fetched when the solver first reads ``local://context``,
with the patterns the lowered op carries, into a directory kept between builds (see
:class:`LocalSlots`), so a warm context moves only the listing and the changed files.

Outputs that land on the client (``local``, ``oci``, ``docker``, ``tar``) are written into a
per-build directory and then sent through the session's ``FileSend``. ``Status`` streams the
build's events in BuildKit's vertex/status/log form, so buildctl renders its own progress.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from mason.ir.errors import MasonError
from mason.server.gateway import Bridge, FrontendCall
from mason.server.session import Session, Sessions

FRONTEND_DOCKERFILE = "dockerfile.v0"
CLIENT_OUTPUTS = ("local", "oci", "docker", "tar")
STATUS_KEEP = 60.0  # seconds a finished build's events wait for a late Status call
_END = object()


def _ts(t: float) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


class StatusChannel:
    """One build's events as StatusResponses, for one or more ``Status`` readers (each sees
    everything from the start)."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._cond = threading.Condition()
        self.finished_at: float | None = None

    def put(self, resp: Any) -> None:
        with self._cond:
            self._items.append(resp)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._items.append(_END)
            self.finished_at = time.monotonic()
            self._cond.notify_all()

    def read(self, alive: Any) -> Iterator[Any]:
        i = 0
        while True:
            with self._cond:
                while i >= len(self._items):
                    self._cond.wait(1.0)
                    if not alive():
                        return
                item = self._items[i]
            i += 1
            if item is _END:
                return
            yield item


class EventsToStatus:
    """A solver event sink that writes BuildKit StatusResponses."""

    def __init__(self, pb: Any, channel: StatusChannel):
        self.pb, self.channel = pb, channel
        self._digests: dict[int, str] = {}
        self._started: dict[int, float] = {}
        self._lock = threading.Lock()
        self._seq = 0

    def __call__(self, event: Any) -> None:
        from mason.backends.solver import events as ev

        c = self.pb.control
        resp = c.StatusResponse()
        if isinstance(event, ev.VertexStarted):
            with self._lock:
                self._digests[event.n], self._started[event.n] = event.digest, event.time
            resp.vertexes.append(c.Vertex(digest=event.digest, name=event.name, started=_ts(event.time)))
        elif isinstance(event, ev.VertexCached):
            now = time.time()
            with self._lock:
                self._digests[event.n] = event.digest
            resp.vertexes.append(c.Vertex(digest=event.digest, name=event.name, cached=True, started=_ts(now),
                                          completed=_ts(now)))
        elif isinstance(event, ev.VertexDone):
            with self._lock:
                started = self._started.get(event.n, time.time() - event.duration)
            v = c.Vertex(digest=event.digest, name=event.name, started=_ts(started),
                         completed=_ts(started + event.duration))
            if event.error:
                v.error = event.error
            elif event.cancelled:
                v.error = "context canceled"
            resp.vertexes.append(v)
        elif isinstance(event, ev.VertexLog):
            with self._lock:
                digest = self._digests.get(event.n)
            if digest is None:
                return
            resp.logs.append(c.VertexLog(vertex=digest, timestamp=_ts(time.time()),
                                         stream=2 if event.stream == "stderr" else 1, msg=event.data))
        elif isinstance(event, ev.Status | ev.Warning):
            msg = event.message if isinstance(event, ev.Status) else f"WARNING: {event.message}"
            with self._lock:
                self._seq += 1
                seq = self._seq
            now = time.time()
            digest = "sha256:" + hashlib.sha256(f"mason-status/{seq}/{msg}".encode()).hexdigest()
            resp.vertexes.append(c.Vertex(digest=digest, name=msg, started=_ts(now), completed=_ts(now)))
        else:
            return
        self.channel.put(resp)


def _client_path(e: MasonError, prefix: str) -> MasonError:
    """``e`` with a location in the daemon's copy of the Dockerfile named as the client names
    it (its path inside the ``dockerfile`` directory), not by the daemon's work directory."""
    from dataclasses import replace

    from mason.ir.errors import MasonErrors

    if isinstance(e, MasonErrors):
        e.errors = [_client_path(x, prefix) for x in e.errors]
        return e
    if e.loc is not None and e.loc.file.startswith(prefix):
        e.loc = replace(e.loc, file=e.loc.file[len(prefix):])
    return e


class LocalSlots:
    """Directories that keep the client's local directories between builds, by (session shared
    key, name, patterns). A build holds the slots it filled until it ends; a build that finds
    every slot of its key busy takes a new one (a cold transfer), never waits."""

    def __init__(self, base: Path):
        self.base = base
        self._busy: set[Path] = set()
        self._lock = threading.Lock()

    def take(self, key: str) -> Path:
        h = hashlib.sha256(key.encode()).hexdigest()[:24]
        with self._lock:
            n = 0
            while (self.base / h / str(n)) in self._busy:
                n += 1
            slot = self.base / h / str(n)
            self._busy.add(slot)
        slot.mkdir(parents=True, exist_ok=True)
        return slot

    def give(self, slot: Path) -> None:
        with self._lock:
            self._busy.discard(slot)


@dataclass
class Transfers:
    """What crossed from the client in one build (the context test counts it)."""

    files: int = 0
    bytes: int = 0


def _json_list(attrs: Mapping[str, str], key: str) -> list[str]:
    raw = attrs.get(key)
    if not raw:
        return []
    try:
        v = json.loads(raw)
    except ValueError:
        raise MasonError(f"invalid {key} {raw!r}: not a JSON list") from None
    if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
        raise MasonError(f"invalid {key} {raw!r}: not a JSON list of strings")
    return v


def _spec(kind: str, attrs: Mapping[str, str]) -> str:
    return ",".join([f"type={kind}"] + [f"{k}={v}" for k, v in sorted(attrs.items())])


class Caches:
    """A SolveRequest's cache imports and exports as mason's ``--cache-from``/``--cache-to``
    values (parsed and checked by the driver, before any step runs). ``type=local`` names a
    directory on the client: an import is fetched from its session's content store into a layout
    in ``work`` first, an export written to one and sent after the build (see
    :mod:`mason.server.cachestore`)."""

    def __init__(self, session: Session | None, work: Path, events: Callable[[Any], None]):
        self.session, self.work, self.events = session, work, events
        self.exports_local: list[tuple[str, str, str]] = []  # (client dir, staged layout, tag)

    def _store(self, directory: str, flag: str) -> Any:
        from mason.server.cachestore import ClientStore

        if self.session is None:
            raise MasonError(f"{flag} type=local needs the client's session (its content store)")
        return ClientStore(self.session, directory)

    def imports(self, entries: list[tuple[str, Mapping[str, str]]]) -> tuple[str, ...]:
        from mason.server.cachestore import fetch_layout

        out: list[str] = []
        seen: set[str] = set()
        for kind, attrs in entries:
            attrs = dict(attrs)
            if _spec(kind, attrs) in seen:  # buildctl sends its imports both in the Solve and the bridge's
                continue
            seen.add(_spec(kind, attrs))
            if kind == "local":
                src, digest = attrs.get("src", ""), attrs.get("digest", "")
                if not src:
                    raise MasonError("--import-cache type=local needs src=DIR")
                if not digest:  # the client found no manifest for the tag (and said so): skipped, as buildkitd
                    from mason.backends.solver.events import Warning as WarningEvent

                    self.events(WarningEvent(f"--import-cache type=local,src={src}: no cache manifest "
                                             f"(tag {attrs.get('tag', 'latest')!r}) in the client's directory; "
                                             "skipped"))
                    continue
                layout = self.work / f"cache-import-{len(out)}"
                fetch_layout(self._store(src, "--import-cache"), digest, layout)
                attrs = {"src": str(layout)}
            out.append(_spec(kind, attrs))
        return tuple(out)

    def exports(self, entries: list[tuple[str, Mapping[str, str]]]) -> tuple[str, ...]:
        out: list[str] = []
        for kind, attrs in entries:
            attrs = dict(attrs)
            if kind == "local":
                if self.exports_local:
                    raise MasonError("mason serve: one --export-cache type=local per build")
                dest = attrs.pop("dest", "")
                if not dest:
                    raise MasonError("--export-cache type=local needs dest=DIR")
                self._store(dest, "--export-cache")  # the client serves it: checked before the build
                attrs.pop("reset", None)  # the client's own business (it prunes its store)
                layout = self.work / "cache-export"
                self.exports_local.append((dest, str(layout), attrs.get("tag", "latest")))
                attrs["dest"] = str(layout)
            out.append(_spec(kind, attrs))
        return tuple(out)

    def send(self) -> str | None:
        """After the build: the staged export's blobs to the client; its ``cache.manifest``."""
        from mason.server.cachestore import send_layout

        manifest = None
        for dest, layout, tag in self.exports_local:
            manifest = send_layout(self._store(dest, "--export-cache"), Path(layout), tag)
        return manifest


class Build:
    """One Solve's session-side state: the slots it holds and what it transferred."""

    def __init__(self, builds: Builds, session: Session | None):
        self.builds, self.session = builds, session
        self.slots: list[Path] = []
        self.transfers = Transfers()
        self._synced: dict[str, str] = {}
        self._lock = threading.Lock()

    def fetch(self, name: str, attrs: Mapping[str, str]) -> str:
        """The ``LocalDir.sync`` hook: the client's directory ``name`` as ``attrs`` select it."""
        include = _json_list(attrs, "local.includepattern")
        exclude = _json_list(attrs, "local.excludepatterns")
        follow = _json_list(attrs, "local.followpaths")
        key = json.dumps([name, include, exclude, follow])
        with self._lock:
            if key in self._synced:
                return self._synced[key]
            sess = self.session
            sid = attrs.get("local.session")
            if sid and (sess is None or sid != sess.id):
                sess = self.builds.sessions.get(sid)
            if sess is None:
                raise MasonError(f"local://{name} needs a session with the client's files (none given)")
            shared = attrs.get("local.sharedkeyhint", name)
            slot = self.builds.slots.take(json.dumps([sess.shared_key, shared, key]))
            self.slots.append(slot)
            stats = sess.fetch_dir(self.builds.pb, name, str(slot), include=include, exclude=exclude, follow=follow)
            self.transfers.files += stats.requested
            self.transfers.bytes += stats.data_bytes
            self.builds.on_transfer(name, stats)
            self._synced[key] = str(slot)
            return str(slot)

    def secrets(self) -> Any:
        """The build's secrets and SSH agents: the session's (none without one)."""
        if self.session is None:
            return None
        from mason.server.secrets import SessionSecrets

        return SessionSecrets(self.session, self.builds.pb)

    def syncer(self, name: str) -> Callable[[Mapping[str, str]], str]:
        return lambda attrs: self.fetch(name, attrs)

    def close(self) -> None:
        for s in self.slots:
            self.builds.slots.give(s)


class Builds:
    """The daemon's builds: Solve runs one, Status streams one's events."""

    def __init__(self, stubs: Any, solver: Any, sessions: Sessions, *, root: str | None, state: Path):
        self.pb, self.solver, self.sessions, self.root = stubs, solver, sessions, root
        self.state = state
        self.slots = LocalSlots(state / "locals")
        self._channels: dict[str, StatusChannel] = {}
        self._tokens: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.transfer_log = state / "transfers.log"  # one JSON line per local transfer
        self.bridge: Bridge | None = None  # the LLBBridge that gateway clients' builds return through

    def on_transfer(self, name: str, stats: Any) -> None:
        line = json.dumps({"name": name, "entries": stats.entries, "files": stats.requested,
                           "bytes": stats.data_bytes, "seconds": round(stats.seconds, 4)})
        with self._lock, open(self.transfer_log, "a") as f:
            f.write(line + "\n")

    def _channel(self, ref: str) -> StatusChannel:
        with self._lock:
            now = time.monotonic()
            for k, ch in list(self._channels.items()):
                if ch.finished_at is not None and now - ch.finished_at > STATUS_KEEP:
                    del self._channels[k]
            return self._channels.setdefault(ref, StatusChannel())

    def cancel_all(self) -> None:
        from mason.backends.solver.scheduler import Cancelled

        with self._lock:
            tokens = list(self._tokens.values())
        for t in tokens:
            t.cancel(Cancelled("mason serve is shutting down"))

    def status(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        yield from self._channel(request.Ref).read(context.is_active)

    def solve(self, request: Any, context: grpc.ServicerContext) -> Any:
        from mason.backends.solver.scheduler import Cancelled, CancelToken

        ref = request.Ref or os.urandom(8).hex()
        channel = self._channel(ref)
        token = CancelToken()
        context.add_callback(lambda: token.cancel(Cancelled("the client went away")))
        with self._lock:
            self._tokens[ref] = token
        error: str | None = None
        try:
            return self._solve(request, ref, channel, token)
        except MasonError as e:
            error = e.format()
        except Exception as e:  # noqa: BLE001 - a bug in mason: one line to the client, not a dead daemon
            import traceback

            traceback.print_exc()
            error = f"internal error in mason serve: {type(e).__name__}: {e}"
        finally:
            channel.close()
            with self._lock:
                self._tokens.pop(ref, None)
        code = grpc.StatusCode.CANCELLED if token.is_set() else grpc.StatusCode.UNKNOWN
        context.abort(code, error or "failed")

    # -- the build --------------------------------------------------------------------------

    def _solve(self, request: Any, ref: str, channel: StatusChannel, token: Any) -> Any:
        if os.environ.get("MASON_SERVE_DEBUG"):
            import sys

            print(f"Solve {request}", file=sys.stderr, flush=True)
        from mason.backends.solver.solver import LocalDir

        exporters = [(e.Type, dict(e.Attrs)) for e in request.Exporters]
        if not exporters and request.Exporter:
            exporters = [(request.Exporter, dict(request.ExporterAttrs))]
        from mason.backends.sources.auth import scoped_credentials
        from mason.server.secrets import SessionCredentials

        session = self.sessions.get(request.Session) if request.Session else None
        build = Build(self, session)
        sink = EventsToStatus(self.pb, channel)
        with ExitStack() as stack:
            stack.enter_context(scoped_credentials(SessionCredentials(session, self.pb)))
            stack.callback(build.close)
            work = Path(tempfile.mkdtemp(prefix="build-", dir=self.state))
            stack.callback(shutil.rmtree, work, True)
            outputs, client_outputs = self._outputs(exporters, work, session)
            caches = Caches(session, work, sink)
            cache_to = caches.exports([(e.Type, dict(e.Attrs)) for e in request.Cache.Exports])
            allow = tuple(request.Entitlements)
            locals_ = {n: LocalDir(str(work), sync=build.syncer(n)) for n in ("context", "dockerfile")}
            call: FrontendCall | None = FrontendCall.of(request)
            if call is not None and not call.frontend and not call.definition:
                call = self._await_gateway(ref, token)  # buildctl's build function runs on the LLBBridge
            if call is None:
                raise MasonError("mason serve: the build returned an empty result (nothing to export)")
            cache_from = caches.imports([(e.Type, dict(e.Attrs)) for e in request.Cache.Imports]
                                        + list(call.cache_imports))
            if call.definition:
                res = self._solve_definition(call, build, outputs, locals_, allow, sink, token, cache_from, cache_to)
            elif call.frontend == FRONTEND_DOCKERFILE:
                res = self._solve_dockerfile(call, build, work, outputs, locals_, allow, sink, token,
                                             cache_from, cache_to)
            else:
                raise MasonError(f"mason serve: frontend {call.frontend!r} is not supported "
                                 f"(use {FRONTEND_DOCKERFILE} or send a Definition)")
            for idx, kind, path in client_outputs:
                assert session is not None
                if kind == "local":
                    from mason.backends.sources.local import select_local

                    root, entries = select_local(path)
                    session.send_dir(self.pb, str(root), entries, exporter_id=idx)
                else:
                    session.send_file(self.pb, path, exporter_id=idx)
            cache_manifest = caches.send()
        resp = self.pb.control.SolveResponse()
        if cache_manifest:
            resp.ExporterResponse["cache.manifest"] = cache_manifest
        if res.digest:
            resp.ExporterResponse["containerimage.digest"] = res.digest
        if res.names:
            resp.ExporterResponse["image.name"] = ",".join(res.names)
        return resp

    def _await_gateway(self, ref: str, token: Any) -> FrontendCall | None:
        if self.bridge is None:
            raise MasonError("mason serve: the request has neither a frontend nor a Definition")
        fwd = self.bridge.register(ref)
        try:
            return fwd.wait(token.is_set)
        finally:
            self.bridge.unregister(fwd)

    def _outputs(self, exporters: list[tuple[str, dict[str, str]]], work: Path,
                 session: Session | None) -> tuple[list[str], list[tuple[int, str, str]]]:
        """mason ``--output`` specs for the exporters; those that land on the client write into
        ``work`` first: (exporter index, type, path) to send."""
        specs: list[str] = []
        client: list[tuple[int, str, str]] = []
        for i, (kind, attrs) in enumerate(exporters):
            attrs = dict(attrs)
            if kind in CLIENT_OUTPUTS:
                if session is None:
                    raise MasonError(f"output type={kind} needs the client's session to send the result")
                attrs.pop("dest", None)
                if kind == "local":  # the image's owners go to the client, which maps them (as buildkitd)
                    attrs["preserve-owner"] = "true"
                path = work / f"output-{i}"
                attrs["dest"] = str(path)
                client.append((i, kind, str(path)))
            parts = [f"type={kind}"] + [f"{k}={v}" for k, v in sorted(attrs.items())]
            specs.append(",".join(parts))
        return specs, client

    def _solve_dockerfile(self, call: FrontendCall, build: Build, work: Path, outputs: list[str],
                          locals_: dict[str, Any], allow: tuple[str, ...], sink: Any, token: Any,
                          cache_from: tuple[str, ...], cache_to: tuple[str, ...]) -> Any:
        from mason.driver import BuildRequest
        from mason.driver import build as run_build

        fa = dict(call.attrs)
        filename = (fa.pop("filename", "") or "Dockerfile").lstrip("/")
        if any(part in ("", ".", "..") for part in filename.split("/")):
            raise MasonError(f"invalid Dockerfile name {filename!r} (a path inside the dockerfile directory)")
        if build.session is None:
            raise MasonError("the dockerfile.v0 frontend needs a session with the client's files")
        df_dir = work / "dockerfile"
        df_include = [filename, filename + ".dockerignore"]
        stats = build.session.fetch_dir(self.pb, "dockerfile", str(df_dir), include=df_include)
        self.on_transfer("dockerfile", stats)
        dockerfile = df_dir / filename
        if not dockerfile.is_file():
            raise MasonError(f"failed to read dockerfile: open {filename}: no such file or directory")
        ctx_dir = work / "context"
        stats = build.session.fetch_dir(self.pb, "context", str(ctx_dir), include=[".dockerignore"])
        self.on_transfer("context", stats)
        build_contexts = self._named_contexts(fa, build, work, locals_)
        build_args = {k[len("build-arg:"):]: v for k, v in fa.items() if k.startswith("build-arg:")}
        no_cache = "no-cache" in fa and fa["no-cache"] == ""
        no_cache_filter = tuple(s for s in fa.get("no-cache", "").split(",") if s)
        shm = fa.get("shm-size", "")
        if shm and not shm.isdigit():
            raise MasonError(f"invalid shm-size {shm!r}: expected a number of bytes")
        req = BuildRequest(context=str(ctx_dir), dockerfile=str(dockerfile), outputs=tuple(outputs),
                           target=fa.get("target") or None, build_args=build_args, platform=fa.get("platform") or None,
                           allow=allow, no_cache=no_cache, no_cache_filter=no_cache_filter, root=self.root,
                           events=sink, solver=self.solver, locals=locals_, cancel=token,
                           secret_store=build.secrets(), build_contexts=build_contexts, shm_size=int(shm or 0),
                           ulimits=tuple(u for u in fa.get("ulimit", "").split(",") if u),
                           cache_from=cache_from, cache_to=cache_to)
        try:
            return run_build(req)
        except MasonError as e:
            raise _client_path(e, str(df_dir) + "/") from None

    def _named_contexts(self, fa: Mapping[str, str], build: Build, work: Path,
                        locals_: dict[str, Any]) -> tuple[str, ...]:
        """The ``context:NAME`` options (``--build-context``) as the driver's ``NAME=VALUE``:
        ``local:DIR`` is the client's directory DIR, read when a step needs it (its
        ``.dockerignore`` first, as the context's); ``docker-image://``, URLs and git as given."""
        from mason.backends.solver.solver import LocalDir

        assert build.session is not None
        out: list[str] = []
        for key, value in fa.items():
            if not key.startswith("context:"):
                continue
            name = key[len("context:"):]
            if value.startswith("oci-layout://"):
                value = self._oci_layout(name, value, build, work / f"layout-{len(out)}")
            if value.startswith("local:"):
                local = value[len("local:"):]
                if not local:
                    raise MasonError(f"mason serve: context:{name}={value}: not a directory of the session")
                ignore = work / f"named-{len(out)}"
                stats = build.session.fetch_dir(self.pb, local, str(ignore), include=[".dockerignore"])
                self.on_transfer(local, stats)
                locals_[name] = LocalDir(str(work), sync=build.syncer(local))
                value = str(ignore)
            out.append(f"{name}={value}")
        return tuple(out)

    def _oci_layout(self, name: str, value: str, build: Build, dest: Path) -> str:
        """``oci-layout://STORE[:TAG]@DIGEST`` (as buildx and buildctl send it: the client's
        session serves the layout as content store ``oci:STORE``) fetched into ``dest``, as the
        driver's ``oci-layout://DIR@DIGEST``."""
        from mason.server.cachestore import ClientStore, fetch_layout

        assert build.session is not None
        ref, at, digest = value[len("oci-layout://"):].partition("@")
        store = ref.rsplit(":", 1)[0] if ":" in ref else ref
        if not at or not store or not digest.startswith("sha256:") or len(digest) != 71:
            raise MasonError(f"mason serve: context:{name}={value}: expected oci-layout://STORE[:TAG]@sha256:DIGEST "
                             "(the client resolves the tag)")
        fetch_layout(ClientStore(build.session, value, store_id=f"oci:{store}", methods=("Info", "Read")), digest,
                     dest)
        return f"oci-layout://{dest}@{digest}"

    def _solve_definition(self, call: FrontendCall, build: Build, outputs: list[str], locals_: dict[str, Any],
                          allow: tuple[str, ...], sink: Any, token: Any, cache_from: tuple[str, ...],
                          cache_to: tuple[str, ...]) -> Any:
        from mason.driver import solve_graph
        from mason.ir.codec import decode_graph

        graph = decode_graph(call.definition)
        return solve_graph(graph, outputs=outputs, locals=locals_, allow=allow, root=self.root, events=sink,
                           solver=self.solver, cancel=token, record={"definition": "(buildctl)"},
                           secret_store=build.secrets(), cache_from=cache_from, cache_to=cache_to)
