"""RUN steps on the default network through whole builds: the step reaches a TCP server the
test runs on the host, at the bridge's host-side address, from its own address on the bridge;
afterwards nothing of the build's networking is left (its namespaces — the step's and the
pool's idle ones — unmounted, their veths gone from ``ip -o link``, no step directories, no pool
threads). The pool is started before the first RUN when the build has RUNs to run on the default
network, and not at all for a cached build; a build sweeps what a dead mason left under its root.

As root in CI these never skip: a fallback to the host network fails them."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from mason.backends.containerd import cni
from mason.backends.containerd.network import DEFAULT_SUBNET
from mason.backends.solver.events import VertexStarted
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

SUBNET = ipaddress.ip_network(DEFAULT_SUBNET)
GATEWAY = str(next(SUBNET.hosts()))  # the bridge's host side (network.py: host-local IPAM, isGateway)

DF = """\
FROM {base}
RUN echo "{token}" | busybox nc -w 10 {gateway} {port} > /reply && cat /reply
"""


def veths() -> dict[int, str]:
    """ifindex -> name of the host's veth interfaces, from ``ip -o link``."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"(\d+): (veth[^:@]+)", line)
        if m:
            found[int(m.group(1))] = m.group(2)
    return found


def peer_ifindex(netns: str) -> int | None:
    """The host-side ifindex of ``eth0`` in namespace ``netns`` (``eth0@ifN``)."""
    p = subprocess.run(["nsenter", f"--net={netns}", "ip", "-o", "link", "show", "eth0"],
                       capture_output=True, text=True)
    m = re.search(r"eth0@if(\d+)", p.stdout)
    return int(m.group(1)) if m else None


class Server:
    """A TCP server on every host address: answers one line with ``pong <line>`` and, while the
    step waits for the answer, notes the build's namespaces under ``root/network`` and their
    host-side veths."""

    def __init__(self, root: Path):
        self.root = root
        self.sock = socket.create_server(("0.0.0.0", 0))
        self.sock.settimeout(60)
        self.port = self.sock.getsockname()[1]
        self.peer: str | None = None
        self.got: bytes | None = None
        self.namespaces: dict[str, str | None] = {}  # netns path -> its veth on the host
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, addr = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            f = conn.makefile("rwb")
            self.got, self.peer = f.readline(), addr[0]
            self._note()
            f.write(b"pong " + self.got)
            f.flush()

    def _note(self) -> None:
        host = veths()
        for d in sorted((self.root / "network").iterdir()):
            try:
                netns = json.loads((d / "state.json").read_text()).get("netns")
            except (OSError, ValueError):
                continue
            if netns and cni.is_mountpoint(netns):
                idx = peer_ifindex(netns)
                self.namespaces[netns] = host.get(idx) if idx is not None else None

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


def check_nothing_left(root: Path, server: Server) -> None:
    assert server.namespaces, "no namespace of the build was seen during its RUN"
    assert all(server.namespaces.values()), server.namespaces  # each had its veth on the host
    left = veths().values()
    for netns, veth in server.namespaces.items():
        assert not cni.is_mountpoint(netns), netns
        assert veth not in left, veth
    d = root / "network"
    assert not d.exists() or list(d.iterdir()) == []


def dockerfile(env, server: Server, token: str) -> str:
    return DF.format(base=env.base, token=token, gateway=GATEWAY, port=server.port)


def test_run_on_default_network_reaches_host_server_and_leaves_nothing(build_env, tmp_path, monkeypatch):
    from mason.backends.solver.execop import Network

    env = build_env
    prewarms: list[float] = []
    original = Network.prewarm

    def prewarm(self, executor):
        prewarms.append(time.time())
        return original(self, executor)

    monkeypatch.setattr(Network, "prewarm", prewarm)
    server = Server(env.root)
    token = f"tok-{uuid.uuid4().hex}"
    try:
        ctx = write(tmp_path / "ctx", {"Dockerfile": dockerfile(env, server, token)})
        res, rec = env.build(ctx, outputs=(f"type=local,dest={tmp_path / 'out'}",))
    finally:
        server.close()
    assert not [w for w in res.warnings if "network" in w], res.warnings
    assert (tmp_path / "out" / "reply").read_text() == f"pong {token}\n"
    assert server.got == f"{token}\n".encode()
    # from the step's own address on the bridge, not the host's
    assert ipaddress.ip_address(server.peer) in SUBNET and server.peer != GATEWAY, server.peer
    # the pool was started once, before the RUN began
    run_started = [e.time for e in rec.of(VertexStarted) if "RUN" in e.name]
    assert len(prewarms) == 1 and prewarms[0] <= run_started[0]
    # the build (in this process: no atexit hook to help) closed its pool and every namespace
    check_nothing_left(env.root, server)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("mason-netns")]

    # a cached rebuild starts no pool
    prewarms.clear()
    _, rec = env.build(ctx)
    assert prewarms == [] and not [e for e in rec.of(VertexStarted) if "RUN" in e.name]


def test_mason_build_run_reaches_host_server_on_the_bridge(build_env, tmp_path):
    env = build_env
    server = Server(env.root)
    token = f"tok-{uuid.uuid4().hex}"
    try:
        ctx = write(tmp_path / "ctx", {"Dockerfile": dockerfile(env, server, token)})
        p = env.cli("build", "--progress=plain", "-o", f"type=local,dest={tmp_path / 'out'}", str(ctx))
    finally:
        server.close()
    assert p.returncode == 0, p.stderr
    assert "host network" not in p.stderr, p.stderr
    assert f"pong {token}" in p.stderr  # the step's output
    assert (tmp_path / "out" / "reply").read_text() == f"pong {token}\n"
    assert ipaddress.ip_address(server.peer) in SUBNET and server.peer != GATEWAY, server.peer
    check_nothing_left(env.root, server)


def test_a_build_sweeps_the_networks_a_dead_mason_left(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN --network=none true\n"})
    env.build(ctx)
    stale = env.root / "network" / f"mason-{uuid.uuid4().hex[:16]}"
    stale.mkdir(parents=True)
    netns = stale / "netns"
    cni.create_netns(netns)
    # a pid that cannot exist: its owner is gone
    (stale / "state.json").write_text(json.dumps({"owner": f"{2**31}:1", "step": "1", "mode": "default",
                                                  "netns": str(netns), "plugins": []}))
    assert cni.is_mountpoint(netns)
    _, rec = env.build(ctx)  # fully cached: no step asks for a network; the sweep is the session's
    assert not [e for e in rec.of(VertexStarted) if "RUN" in e.name]
    assert not cni.is_mountpoint(netns) and not stale.exists()
    assert os.path.isdir(env.root / "network")
