"""The ``mason serve`` process: one gRPC server holding one solver, until SIGTERM / SIGINT.

Addresses are BuildKit's: ``unix:///path/to.sock`` or ``tcp://HOST:PORT``. A TCP address that
is not loopback needs mutual TLS (``--tlscacert``, ``--tlscert``, ``--tlskey``): the daemon
runs builds as root, so an unauthenticated network listener is refused.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mason.ir.errors import MasonError

DEFAULT_ADDR = "unix:///run/mason/mason.sock"
MAX_MESSAGE = 64 << 20  # Definitions of big graphs; BuildKit's client sends up to 16 MiB


@dataclass(frozen=True)
class Address:
    scheme: str  # "unix" or "tcp"
    target: str  # socket path, or host:port

    @property
    def grpc(self) -> str:
        return f"unix:{self.target}" if self.scheme == "unix" else self.target

    @property
    def loopback(self) -> bool:
        if self.scheme == "unix":
            return True
        host = self.target.rsplit(":", 1)[0].strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def parse_addr(addr: str) -> Address:
    if addr.startswith("unix://"):
        path = addr[len("unix://"):]
        if not path.startswith("/"):
            raise MasonError(f"--addr {addr}: a unix socket needs an absolute path (unix:///run/x.sock)")
        return Address("unix", path)
    if addr.startswith("tcp://"):
        hostport = addr[len("tcp://"):]
        host, sep, port = hostport.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise MasonError(f"--addr {addr}: expected tcp://HOST:PORT")
        return Address("tcp", hostport)
    raise MasonError(f"--addr {addr}: expected unix:///PATH or tcp://HOST:PORT")


@dataclass(frozen=True)
class TLS:
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.cert or self.key or self.cacert)

    def credentials(self) -> Any:
        import grpc

        if not (self.cert and self.key and self.cacert):
            raise MasonError("TLS needs all of --tlscacert, --tlscert and --tlskey (clients are verified)")

        def read(p: str) -> bytes:
            try:
                return Path(p).read_bytes()
            except OSError as e:
                raise MasonError(f"cannot read {p}: {e.strerror}") from None

        return grpc.ssl_server_credentials([(read(self.key), read(self.cert))], root_certificates=read(self.cacert),
                                           require_client_auth=True)


class _Unknown:
    """Names the call a client made that mason does not serve (grpcio's own answer does not)."""

    def service(self, details: Any) -> Any:
        import grpc

        method = details.method

        def deny(request: Any, context: Any) -> Any:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"mason serve does not implement {method}")

        return grpc.unary_unary_rpc_method_handler(deny)


class Daemon:
    """The running server (``start``, then ``wait`` until :meth:`stop` or a signal)."""

    def __init__(self, addr: Address, *, root: str | None = None, containerd_address: str | None = None,
                 tls: TLS = TLS(), workers: int = 32):
        if addr.scheme == "tcp" and not addr.loopback and not tls.enabled:
            raise MasonError(f"--addr tcp://{addr.target} is not a loopback address: give --tlscacert, --tlscert "
                             "and --tlskey (mutual TLS)")
        self.addr, self.root, self.containerd_address, self.tls = addr, root, containerd_address, tls
        self.workers = workers
        self._stopped = threading.Event()
        self._server: Any = None
        self._opened: Any = None
        self.control: Any = None
        self.on_stop: list[Callable[[], None]] = []

    def start(self) -> None:
        import grpc

        from mason.driver import open_solver
        from mason.protos import buildkit
        from mason.server import gateway
        from mason.server.control import Control, register

        stubs = buildkit.load()
        self._opened = open_solver(self.root, self.containerd_address)
        try:
            self.control = Control(stubs, self._opened.solver)
            self._builds(stubs)
            opts = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="mason-rpc"),
                                 options=opts, handlers=[_Unknown()])
            register(server, stubs, self.control)
            gateway.register(server, stubs, self.control.builds.bridge)
            if self.addr.scheme == "unix":
                self._prepare_socket(Path(self.addr.target))
            if self.tls.enabled:
                port = server.add_secure_port(self.addr.grpc, self.tls.credentials())
            else:
                port = server.add_insecure_port(self.addr.grpc)
            if self.addr.scheme == "tcp" and port == 0:
                raise MasonError(f"cannot listen on tcp://{self.addr.target}")
            server.start()
            self._server = server
        except BaseException:
            self._opened.close()
            raise

    def _builds(self, stubs: Any) -> None:
        from mason.backends.containerd.daemon import state_root
        from mason.server.gateway import Bridge
        from mason.server.session import Sessions
        from mason.server.solve import Builds

        state = state_root(self.root) / "serve"
        state.mkdir(parents=True, exist_ok=True)
        os.chmod(state, 0o700)  # the clients' files
        sessions = Sessions(stubs)
        self.control.sessions = sessions
        self.control.builds = Builds(stubs, self._opened.solver, sessions, root=self.root, state=state)
        self.control.builds.bridge = Bridge(stubs, self.control.worker_record)
        self.on_stop.append(self.control.builds.cancel_all)

    @staticmethod
    def _prepare_socket(path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                import socket

                probe = socket.socket(socket.AF_UNIX)
                try:
                    probe.connect(str(path))
                except OSError:
                    path.unlink()  # a stale socket of a daemon that is gone
                else:
                    raise MasonError(f"another daemon is listening on {path}")
                finally:
                    probe.close()
        except OSError as e:
            raise MasonError(f"cannot create the socket {path}: {e.strerror}") from None

    def stop(self) -> None:
        self._stopped.set()

    def wait(self) -> None:
        """Block until :meth:`stop` (or SIGTERM / SIGINT, when called from the main thread), then
        cancel running builds, stop the server and close the solver."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, lambda *_: self._stopped.set())
        while not self._stopped.wait(3600):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        for fn in self.on_stop:
            fn()
        if self._server is not None:
            self._server.stop(grace=10).wait()
            self._server = None
        if self._opened is not None:
            self._opened.close()
            self._opened = None
        if self.addr.scheme == "unix":
            try:
                os.unlink(self.addr.target)
            except OSError:
                pass
