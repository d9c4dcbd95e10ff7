"""A small gRPC client over HTTP/2 on containerd's unix socket, for the calls that send one
message: unary calls and server-streaming ones (List, Read). It exists for start-up time: the
``grpc`` package costs a fresh process 70-130 ms to import (its C core brings asyncio, ssl,
concurrent.futures and logging) before it sends a byte, and a rebuild whose steps are all
cached makes only such calls (issue 17). Calls that stream requests (Content.Write) or need
a future (Tasks.Wait) go through :meth:`Channel.grpc`, a real ``grpc`` channel made on first use.

The wire format is gRPC's (``application/grpc``: each message a 1-byte compressed flag — mason
never compresses —, a 4-byte big-endian length and the protobuf bytes; the status in the
``grpc-status``/``grpc-message`` trailers) over HTTP/2 (RFC 9113) with HPACK header blocks
(RFC 7541: mason sends literals without indexing; the server's blocks are decoded by the
``hpack`` package). One call at a time owns a connection: there is no multiplexing to get
wrong. Idle connections are kept in a pool, and a connection goes back to it only when its
last call ended with a status (any other failure closes it). A call whose request could not
be sent whole on a pooled connection (containerd restarted: the old socket is dead), or that
the server's GOAWAY says it never saw, is sent again once on a new connection, the other idle
ones dropped; one that failed after its request was sent is not (containerd may have acted
on it): it is ``UNAVAILABLE``.
Flow control: mason opens its receive windows to 2^31-1 and tops them up as it reads; what it
sends respects the server's windows and frame size.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote

__all__ = ["Channel", "RpcError", "STATUS_NAMES"]

STATUS_NAMES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
                "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# frame types
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
# flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
# settings
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE = 1, 2, 4, 5
MAX_WINDOW = (1 << 31) - 1
_TOP_UP = 1 << 24  # read this much, give the server that much window back


class RpcError(Exception):
    """A call failed: ``code()`` is the gRPC status name (``"NOT_FOUND"``), ``details()`` the
    server's message (the interface of ``grpc.RpcError`` the client reads)."""

    def __init__(self, code: str, details: str):
        super().__init__(f"{code}: {details}")
        self._code, self._details = code, details

    def code(self) -> str:
        return self._code

    def details(self) -> str:
        return self._details


class _Stale(Exception):
    """The call never reached the server (a dead pooled connection, or a GOAWAY before its
    stream): send it again."""


def _hpack_int(value: int, prefix: int, first: int = 0) -> bytes:
    top = (1 << prefix) - 1
    if value < top:
        return bytes([first | value])
    out = bytearray([first | top])
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    """An HPACK block of literal fields without indexing, new names, no Huffman coding (RFC 7541
    6.2.2): the server's decoder keeps no state of ours."""
    out = bytearray()
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v
    return bytes(out)


def grpc_timeout(seconds: float) -> str:
    """The ``grpc-timeout`` header value (at most 8 digits and a unit)."""
    ms = max(1, int(seconds * 1000))
    return f"{ms}m" if ms < 10**8 else f"{min(int(seconds), 10**8 - 1)}S"


class _Conn:
    """One HTTP/2 connection; one call at a time."""

    def __init__(self, path: str, connect_timeout: float = 10.0):
        import hpack  # here, not at import: a process that makes no call does not load it

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(connect_timeout)
            self.sock.connect(path)
            self.sock.settimeout(None)
        except OSError:
            self.sock.close()
            raise
        self.decoder = hpack.Decoder()
        self.buf = bytearray()
        self.next_id = 1
        self.send_window = 65535  # the connection's, for what we send
        self.peer_initial = 65535  # each new stream's
        self.stream_window = 0
        self.max_frame = 16384
        self.unacked = 0  # read on the connection since its last window top-up
        self.stream_unacked = 0  # read on the current stream since its last top-up
        self.gone = False  # GOAWAY or EOF: no new call on it
        self.reusable = False  # the last call ended with its status: the connection is in step
        settings = struct.pack(">HI", S_ENABLE_PUSH, 0) + struct.pack(">HI", S_INITIAL_WINDOW_SIZE, MAX_WINDOW)
        self.sock.sendall(PREFACE + self._frame(SETTINGS, 0, 0, settings)
                          + self._frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - 65535)))

    @staticmethod
    def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

    def close(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def _recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                self.gone = True
                raise EOFError("containerd closed the connection")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_frame(self) -> tuple[int, int, int, bytes]:
        head = self._recv_exact(9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        return kind, flags, stream, self._recv_exact(length) if length else b""

    def _control(self, kind: int, flags: int, stream: int, payload: bytes, sid: int) -> None:
        """A frame for the connection (or a window for our stream)."""
        if kind == SETTINGS and not flags & ACK:
            for i in range(0, len(payload) - 5, 6):
                key, value = struct.unpack(">HI", payload[i:i + 6])
                if key == S_INITIAL_WINDOW_SIZE:
                    self.stream_window += value - self.peer_initial
                    self.peer_initial = value
                elif key == S_MAX_FRAME_SIZE:
                    self.max_frame = value
                elif key == S_HEADER_TABLE_SIZE:
                    pass  # our blocks use no table
            self.sock.sendall(self._frame(SETTINGS, ACK, 0, b""))
        elif kind == PING and not flags & ACK:
            self.sock.sendall(self._frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            inc = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if stream == 0:
                self.send_window += inc
            elif stream == sid:
                self.stream_window += inc
        elif kind == GOAWAY:
            self.gone = True
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if sid > last:  # the server never saw our stream
                raise _Stale("containerd is going away")

    def call(self, path: str, metadata: Sequence[tuple[str, str]], body: bytes,
             timeout: float | None, fresh: bool) -> Iterator[bytes]:
        """Send one request message; yield each response message; raise :class:`RpcError` on a
        status other than OK (and :class:`_Stale` when a reused connection — not ``fresh`` —
        died before the request was sent whole)."""
        sid = self.next_id
        self.next_id += 2
        self.stream_window = self.peer_initial
        self.stream_unacked = 0
        self.reusable = False
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                   ("content-type", "application/grpc"), ("te", "trailers")]
        if timeout is not None:
            headers.append(("grpc-timeout", grpc_timeout(timeout)))
        headers += metadata
        import hpack

        sent = False
        try:
            self.sock.settimeout(None if timeout is None else timeout + 5.0)
            self._send_headers(sid, encode_headers(headers))
            early = self._send_data(sid, b"\x00" + struct.pack(">I", len(body)) + body)
            sent = True
            yield from self._responses(sid, early)
        except (BrokenPipeError, ConnectionResetError, EOFError) as e:
            self.gone = True
            if not fresh and not sent:  # containerd cannot have acted on half a request
                raise _Stale(str(e)) from None
            raise RpcError("UNAVAILABLE", f"connection to containerd lost: {e}") from None
        except socket.timeout:
            self.gone = True
            raise RpcError("DEADLINE_EXCEEDED", "containerd did not answer in time") from None
        except (hpack.HPACKError, ValueError, IndexError, struct.error) as e:  # a frame we cannot read
            self.gone = True
            raise RpcError("INTERNAL", f"containerd sent what mason cannot read: {e}") from None

    def _send_headers(self, sid: int, block: bytes) -> None:
        chunks = [block[i:i + self.max_frame] for i in range(0, len(block), self.max_frame)] or [b""]
        frames = b""
        for i, c in enumerate(chunks):
            last = END_HEADERS if i == len(chunks) - 1 else 0
            frames += self._frame(HEADERS if i == 0 else CONTINUATION, last, sid, c)
        self.sock.sendall(frames)

    def _send_data(self, sid: int, data: bytes) -> list[tuple[str, str]] | None:
        """Send the request message; the response headers if they came while it waited for a
        window (a status that came then is raised)."""
        view = memoryview(data)
        early = None
        while True:
            n = min(len(view), self.max_frame, self.send_window, self.stream_window)
            if n <= 0 and len(view):
                kind, flags, stream, payload = self.read_frame()  # wait for a window update
                if kind in (HEADERS, CONTINUATION):  # decoded whosever it is: the HPACK table stays in step
                    fields = self._block(flags, payload, stream)
                    if stream == sid:
                        if flags & END_STREAM or early is not None:  # the answer came before the request went
                            self.gone = True  # (half-sent: nothing more goes on this connection)
                            _check_status(fields)
                            raise RpcError("INTERNAL", "containerd answered before the request was sent")
                        early = fields
                    continue
                if stream == sid and kind == RST_STREAM:
                    self.gone = True
                    raise self._reset(payload)
                self._control(kind, flags, stream, payload, sid)
                continue
            last = n == len(view)
            self.sock.sendall(self._frame(DATA, END_STREAM if last else 0, sid, bytes(view[:n])))
            self.send_window -= n
            self.stream_window -= n
            view = view[n:]
            if last:
                return early

    @staticmethod
    def _check_http(fields: list[tuple[str, str]]) -> None:
        status = dict(fields).get(":status", "")
        if status != "200":
            raise RpcError("UNKNOWN" if status != "503" else "UNAVAILABLE", f"HTTP status {status}")

    @staticmethod
    def _reset(payload: bytes) -> RpcError:
        code = int.from_bytes(payload[:4], "big")
        return RpcError("CANCELLED" if code == 8 else "INTERNAL", f"stream reset by containerd (HTTP/2 error {code})")

    def _block(self, flags: int, payload: bytes, sid: int) -> list[tuple[str, str]]:
        """A header block (with its CONTINUATION frames), decoded."""
        if flags & PADDED:
            pad = payload[0]
            payload = payload[1:len(payload) - pad]
        if flags & PRIORITY:
            payload = payload[5:]
        block = bytearray(payload)
        while not flags & END_HEADERS:
            kind, flags, stream, more = self.read_frame()
            if kind != CONTINUATION or stream != sid:
                raise RpcError("INTERNAL", "containerd broke a header block")
            block += more
        return [(str(k), str(v)) for k, v in self.decoder.decode(bytes(block))]

    def _responses(self, sid: int, early: list[tuple[str, str]] | None) -> Iterator[bytes]:
        data = bytearray()
        headers_seen = early is not None
        if early is not None:
            self._check_http(early)
        while True:
            kind, flags, stream, payload = self.read_frame()
            if stream != sid or kind not in (DATA, HEADERS, RST_STREAM):
                if kind in (HEADERS, CONTINUATION) and stream != sid:  # keep the HPACK table in step
                    self._block(flags, payload, stream)
                    continue
                self._control(kind, flags, stream, payload, sid)
                continue
            if kind == RST_STREAM:
                self.reusable = True  # the stream is over; the connection is in step
                raise self._reset(payload)
            if kind == HEADERS:
                fields = self._block(flags, payload, sid)
                if headers_seen or flags & END_STREAM:  # trailers (or a trailers-only answer)
                    if not flags & END_STREAM:
                        raise RpcError("INTERNAL", "containerd sent trailers that do not end the stream")
                    self.reusable = True
                    _check_status(fields)
                    if data:
                        raise RpcError("INTERNAL", "containerd sent a partial message")
                    return
                headers_seen = True
                self._check_http(fields)
                continue
            # DATA
            body = payload
            if flags & PADDED:
                body = payload[1:len(payload) - payload[0]]
            data += body
            self.unacked += len(payload)
            self.stream_unacked += len(payload)
            if self.unacked >= _TOP_UP or self.stream_unacked >= _TOP_UP:
                self.sock.sendall(self._frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacked))
                                  + self._frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", self.stream_unacked)))
                self.unacked = self.stream_unacked = 0
            while len(data) >= 5:
                size = int.from_bytes(data[1:5], "big")
                if len(data) < 5 + size:
                    break
                if data[0]:
                    raise RpcError("INTERNAL", "containerd sent a compressed message")
                msg = bytes(data[5:5 + size])
                del data[:5 + size]
                yield msg
            if flags & END_STREAM:
                raise RpcError("INTERNAL", "containerd ended the stream without a status")


def _check_status(fields: list[tuple[str, str]]) -> None:
    got = dict(fields)
    raw = got.get("grpc-status")
    if raw is None:
        raise RpcError("INTERNAL", f"containerd answered without a gRPC status (HTTP {got.get(':status', '?')})")
    code = int(raw) if raw.isdigit() else 2
    if code != 0:
        name = STATUS_NAMES[code] if code < len(STATUS_NAMES) else "UNKNOWN"
        raise RpcError(name, unquote(got.get("grpc-message", "")))


class Channel:
    """Calls to one unix socket (a pool of connections), and the ``grpc`` channel for the calls
    this client does not make itself."""

    def __init__(self, path: str, options: Sequence[tuple[str, Any]] = ()):
        self.path = path
        self._options = list(options)
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._grpc: Any = None
        self._closed = False

    def has_grpc(self) -> bool:
        return self._grpc is not None

    def grpc(self) -> Any:
        """The ``grpc`` channel (made, and grpc imported, on first use)."""
        with self._lock:
            if self._grpc is None:
                import grpc

                self._grpc = grpc.insecure_channel(f"unix://{self.path}", options=self._options)
            return self._grpc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            g, self._grpc = self._grpc, None
        for c in idle:
            c.close()
        if g is not None:
            g.close()

    def wait_ready(self, timeout: float) -> bool:
        """True once the socket takes a connection (within ``timeout`` seconds). The idle
        connections are dropped first: this is asked after containerd came back."""
        self._drop_idle()
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = _Conn(self.path, connect_timeout=max(0.1, deadline - time.monotonic()))
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
                continue
            self._put(conn)
            return True

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()

    def _take(self, new: bool = False) -> tuple[_Conn, bool]:
        with self._lock:
            while self._idle and not new:
                c = self._idle.pop()
                if not c.gone:
                    return c, False
                c.close()
        try:
            return _Conn(self.path), True
        except OSError as e:
            raise RpcError("UNAVAILABLE", f"cannot connect to {self.path}: {e.strerror or e}") from None

    def _put(self, conn: _Conn) -> None:
        with self._lock:
            if conn.reusable and not conn.gone and not self._closed and conn.next_id < (1 << 30):
                self._idle.append(conn)
                return
        conn.close()

    def stream(self, path: str, body: bytes, metadata: Sequence[tuple[str, str]],
               timeout: float | None) -> Iterator[bytes]:
        """The response messages of one call (a generator: the connection goes back to the pool
        when it is exhausted, and is closed if the caller stops early)."""
        for attempt in (0, 1):
            conn, fresh = self._take(new=attempt == 1)
            sent_any = False
            try:
                for msg in conn.call(path, metadata, body, timeout, fresh):
                    sent_any = True
                    yield msg
            except _Stale:
                if sent_any:
                    raise RpcError("UNAVAILABLE", "connection to containerd lost") from None
                self._drop_idle()  # they went with the same containerd
                continue
            finally:  # back to the pool only when the call ended with its status
                self._put(conn)
            return
        raise RpcError("UNAVAILABLE", f"containerd at {self.path} closed the connection")

    def unary(self, path: str, body: bytes, metadata: Sequence[tuple[str, str]], timeout: float | None) -> bytes:
        out = None
        for msg in self.stream(path, body, metadata, timeout):
            if out is not None:
                raise RpcError("INTERNAL", f"{path}: more than one response")
            out = msg
        if out is None:
            raise RpcError("INTERNAL", f"{path}: no response")
        return out


class Method:
    """One call of a service, like a ``grpc`` multicallable: ``method(request, metadata=,
    timeout=)`` answers the response (unary) or an iterator of them (server streaming)."""

    def __init__(self, channel: Channel, path: str, response: Any, streaming: bool):
        self.channel, self.path, self.response, self.streaming = channel, path, response, streaming

    def __call__(self, request: Any, metadata: Sequence[tuple[str, str]] = (), timeout: float | None = None) -> Any:
        body = request.SerializeToString()
        if self.streaming:
            return (self.response.FromString(m) for m in self.channel.stream(self.path, body, metadata, timeout))
        return self.response.FromString(self.channel.unary(self.path, body, metadata, timeout))


class Stub:
    """A service's calls from its protobuf descriptor (no generated ``_pb2_grpc`` module, so no
    ``grpc`` import): unary and server-streaming methods as :class:`Method`; a method that
    streams requests comes from ``fallback()`` (the generated stub on the ``grpc`` channel)."""

    def __init__(self, channel: Channel, service: Any, fallback: Callable[[], Any]):
        from google.protobuf import message_factory

        self._fallback = fallback
        for m in service.methods:
            if m.client_streaming:
                continue
            out = message_factory.GetMessageClass(m.output_type)
            setattr(self, m.name, Method(channel, f"/{service.full_name}/{m.name}", out, m.server_streaming))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._fallback(), name)
