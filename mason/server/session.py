"""BuildKit's session protocol on ``Control/Session``.

A client opens ``Control/Session``, a bidirectional stream of ``BytesMessage``, with headers
naming the session (``X-Docker-Expose-Session-Uuid``, ``-Name``, ``-Sharedkey``) and listing the
gRPC methods it serves (``-Grpc-Method``). Inside the stream runs a whole HTTP/2 connection on
which the *daemon is the gRPC client*: it calls the client's FileSync (local directories),
FileSend (outputs), Secrets, SSH and Auth services.

grpcio dials addresses, not byte streams, so each session gets a private unix socket (in a
0700 directory) that its channel dials; the one connection accepted there is pumped to and
from the stream. A session ends when the client closes the stream (or goes away): its
channel is closed and the builds using it see their calls fail.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from mason.ir.errors import MasonError
from mason.server import transfer

_H = "x-docker-expose-session-"
FILESYNC_DIFFCOPY = "/moby.filesync.v1.FileSync/DiffCopy"
FILESEND_DIFFCOPY = "/moby.filesync.v1.FileSend/DiffCopy"
SECRETS_GET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
SSH_CHECK = "/moby.sshforward.v1.SSH/CheckAgent"
SSH_FORWARD = "/moby.sshforward.v1.SSH/ForwardAgent"
AUTH_CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"
SSH_ID_HEADER = "buildkit.ssh.id"
_READ = 1 << 16
WAIT_FOR_SESSION = 10.0  # seconds a Solve waits for its session's stream to arrive (as BuildKit)


def _header(value: str) -> str:
    """fsutil's header encoding: values with non-ASCII characters are URL-quoted (and the key
    gets a ``-encoded`` sibling)."""
    return urllib.parse.quote_plus(value) if any(ord(c) > 127 for c in value) else value


def header_md(opts: dict[str, Sequence[str]]) -> list[tuple[str, str]]:
    md: list[tuple[str, str]] = []
    for key, values in opts.items():
        encoded = any(any(ord(c) > 127 for c in v) for v in values)
        md += [(key, _header(v) if encoded else v) for v in values]
        if encoded:
            md.append((key + "-encoded", "1"))
    return md


class Session:
    """One client session: its id, shared key, the methods it serves and a channel to them."""

    def __init__(self, sid: str, name: str, shared_key: str, methods: set[str], channel: grpc.Channel):
        self.id, self.name, self.shared_key, self.methods = sid, name, shared_key, methods
        self.channel = channel
        self.closed = threading.Event()

    def supports(self, method: str) -> bool:
        return method in self.methods

    def _need(self, method: str, what: str) -> None:
        if self.closed.is_set():
            raise MasonError(f"the client's session ended before {what}")
        if not self.supports(method):
            raise MasonError(f"the client does not offer {what} (no {method} in its session)")

    def _packets(self, method: str) -> Any:
        from mason.protos import buildkit

        pkt = buildkit.load().fsutil.Packet
        return self.channel.stream_stream(method, request_serializer=pkt.SerializeToString,
                                          response_deserializer=pkt.FromString)

    def fetch_dir(self, pb: Any, name: str, dest: str, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                  follow: Sequence[str] = ()) -> transfer.Stats:
        """Make ``dest`` hold the client's local directory ``name`` (filtered by the client, as
        BuildKit asks); only files that differ from what ``dest`` holds cross."""
        self._need(FILESYNC_DIFFCOPY, f"the local directory {name!r}")
        opts: dict[str, Sequence[str]] = {"dir-name": [name]}
        if include:
            opts["include-patterns"] = list(include)
        if exclude:
            opts["exclude-patterns"] = list(exclude)
        if follow:
            opts["followpaths"] = list(follow)
        import time

        t0 = time.monotonic()
        conn = transfer.QueueConn()
        call = self._packets(FILESYNC_DIFFCOPY)(conn.outgoing(), metadata=header_md(opts))
        conn.incoming = iter(call)
        try:
            stats = transfer.receive_dir(conn, pb, dest)
            stats.seconds = time.monotonic() - t0
            return stats
        except grpc.RpcError as e:
            raise MasonError(f"reading the client's directory {name!r} failed: {_rpc_message(e)}") from None
        finally:
            conn.close()
            call.cancel()

    def send_dir(self, pb: Any, root: str, entries: Any, *, exporter_id: int = 0) -> transfer.Stats:
        """Send a directory to the client's ``type=local`` output."""
        self._need(FILESEND_DIFFCOPY, "a local output")
        conn = transfer.QueueConn()
        md = [("buildkit-attachable-exporter-id", str(exporter_id))]
        call = self._packets(FILESEND_DIFFCOPY)(conn.outgoing(), metadata=md)
        conn.incoming = iter(call)
        try:
            stats = transfer.send_dir(conn, pb, root, entries)
            conn.close()
            # wait for the client to end the call: dropping it now could cancel it before the
            # last packet (FIN) left, and the client would see a cancelled transfer
            for _ in call:
                pass
            return stats
        except grpc.RpcError as e:
            raise MasonError(f"sending the output to the client failed: {_rpc_message(e)}") from None
        finally:
            conn.close()

    def send_file(self, pb: Any, path: str, *, exporter_id: int = 0, meta: dict[str, str] | None = None) -> int:
        """Stream a file (an ``oci``/``docker``/``tar`` output) to the client as bytes messages."""
        self._need(FILESEND_DIFFCOPY, "a file output")
        msg = pb.filesync.BytesMessage
        md = [("buildkit-attachable-exporter-id", str(exporter_id))]
        md += [("exporter-md-" + k, _header(v)) for k, v in (meta or {}).items()]
        call = self.channel.stream_stream(FILESEND_DIFFCOPY, request_serializer=msg.SerializeToString,
                                          response_deserializer=msg.FromString)
        sent = [0]

        def chunks() -> Iterator[Any]:
            with open(path, "rb") as f:
                while data := f.read(transfer.CHUNK):
                    sent[0] += len(data)
                    yield msg(data=data)

        try:
            for _ in call(chunks(), metadata=md):
                pass
        except grpc.RpcError as e:
            raise MasonError(f"sending the output to the client failed: {_rpc_message(e)}") from None
        return sent[0]


    def get_secret(self, pb: Any, sid: str, limit: int) -> bytes | None:
        """The client's secret ``sid`` (None when it has none by that id)."""
        if self.closed.is_set():
            raise MasonError(f"the client's session ended before the secret {sid!r} was read")
        if not self.supports(SECRETS_GET):
            return None
        s = pb.secrets
        call = self.channel.unary_unary(SECRETS_GET, request_serializer=s.GetSecretRequest.SerializeToString,
                                        response_deserializer=s.GetSecretResponse.FromString)
        try:
            data: bytes = call(s.GetSecretRequest(ID=sid)).data
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
                return None
            raise MasonError(f"reading the secret {sid!r} from the client failed: {_rpc_message(e)}") from None
        if len(data) > limit:
            raise MasonError(f"secret {sid}: the client's value is too big (the limit is {limit // 1024} KiB)")
        return data

    def credentials(self, pb: Any, host: str) -> tuple[str, str] | None:
        """The client's (username, secret) for the registry ``host`` (BuildKit's names:
        ``registry-1.docker.io`` for Docker Hub); None when it has none or offers no Auth."""
        if self.closed.is_set():
            raise MasonError(f"the client's session ended before the credentials for {host} were read")
        if not self.supports(AUTH_CREDENTIALS):
            return None
        a = pb.auth
        call = self.channel.unary_unary(AUTH_CREDENTIALS, request_serializer=a.CredentialsRequest.SerializeToString,
                                        response_deserializer=a.CredentialsResponse.FromString)
        try:
            resp = call(a.CredentialsRequest(Host=host))
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
                return None
            raise MasonError(f"reading the credentials for {host} from the client failed: {_rpc_message(e)}") from None
        if not resp.Username and not resp.Secret:
            return None
        return resp.Username, resp.Secret

    def has_agent(self, pb: Any, sid: str) -> bool:
        """Whether the client forwards an SSH agent ``sid``."""
        if self.closed.is_set() or not (self.supports(SSH_CHECK) and self.supports(SSH_FORWARD)):
            return False
        s = pb.ssh
        call = self.channel.unary_unary(SSH_CHECK, request_serializer=s.CheckAgentRequest.SerializeToString,
                                        response_deserializer=s.CheckAgentResponse.FromString)
        try:
            call(s.CheckAgentRequest(ID=sid))
        except grpc.RpcError:
            return False
        return True

    def forward_agent(self, pb: Any, sid: str, conn: socket.socket) -> None:
        """Relay one connection to the client's SSH agent ``sid`` until either side closes."""
        msg = pb.ssh.BytesMessage
        call = self.channel.stream_stream(SSH_FORWARD, request_serializer=msg.SerializeToString,
                                          response_deserializer=msg.FromString)

        def requests() -> Iterator[Any]:
            try:
                while data := conn.recv(_READ):
                    yield msg(data=data)
            except OSError:
                return

        responses = call(requests(), metadata=[(SSH_ID_HEADER, sid)])
        try:
            for m in responses:
                conn.sendall(m.data)
        except (grpc.RpcError, OSError):
            pass
        finally:
            responses.cancel()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def _rpc_message(e: grpc.RpcError) -> str:
    details = getattr(e, "details", None)
    return (details() if callable(details) else None) or str(e)


class Sessions:
    """The sessions open on this daemon, by id."""

    def __init__(self, stubs: Any):
        self.pb = stubs
        self._by_id: dict[str, Session] = {}
        self._cond = threading.Condition()

    def get(self, sid: str, timeout: float = WAIT_FOR_SESSION) -> Session:
        with self._cond:
            if not self._cond.wait_for(lambda: sid in self._by_id, timeout):
                raise MasonError(f"no session {sid!r}: the client's session did not arrive")
            return self._by_id[sid]

    def serve(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        """The ``Control/Session`` handler: tunnel the stream to a channel the daemon dials."""
        md: dict[str, list[str]] = {}
        for k, v in context.invocation_metadata():
            md.setdefault(k.lower(), []).append(v if isinstance(v, str) else v.decode())
        sid = (md.get(_H + "uuid") or [""])[0]
        if not sid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the session has no X-Docker-Expose-Session-Uuid")
        methods = {m for v in md.get(_H + "grpc-method", []) for m in v.split(",") if m}
        tmp = tempfile.mkdtemp(prefix="mason-session-")
        path = os.path.join(tmp, "s")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        out: queue.Queue[bytes | None] = queue.Queue()
        conn_box: list[socket.socket] = []
        done = threading.Event()

        def close_conn() -> None:
            done.set()
            for c in conn_box:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                listener.close()

        def pump() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                out.put(None)
                return
            conn_box.append(conn)
            listener.close()  # one connection per session
            threading.Thread(target=to_daemon, args=(conn,), daemon=True, name=f"session-{sid[:8]}-in").start()
            try:
                for msg in request_iterator:  # client → daemon bytes
                    conn.sendall(msg.data)
            except (OSError, grpc.RpcError, ValueError):
                pass
            finally:
                close_conn()

        def to_daemon(conn: socket.socket) -> None:
            try:
                while data := conn.recv(_READ):  # daemon → client bytes
                    out.put(data)
            except OSError:
                pass
            out.put(None)

        channel = grpc.insecure_channel(f"unix:{path}", options=[
            ("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20),
            ("grpc.enable_retries", 0)])
        sess = Session(sid, (md.get(_H + "name") or [""])[0], (md.get(_H + "sharedkey") or [""])[0], methods,
                       channel)
        context.add_callback(close_conn)
        threading.Thread(target=pump, daemon=True, name=f"session-{sid[:8]}").start()
        with self._cond:
            self._by_id[sid] = sess
            self._cond.notify_all()
        msg = self.pb.control.BytesMessage
        try:
            while True:
                try:
                    data = out.get(timeout=1.0)
                except queue.Empty:
                    if not context.is_active():
                        return
                    continue
                if data is None:
                    return
                yield msg(data=data)
        finally:
            with self._cond:
                if self._by_id.get(sid) is sess:
                    del self._by_id[sid]
            sess.closed.set()
            close_conn()
            channel.close()
            shutil.rmtree(tmp, ignore_errors=True)
