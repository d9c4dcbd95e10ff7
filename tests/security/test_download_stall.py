"""Issue 11 (gap "cancelling during a stalled download takes ~56 s"): a server that stops
answering — before the response headers, in the middle of the body, or never accepting the
connection — is one clear error line once the timeout the user sets (``MASON_HTTP_TIMEOUT``)
passes, and a build cancelled while the download hangs (Ctrl-C, SIGTERM, a failure elsewhere)
stops at once: the download's socket is shut down, its thread ends, no partial body stays on
disk and the process exits with 128+N. A real local server stalls; where a cancel is tested the
timeout is far longer than the test waits, so only the cancel path can end the download. A git
source on a server that never answers (git has no timeout of its own) is cancelled the same way:
git and its remote helper are killed."""

from __future__ import annotations

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
from pathlib import Path

import pytest

from mason.backends.solver.scheduler import Cancelled
from mason.backends.sources.http import http_timeout, load_http
from mason.ir.errors import MasonError
from tests.fixtures.signals import child_signals
from tests.integration.conftest import clean, write

LONG = 600.0  # a timeout no test waits for: only a cancel ends the download
WAIT = 60  # how long a test waits for what must happen at once (a hang guard, not a timing)


@dataclass
class Stall:
    url: str
    requests: "queue.Queue[str]" = field(default_factory=queue.Queue)
    closed: "queue.Queue[str]" = field(default_factory=queue.Queue)  # paths whose client hung up
    release: threading.Event = field(default_factory=threading.Event)


def _stall_server() -> Iterator[Stall]:
    """``/headers``: reads the request, answers nothing. ``/body``: sends the headers of a 1 MB
    body and 1000 bytes of it, then nothing. ``/trickle``: the same, then one byte every 0.1 s
    (no read timeout ever fires: only a cancel ends it). Each holds the connection until the
    client closes it (recorded in ``closed``) or the test ends."""
    st: Stall

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                data += chunk
            path = data.split(b" ", 2)[1].decode()
            if path.startswith(("/body", "/trickle")):
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
            st.requests.put(path)
            sock.settimeout(0.1)
            while not st.release.is_set():
                try:
                    if path.startswith("/trickle"):
                        sock.sendall(b"x")
                    if sock.recv(4096) == b"":
                        st.closed.put(path)
                        return
                except TimeoutError:
                    continue
                except OSError:
                    st.closed.put(path)
                    return

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    st = Stall(f"http://127.0.0.1:{srv.server_address[1]}")
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield st
    finally:
        st.release.set()
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def stall() -> Iterator[Stall]:
    yield from _stall_server()


@pytest.fixture
def unaccepting() -> Iterator[str]:
    """A URL whose connect hangs: a listening socket with a backlog of 0 that never accepts, its
    one queue slot taken (the kernel then drops the next SYNs)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        yield f"http://127.0.0.1:{port}/x"
    finally:
        filler.close()
        lsock.close()


def _http_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mason-http" and t.is_alive()]


def _load_in_thread(url: str, tmp: Path, cancel: threading.Event, timeout: float) -> tuple[threading.Thread, dict]:
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            load_http(None, url, {}, timeout=timeout, tmp_dir=tmp, cancel=cancel.is_set)  # type: ignore[arg-type]
        except BaseException as e:  # noqa: BLE001 - inspected by the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


@pytest.mark.parametrize("path", ["/headers", "/body", "/trickle"])
def test_cancel_stops_a_stalled_download_and_leaves_nothing(stall, tmp_path, path):
    assert _http_threads() == []
    cancel = threading.Event()
    t, box = _load_in_thread(stall.url + path, tmp_path, cancel, LONG)
    assert stall.requests.get(timeout=WAIT) == path  # the download hangs now
    cancel.set()
    t.join(WAIT)
    assert not t.is_alive(), "the cancelled download did not return"
    assert isinstance(box.get("error"), Cancelled), box
    assert stall.closed.get(timeout=WAIT) == path, "the download's connection stayed open"
    for h in _http_threads():
        h.join(WAIT)
    assert _http_threads() == [], "the download's thread outlived the cancel"
    assert list(tmp_path.iterdir()) == [], "a partial download was left behind"


def test_cancel_during_a_hanging_connect_returns(unaccepting, tmp_path):
    cancel = threading.Event()
    t, box = _load_in_thread(unaccepting, tmp_path, cancel, LONG)
    cancel.set()
    t.join(WAIT)
    assert not t.is_alive() and isinstance(box.get("error"), Cancelled), box
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["/headers", "/body"])
def test_a_stall_is_a_clear_read_timeout_error(stall, tmp_path, path):
    with pytest.raises(MasonError) as ei:
        load_http(None, stall.url + path, {}, timeout=0.5, tmp_dir=tmp_path)  # type: ignore[arg-type]
    assert ei.value.message == (f"http source {stall.url}{path}: download stalled: the server sent nothing "
                                "for 0.5 s (read timeout; MASON_HTTP_TIMEOUT sets it)")
    assert list(tmp_path.iterdir()) == []


def test_a_hanging_connect_is_a_clear_connect_timeout_error(unaccepting, tmp_path):
    with pytest.raises(MasonError) as ei:
        load_http(None, unaccepting, {}, timeout=0.5, tmp_dir=tmp_path)  # type: ignore[arg-type]
    assert ei.value.message == (f"http source {unaccepting}: download failed: no connection within 0.5 s "
                                "(connect timeout; MASON_HTTP_TIMEOUT sets it)")


def test_timeout_setting():
    assert http_timeout({}) == 60.0
    assert http_timeout({"MASON_HTTP_TIMEOUT": "2.5"}) == 2.5
    for bad in ("0", "-1", "x", "1e9"):
        with pytest.raises(MasonError, match=r"invalid MASON_HTTP_TIMEOUT="):
            http_timeout({"MASON_HTTP_TIMEOUT": bad})


# -- through a real `mason build` --------------------------------------------------------------


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return sorted(p for p in (line.split()[4] for line in f) if p.startswith(prefix))


def _partial_bodies(root: Path) -> list[Path]:
    return [p for p in root.rglob("mason-http-*") if p.is_dir()]


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: signal.Signals(s).name)
def test_signal_during_a_stalled_add_ends_the_build_at_once(build_env, stall, tmp_path, sig):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nADD {stall.url}/trickle /x\nRUN cat /x\n"})
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address,
             MASON_HTTP_TIMEOUT=str(LONG))
    with child_signals(default=[signal.SIGINT, signal.SIGTERM, signal.SIGHUP]):
        proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(ctx)],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=e, text=True, start_new_session=True)
    try:
        assert stall.requests.get(timeout=120) == "/trickle"  # mason is inside the download now
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=WAIT)
        rc = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 128 + int(sig), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.rstrip().splitlines()[-1] == ("error: interrupted" if sig == signal.SIGINT else "error: terminated")
    assert stall.closed.get(timeout=WAIT) == "/trickle"
    assert clean(env.leftovers()), env.leftovers()
    assert _partial_bodies(env.root) == []
    assert list((env.root / "solver" / "tmp").glob("build-*")) == []
    assert _mounts_under(env.root) == []


@pytest.mark.integration
def test_a_stalled_add_fails_with_one_clear_line(build_env, stall, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nADD {stall.url}/headers /x\n"})
    p = env.cli("build", "--progress=plain", str(ctx), env={"MASON_HTTP_TIMEOUT": "1"})
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]
    assert errors and errors[-1].endswith(f"error: http source {stall.url}/headers: download stalled: the server "
                                          "sent nothing for 1 s (read timeout; MASON_HTTP_TIMEOUT sets it)"), p.stderr
    assert clean(env.leftovers()), env.leftovers()
    assert _partial_bodies(env.root) == []


def _git_pids(port: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "git" in cmd and f"127.0.0.1:{port}" in cmd:
                out.append(int(d))
    return out


def test_cancel_stops_a_stalled_git_fetch(stall, tmp_path):
    """The same for a ``git`` source: git (and git-remote-http) hang on a server that never
    answers, with no timeout of their own; a cancel kills them at once."""
    from mason.backends.sources.git import load_git

    port = int(stall.url.rsplit(":", 1)[1])
    cancel = threading.Event()
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            load_git(None, f"git://127.0.0.1:{port}/repo.git#main",  # type: ignore[arg-type]
                     {"git.fullurl": f"{stall.url}/repo.git"}, tmp_dir=tmp_path, cancel=cancel.is_set)
        except BaseException as e:  # noqa: BLE001 - inspected below
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert stall.requests.get(timeout=WAIT).startswith("/repo.git/info/refs")  # git hangs now
    assert _git_pids(port), "git should be running"
    cancel.set()
    t.join(WAIT)
    assert not t.is_alive() and isinstance(box.get("error"), Cancelled), box
    assert _git_pids(port) == [], "git or its remote helper outlived the cancel"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_sigterm_during_a_stalled_git_source_ends_the_build_at_once(build_env, stall, tmp_path):
    env = build_env
    port = int(stall.url.rsplit(":", 1)[1])
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nADD {stall.url}/repo.git#main /src\n"})
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    with child_signals(default=[signal.SIGINT, signal.SIGTERM, signal.SIGHUP]):
        proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(ctx)],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=e, text=True, start_new_session=True)
    try:
        assert stall.requests.get(timeout=120).startswith("/repo.git/info/refs")
        proc.send_signal(signal.SIGTERM)  # to mason alone, not its process group
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.rstrip().splitlines()[-1] == "error: terminated", err
    assert _git_pids(port) == [], "git outlived the build"
    assert clean(env.leftovers()), env.leftovers()
    assert list((env.root / "solver" / "tmp").glob("build-*")) == []
