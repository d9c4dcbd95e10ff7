"""The client's side of BuildKit's session protocol (``mason build --host``).

The client opens ``Control/Session`` on the daemon — a bidirectional stream of ``BytesMessage``
— with headers naming the session and listing the methods it serves; inside the stream runs a
whole HTTP/2 connection on which the *daemon is the gRPC client*. Here the client serves:

* ``moby.filesync.v1.FileSync/DiffCopy``: its local directories (``context``, ``dockerfile``),
  filtered by the patterns the daemon sends in the call's headers, with fsutil's stat/data
  packets (:func:`mason.server.transfer.send_dir`): the daemon asks only for files it lacks.
* ``moby.filesync.v1.FileSend/DiffCopy``: the outputs that land here — a directory for
  ``type=local`` (fsutil packets, :func:`~mason.server.transfer.receive_dir`), a file (or stdout)
  for ``tar``/``oci``/``docker`` (raw bytes messages), chosen by the exporter id header.
* ``moby.buildkit.secrets.v1.Secrets/GetSecret``: ``--secret`` values, read by the solver's own
  :class:`~mason.backends.solver.secrets.Secrets` (file or environment variable, size limit).
* ``moby.sshforward.v1.SSH``: ``--ssh`` agents, each connection relayed to the agent socket.
* ``moby.filesync.v1.Auth/Credentials``: registry credentials from this user's Docker config
  (``$DOCKER_CONFIG/config.json``, its credential helpers), as buildctl answers: the daemon
  pulls and pushes with the client's credentials, never its own.
* ``grpc.health.v1.Health/Check``: BuildKit's daemon checks the session's health and drops a
  session that does not answer.

grpcio serves on addresses, not on a byte stream, so the server listens on a private unix
socket (in a 0700 directory); one connection to it is pumped to and from the stream.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import sys
import tempfile
import threading
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from mason.backends.solver.secrets import Secrets
from mason.backends.sources.auth import CredentialStore
from mason.ir.errors import MasonError
from mason.server import transfer

_H = "x-docker-expose-session-"
_READ = 1 << 16
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
FILESYNC = "/moby.filesync.v1.FileSync/DiffCopy"
FILESEND = "/moby.filesync.v1.FileSend/DiffCopy"
SECRETS = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
SSH_CHECK = "/moby.sshforward.v1.SSH/CheckAgent"
SSH_FORWARD = "/moby.sshforward.v1.SSH/ForwardAgent"
CONTENT_INFO = "/containerd.services.content.v1.Content/Info"
CONTENT_READ = "/containerd.services.content.v1.Content/Read"
STORE_HEADER = "buildkit-attachable-store-id"
AUTH_CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"
_SERVING = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}


@dataclass
class Output:
    """An output the daemon sends back: ``kind`` local (a directory) or file (``dest``; ``-``:
    stdout). A local directory's files are the caller's unless ``preserve_owner``."""

    kind: str
    dest: str
    preserve_owner: bool = False


def _headers(md: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in md:
        out.setdefault(k.lower(), []).append(v if isinstance(v, str) else v.decode())
    for k in [k for k in out if k.endswith("-encoded")]:
        base = k[: -len("-encoded")]
        out[base] = [urllib.parse.unquote_plus(v) for v in out.get(base, [])]
    return out


def shared_key(dirs: Mapping[str, str]) -> str:
    """The session's shared key: the same for the same directories of this machine and user, so
    a daemon that keeps a client's directories between builds (mason serve, buildkitd) finds
    last build's copy and asks only for what changed."""
    import hashlib
    import json

    machine = ""
    with contextlib.suppress(OSError):
        with open("/etc/machine-id") as f:
            machine = f.read().strip()
    ident = json.dumps([machine, socket.gethostname(), os.getuid(),
                        sorted((k, os.path.realpath(v)) for k, v in dirs.items())])
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


class ClientSession:
    """The services this client offers one build, served over the ``Control/Session`` stream."""

    def __init__(self, pb: Any, dirs: Mapping[str, str], *, secrets: Secrets | None = None,
                 outputs: Mapping[int, Output] | None = None, stores: Mapping[str, str] | None = None):
        self.pb = pb
        self.stores = dict(stores or {})  # content store id (oci:NAME) -> OCI layout directory, read-only
        self.id = uuid.uuid4().hex
        self.shared_key = shared_key(dirs)
        self.dirs = dict(dirs)
        self.secrets = secrets or Secrets()
        self.credential_store = CredentialStore()
        self.outputs = dict(outputs or {})
        self.errors: list[str] = []
        self.sent = transfer.Stats()
        self._tmp = tempfile.mkdtemp(prefix="mason-client-session-")
        self._path = os.path.join(self._tmp, "s")
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="mason-session"),
                                   handlers=[_Handlers(self)],
                                   options=[("grpc.max_receive_message_length", 64 << 20),
                                            ("grpc.max_send_message_length", 64 << 20)])
        self._server.add_insecure_port(f"unix:{self._path}")
        self._server.start()
        self._conn: socket.socket | None = None
        self._out: queue.Queue[bytes | None] = queue.Queue()
        self._call: Any = None

    def methods(self) -> list[str]:
        m = [HEALTH_CHECK, FILESYNC, FILESEND, AUTH_CREDENTIALS]
        if self.secrets.has_any():
            m.append(SECRETS)
        if self.secrets.ssh:
            m += [SSH_CHECK, SSH_FORWARD]
        if self.stores:
            m += [CONTENT_INFO, CONTENT_READ]
        return m

    def metadata(self) -> list[tuple[str, str]]:
        md = [(_H + "uuid", self.id), (_H + "name", "mason"), (_H + "sharedkey", self.shared_key)]
        return md + [(_H + "grpc-method", m) for m in self.methods()]

    def open(self, control: Any) -> None:
        """Open ``Control/Session`` on the daemon (``control`` a channel) and pump it."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self._path)
        self._conn = conn
        msg = self.pb.control.BytesMessage
        call = control.stream_stream("/moby.buildkit.v1.Control/Session", request_serializer=msg.SerializeToString,
                                     response_deserializer=msg.FromString)

        def requests() -> Iterator[Any]:  # our server's bytes → the daemon
            try:
                while data := conn.recv(_READ):
                    yield msg(data=data)
            except OSError:
                return

        self._call = call(requests(), metadata=self.metadata())

        def responses() -> None:  # the daemon's bytes → our server
            try:
                for m in self._call:
                    conn.sendall(m.data)
            except (grpc.RpcError, OSError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=responses, name="mason-session-pump", daemon=True).start()

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)
            self._conn.close()
        self._server.stop(grace=None)
        self.secrets.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- the services --------------------------------------------------------------------------

    def diffcopy(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        """FileSync: send the local directory the call names."""
        import json

        from mason.backends.sources.local import ATTR_EXCLUDE, ATTR_FOLLOW, ATTR_INCLUDE, select_local

        md = _headers(context.invocation_metadata())
        name = (md.get("dir-name") or [""])[0]
        root = self.dirs.get(name)
        if root is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no local directory {name!r} in this session")
        attrs = {ATTR_INCLUDE: json.dumps(md.get("include-patterns", [])),
                 ATTR_EXCLUDE: json.dumps(md.get("exclude-patterns", [])),
                 ATTR_FOLLOW: json.dumps(md.get("followpaths", []))}
        real, entries = select_local(root, attrs)
        return self._packets(requests, lambda conn: transfer.send_dir(conn, self.pb, str(real), entries),
                             f"sending {name!r}")

    def filesend(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        """FileSend: receive the output with the exporter id of the call."""
        md = _headers(context.invocation_metadata())
        idx = int((md.get("buildkit-attachable-exporter-id") or ["0"])[0] or 0)
        out = self.outputs.get(idx)
        if out is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no output {idx} in this session")
        if out.kind == "local":
            os.makedirs(out.dest, exist_ok=True)
            return self._packets(requests, lambda conn: transfer.receive_dir(
                conn, self.pb, out.dest, merge=True, chown=out.preserve_owner), "writing the output")
        return self._file(requests, out.dest)

    def _packets(self, requests: Iterator[bytes], work: Any, what: str) -> Iterator[bytes]:
        pkt = self.pb.fsutil.Packet

        def incoming() -> Iterator[Any]:
            # the daemon may end the call right after its last packet (mason serve cancels it
            # once it has sent FIN): the end of the stream, which the transfer checks it may see
            try:
                for b in requests:
                    yield pkt.FromString(b)
            except grpc.RpcError:
                return

        conn = transfer.QueueConn(incoming())

        def run() -> None:
            try:
                stats = work(conn)
                self.sent.entries += stats.entries
                self.sent.requested += stats.requested
                self.sent.data_bytes += stats.data_bytes
            except (MasonError, OSError, grpc.RpcError) as e:
                self.errors.append(f"{what}: {e or type(e).__name__}")
            finally:
                conn.close()

        threading.Thread(target=run, name="mason-session-transfer", daemon=True).start()
        for p in conn.outgoing():
            yield p.SerializeToString()

    def _file(self, requests: Iterator[bytes], dest: str) -> Iterator[bytes]:
        msg = self.pb.filesync.BytesMessage
        if dest == "-":
            f = sys.stdout.buffer
            for b in requests:
                f.write(msg.FromString(b).data)
            f.flush()
            return iter(())
        tmp = f"{dest}.mason-tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as f:
                for b in requests:
                    f.write(msg.FromString(b).data)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return iter(())

    def get_secret(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        s = self.pb.secrets
        sid = s.GetSecretRequest.FromString(request).ID
        value = self.secrets.value(sid)
        if value is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"secret {sid} not found")
        return s.GetSecretResponse(data=value).SerializeToString()

    def credentials(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Auth/Credentials: the user's credentials for the host the daemon names (an empty
        answer: none, the daemon goes anonymous). An identity token is sent as the secret
        with no username, as buildctl does."""
        a = self.pb.auth
        host = a.CredentialsRequest.FromString(request).Host
        try:
            creds = self.credential_store.get(host)
        except MasonError as e:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, e.message)
        if creds is None:
            return a.CredentialsResponse().SerializeToString()
        if creds.identity_token:
            return a.CredentialsResponse(Secret=creds.identity_token).SerializeToString()
        return a.CredentialsResponse(Username=creds.username, Secret=creds.password).SerializeToString()

    def _blob(self, digest: str, context: grpc.ServicerContext) -> str:
        """The file of blob ``digest`` in the layout the call's store header names."""
        import re

        sid = next((v for k, v in context.invocation_metadata() if k == STORE_HEADER), "")
        layout = self.stores.get(sid if isinstance(sid, str) else sid.decode())
        if layout is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"unknown store {sid!r}")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"unsupported digest {digest!r}")
        path = os.path.join(layout, "blobs", "sha256", digest[7:])
        if not os.path.isfile(path):
            _abort(context, grpc.StatusCode.NOT_FOUND, f"content {digest}: not found")
        return path

    def content_info(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        from mason.backends.containerd import _protos

        c = _protos.load().content
        digest = c.InfoRequest.FromString(request).digest
        size = os.path.getsize(self._blob(digest, context))
        return c.InfoResponse(info=c.Info(digest=digest, size=size)).SerializeToString()

    def content_read(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        from mason.backends.containerd import _protos

        c = _protos.load().content
        req = c.ReadContentRequest.FromString(request)
        path = self._blob(req.digest, context)
        with open(path, "rb") as f:
            f.seek(req.offset)
            left = req.size if req.size > 0 else -1
            offset = req.offset
            while left != 0:
                data = f.read(transfer.CHUNK if left < 0 else min(left, transfer.CHUNK))
                if not data:
                    break
                yield c.ReadContentResponse(offset=offset, data=data).SerializeToString()
                offset += len(data)
                if left > 0:
                    left -= len(data)

    def check_agent(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        s = self.pb.ssh
        sid = s.CheckAgentRequest.FromString(request).ID or "default"
        try:
            sock = self.secrets.ssh_socket(sid)
        except MasonError as e:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, e.message)
        if sock is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no SSH agent {sid!r} in this session")
        return s.CheckAgentResponse().SerializeToString()

    def forward_agent(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        msg = self.pb.ssh.BytesMessage
        md = _headers(context.invocation_metadata())
        sid = (md.get("buildkit.ssh.id") or ["default"])[0] or "default"
        path = self.secrets.ssh_socket(sid)
        if path is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no SSH agent {sid!r} in this session")
        agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        agent.connect(path)

        def up() -> None:
            try:
                for b in requests:
                    agent.sendall(msg.FromString(b).data)
            except (OSError, grpc.RpcError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    agent.shutdown(socket.SHUT_WR)

        threading.Thread(target=up, name="mason-ssh-up", daemon=True).start()
        try:
            while data := agent.recv(_READ):
                yield msg(data=data).SerializeToString()
        except OSError:
            pass
        finally:
            agent.close()


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: ServicerContext.abort raises")


class _Handlers(grpc.GenericRpcHandler):
    """Every method of :class:`ClientSession`, on raw bytes (each handler parses its messages)."""

    def __init__(self, s: ClientSession):
        self.s = s

    def service(self, details: Any) -> Any:
        m = details.method
        s = self.s
        if m == HEALTH_CHECK:
            return grpc.unary_unary_rpc_method_handler(lambda req, ctx: _SERVING)
        if m == FILESYNC:
            return grpc.stream_stream_rpc_method_handler(s.diffcopy)
        if m == FILESEND:
            return grpc.stream_stream_rpc_method_handler(s.filesend)
        if m == SECRETS:
            return grpc.unary_unary_rpc_method_handler(s.get_secret)
        if m == AUTH_CREDENTIALS:
            return grpc.unary_unary_rpc_method_handler(s.credentials)
        if m == SSH_CHECK:
            return grpc.unary_unary_rpc_method_handler(s.check_agent)
        if m == SSH_FORWARD:
            return grpc.stream_stream_rpc_method_handler(s.forward_agent)
        if m == CONTENT_INFO and s.stores:
            return grpc.unary_unary_rpc_method_handler(s.content_info)
        if m == CONTENT_READ and s.stores:
            return grpc.unary_stream_rpc_method_handler(s.content_read)
        return None
