"""``mason serve`` as a real process on the session containerd (with a fresh state root per
test), and BuildKit v0.32.2's own ``buildctl`` (from ``../shared/tools``) to drive it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BUILDCTL = Path(__file__).resolve().parents[3].parent / "shared" / "tools" / "buildkit" / "buildctl"


@dataclass
class Served:
    env: object  # the BuildEnv of the same root
    sock: Path
    proc: subprocess.Popen
    log: Path

    @property
    def addr(self) -> str:
        return f"unix://{self.sock}"

    def buildctl(self, *args: str, check: bool = True, timeout: float = 300, cwd=None,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run([str(BUILDCTL), "--addr", self.addr, *args], capture_output=True, text=True,
                           timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        if check and p.returncode != 0:
            raise AssertionError(f"buildctl {' '.join(args)} failed ({p.returncode}):\n{p.stderr}\n"
                                 f"--- mason serve log:\n{self.log.read_text()}")
        return p


    def start(self, *args: str) -> Watched:
        """buildctl ARGS as a background process whose stderr is watched."""
        p = subprocess.Popen([str(BUILDCTL), "--addr", self.addr, *args], stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        return Watched(p)


class Watched:
    """A process whose stderr lines are collected by a thread; :meth:`wait_for` blocks until a
    line contains a text (the event a test waits on, never a sleep)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 120) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: self._eof or any(needle in x for x in self.lines), timeout)
            found = any(needle in x for x in self.lines)
        assert ok and found, f"{needle!r} never appeared:\n{self.text}"

    def finish(self, timeout: float = 300) -> int:
        rc = self.proc.wait(timeout=timeout)
        with self._cond:
            self._cond.wait_for(lambda: self._eof, 30)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _connectable(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def start_serve(env, sock: Path, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address, **(extra_env or {}))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mason", "serve", "--addr", f"unix://{sock}"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=e)
    deadline = time.monotonic() + 60
    while not _connectable(sock):
        if proc.poll() is not None:
            raise AssertionError(f"mason serve exited ({proc.returncode}):\n{log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"mason serve did not listen within 60 s:\n{log.read_text()}")
        time.sleep(0.05)  # polling for the socket, not ordering anything
    return proc


def stop_serve(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("mason serve did not stop within 60 s of SIGTERM") from None
    return proc.returncode


@pytest.fixture
def served(build_env):
    assert BUILDCTL.exists(), f"{BUILDCTL} is missing (BuildKit's client from ../shared/tools)"
    d = Path(tempfile.mkdtemp(prefix="mason-serve-", dir="/tmp"))
    sock, log = d / "mason.sock", d / "serve.log"
    proc = start_serve(build_env, sock, log)
    s = Served(build_env, sock, proc, log)
    try:
        yield s
    finally:
        rc = stop_serve(proc)
        assert rc == 0, f"mason serve exited {rc} on SIGTERM:\n{log.read_text()}"
        assert not sock.exists(), "mason serve left its socket behind"


def make_certs(d: Path, ca: str = "ca") -> dict[str, Path]:
    """With openssl: a CA (``CA.pem``), a server certificate for 127.0.0.1 / localhost and a
    client certificate signed by it (``CA-server.pem``/``.key``, ``CA-client.pem``/``.key``);
    ``ca="ca"`` names them ``ca.pem``, ``server.pem``, ``client.pem`` … as buildkitd's docs do."""
    d.mkdir(parents=True, exist_ok=True)
    pre = "" if ca == "ca" else f"{ca}-"

    def run(*a: str) -> None:
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
        "-subj", f"/CN=mason-test-{ca}")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{pre}{name}.key", "-out", f"{pre}{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{pre}{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{pre}{name}.pem", "-days", "2", "-extfile", "san.ext")
    names = (f"{ca}.pem", f"{pre}server.pem", f"{pre}server.key", f"{pre}client.pem", f"{pre}client.key")
    return {n[len(pre):] if n.startswith(pre) else n: d / n for n in names}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve_tcp(env, addr: str, *tls: str, log: Path) -> subprocess.Popen:
    """``mason serve --addr tcp://…`` with ``tls`` flags, its output in ``log``."""
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "mason", "serve", "--addr", addr, *tls], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=e)


def wait_listening(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling for the listener


def with_libs(exe: str, dest: Path) -> None:
    """``exe`` and the shared libraries it loads (from ldd), to run in a busybox image as
    ``/x/ld-linux… --library-path /x /x/NAME``."""
    dest.mkdir(parents=True)
    shutil.copy(exe, dest / Path(exe).name)
    out = subprocess.run(["ldd", exe], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            shutil.copy(path, dest / Path(path).name)


@pytest.fixture
def agent_with_key(tmp_path):
    """A real ssh-agent holding a fresh ed25519 key; yields (socket, the key's fingerprint)."""
    for tool in ("ssh-agent", "ssh-add", "ssh-keygen"):
        assert shutil.which(tool), f"{tool} not found: install the Debian package openssh-client"
    key = tmp_path / "id_test"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    fp = subprocess.run(["ssh-keygen", "-lf", str(key) + ".pub"], capture_output=True, text=True,
                        check=True).stdout.split()[1]
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline and agent.poll() is None, "ssh-agent did not start"
            time.sleep(0.05)  # polling for the socket
        subprocess.run(["ssh-add", "-q", str(key)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, check=True,
                       capture_output=True)
        yield sock, fp
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)
