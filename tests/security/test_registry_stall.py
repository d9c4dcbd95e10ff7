"""Issue 11 (gap "cancelling during a stalled download"), registry pulls: a build cancelled
while a registry stops sending — before a manifest's response headers, or in the middle of a
blob — stops at once: the pull's connection is shut down, its thread ends and
:class:`Cancelled` is raised, though the registry timeout is far longer than the test waits.
A real local server speaks enough of the distribution API (``/v2/``, a manifest, a blob) to
pose as a registry, then stalls."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from mason.backends import oci
from mason.backends.solver.scheduler import Cancelled
from mason.backends.sources.image import load_image
from mason.backends.sources.registry import RegistryClient
from mason.ir.builder import image
from tests.fixtures.signals import child_signals
from tests.integration.conftest import clean

LONG = 600.0  # a registry timeout no test waits for: only a cancel ends the pull
WAIT = 60  # how long a test waits for what must happen at once (a hang guard, not a timing)
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' + b" " * 5000
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
    "config": {"mediaType": oci.OCI_CONFIG, "digest": CONFIG_DIGEST, "size": len(CONFIG)},
    "layers": []}).encode()


@dataclass
class Registry:
    domain: str
    stalled: "queue.Queue[str]" = field(default_factory=queue.Queue)  # what hangs now
    closed: "queue.Queue[str]" = field(default_factory=queue.Queue)  # where the client hung up
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def stalling() -> Iterator[Registry]:
    """``/v2/`` answers; repository ``manifest`` never answers its manifest; repository
    ``blob`` serves its manifest, then sends the config blob's headers and 1000 bytes of it
    and nothing more. Keep-alive connections, as a registry's."""
    reg: Registry

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path == "/v2/":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                 b"Docker-Distribution-API-Version: registry/2.0\r\n\r\n{}")
                    continue
                if path == "/v2/blob/manifests/latest":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + oci.OCI_MANIFEST.encode() +
                                 b"\r\nContent-Length: %d\r\n\r\n" % len(MANIFEST) + MANIFEST)
                    continue
                if path == f"/v2/blob/blobs/{CONFIG_DIGEST}":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(CONFIG) + CONFIG[:1000])
                self._hang(sock, path)
                return

        def _hang(self, sock: socket.socket, path: str) -> None:
            reg.stalled.put(path)
            sock.settimeout(0.1)
            while not reg.release.is_set():
                try:
                    if sock.recv(4096) == b"":
                        reg.closed.put(path)
                        return
                except TimeoutError:
                    continue
                except OSError:
                    reg.closed.put(path)
                    return

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    reg = Registry(f"127.0.0.1:{srv.server_address[1]}")
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield reg
    finally:
        reg.release.set()
        srv.shutdown()
        srv.server_close()


def _pull_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mason-pull" and t.is_alive()]


@pytest.mark.parametrize("repo, hangs", [("manifest", "/v2/manifest/manifests/latest"),
                                         ("blob", f"/v2/blob/blobs/{CONFIG_DIGEST}")])
def test_cancel_stops_a_pull_from_a_stalled_registry(stalling, repo, hangs):
    assert _pull_threads() == []
    cancel = threading.Event()
    box: dict[str, BaseException] = {}
    with RegistryClient(timeout=LONG) as rc:
        def run() -> None:
            try:  # pull: the image store is not asked (no containerd needed before the layers)
                load_image(None, rc, f"docker-image://{stalling.domain}/{repo}:latest",  # type: ignore[arg-type]
                           {"image.resolvemode": "pull"}, cancel=cancel.is_set)
            except BaseException as e:  # noqa: BLE001 - inspected by the test
                box["error"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        assert stalling.stalled.get(timeout=WAIT) == hangs  # the pull hangs now
        cancel.set()
        t.join(WAIT)
        assert not t.is_alive(), "the cancelled pull did not return"
        assert isinstance(box.get("error"), Cancelled), box
        assert f"pull of {stalling.domain}/{repo}:latest cancelled" in str(box["error"])
        assert stalling.closed.get(timeout=WAIT) == hangs, "the pull's connection stayed open"
        for h in _pull_threads():
            h.join(WAIT)
        assert _pull_threads() == [], "the pull's thread outlived the cancel"


@pytest.mark.integration
@pytest.mark.parametrize("repo", ["manifest", "blob"])
def test_sigterm_during_a_stalled_pull_ends_the_solve_at_once(build_env, stalling, tmp_path, repo):
    env = build_env
    # hand-made LLB through `mason solve`: no frontend resolves the image first, the pull
    # happens in the solver (a Dockerfile's FROM would hang in the frontend's resolver)
    path = tmp_path / "def.llb"
    path.write_bytes(image(f"{stalling.domain}/{repo}:latest").run("true").root().marshal())
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    with child_signals(default=[signal.SIGINT, signal.SIGTERM, signal.SIGHUP]):
        proc = subprocess.Popen([sys.executable, "-m", "mason", "solve", "--progress=plain", str(path)],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=e, text=True, start_new_session=True)
    try:
        stalling.stalled.get(timeout=120)  # mason is inside the pull now
        proc.send_signal(signal.SIGTERM)  # to mason alone, not its process group
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.rstrip().splitlines()[-1] == "error: terminated", err
    assert clean(env.leftovers()), env.leftovers()
    assert list((env.root / "solver" / "tmp").glob("build-*")) == []
