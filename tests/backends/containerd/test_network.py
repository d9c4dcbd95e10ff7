"""Network modes of build steps on a real containerd: ``none``, ``host``, ``default`` over the
CNI bridge (and its fallback to the host network), concurrency, teardown and the stale sweep.

These run as root in CI and never skip: where the bridge does not come up as root, the bridge
tests fail (with the provider's warning as the reason)."""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from mason.backends.containerd import cni
from mason.backends.containerd.network import (
    DEFAULT_IPAM_DIR,
    DEFAULT_NETWORK_NAME,
    DEFAULT_SUBNET,
    NetworkProvider,
    cleanup_stale,
)
from mason.backends.containerd.spec import Process

pytestmark = pytest.mark.integration


@pytest.fixture
def executor(containerd_env):
    lc = containerd_env.client.with_lease(containerd_env.lease)
    ex = containerd_env.executor(lc)
    yield ex
    ex.close()
    assert lc.list_containers() == []


@pytest.fixture
def provider(tmp_path):
    p = NetworkProvider(tmp_path / "root")
    yield p
    p.close()  # the pool's idle namespaces and the background teardowns
    # Whatever a test did, nothing of ours may stay mounted or recorded.
    leftovers = list(p.dir.iterdir()) if p.dir.exists() else []
    assert leftovers == [], leftovers
    assert not _mounts_under(tmp_path)
    assert not [t for t in threading.enumerate() if t.name.startswith("mason-netns")]


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(prefix)]


def sh(script: str) -> Process:
    return Process(args=("sh", "-c", script))


def run(executor, env, net, script: str):
    res = executor.run_step(net.apply(sh(script)), env.busybox)
    assert res.exit_code == 0, (res.stdout, res.stderr)
    return res.stdout.decode()


def require_bridge(net) -> None:
    """The bridge must work as root; fail (never skip) with the reason if it fell back."""
    assert net.mode == "bridge", f"CNI bridge unavailable as root: {net.warning}"
    assert net.warning is None


class OneShotServer:
    """A TCP server on ``host`` that answers one line with ``pong <line>`` and records the peer."""

    def __init__(self, host: str, netns: str | None = None):
        self.sock = _socket_in(netns, host) if netns else socket.create_server((host, 0))
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.got: bytes | None = None
        self.peer: str | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, addr = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            f = conn.makefile("rwb")
            self.got, self.peer = f.readline(), addr[0]
            f.write(b"pong " + self.got)
            f.flush()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def _socket_in(netns: str, host: str) -> socket.socket:
    """A listening socket in network namespace ``netns``: a socket stays in the namespace it
    was made in, so switch this thread there for the call, and back."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        assert libc.setns(target, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        try:
            return socket.create_server((host, 0))
        finally:
            assert libc.setns(own, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(own)
        os.close(target)


CLONE_NEWNET = 0x40000000


def host_interfaces() -> set[str]:
    return {n for n in os.listdir("/sys/class/net") if not n.startswith("veth")}


# -- none ----------------------------------------------------------------------------------


def test_none_sees_only_loopback_and_gets_generated_files(provider, executor, containerd_env) -> None:
    with provider.setup("step-none", "none", hostname="box") as net:
        assert (net.mode, net.netns_path, net.warning) == ("none", None, None)
        out = run(executor, containerd_env, net, "ls /sys/class/net; echo ---; cat /etc/hosts; echo ---; "
                  "cat /etc/resolv.conf; echo ---; echo x 2>/dev/null >>/etc/hosts || echo read-only")
    links, hosts, resolv, ro = out.split("---\n")
    assert ro == "read-only\n"  # bound read-only, as BuildKit does
    assert links.split() == ["lo"]
    assert hosts == net.hosts and "127.0.0.1\tlocalhost box\n" in hosts
    assert resolv == net.resolv_conf
    assert not any(ipaddress.ip_address(s).is_loopback for s in _nameservers(resolv))


# -- default: the bridge -------------------------------------------------------------------


def test_default_gets_eth0_in_subnet_and_reaches_server_on_bridge(provider, executor, containerd_env) -> None:
    with provider.setup("step-default", "default") as net:
        require_bridge(net)
        assert ipaddress.ip_address(net.ip) in ipaddress.ip_network(DEFAULT_SUBNET)
        assert net.gateway == str(next(ipaddress.ip_network(DEFAULT_SUBNET).hosts()))
        server = OneShotServer(net.gateway)
        token = uuid.uuid4().hex
        try:
            out = run(executor, containerd_env, net,
                      "ls /sys/class/net; echo ---; busybox ip -4 -o addr show dev eth0; busybox ip route; "
                      f"echo ---; echo {token} | busybox nc -w 10 {net.gateway} {server.port}")
        finally:
            server.close()
    links, addr, reply = out.split("---\n")
    assert sorted(links.split()) == ["eth0", "lo"]
    assert f"inet {net.address}" in addr
    assert f"default via {net.gateway} dev eth0" in addr
    assert reply == f"pong {token}\n"
    # The server saw the step's own address: the packets came out of its namespace, not the host's.
    assert (server.got, server.peer) == (f"{token}\n".encode(), net.ip)


def test_two_concurrent_default_steps_get_their_own_addresses(provider, executor, containerd_env) -> None:
    with provider.setup("step-a", "default") as a, provider.setup("step-b", "default") as b:
        require_bridge(a)
        require_bridge(b)
        assert a.ip != b.ip and a.netns_path != b.netns_path
        outs: dict[str, str] = {}
        errors: list[BaseException] = []
        gate = threading.Barrier(2)

        def step(net) -> None:
            try:
                gate.wait(10)
                outs[net.id] = run(executor, containerd_env, net, "busybox ip -4 -o addr show dev eth0; sleep 0.3")
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=step, args=(n,)) for n in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert f"inet {a.address}" in outs[a.id]
        assert f"inet {b.address}" in outs[b.id]


def test_teardown_leaves_no_netns_veth_ip_or_per_step_rule(provider, executor, containerd_env) -> None:
    net = provider.setup("step-td", "default")
    require_bridge(net)
    run(executor, containerd_env, net, "true")
    executor.flush()
    step_dir = provider.dir / net.id
    ip_file = Path(DEFAULT_IPAM_DIR, DEFAULT_NETWORK_NAME, net.ip)
    assert cni.is_mountpoint(net.netns_path) and ip_file.exists()
    assert Path("/sys/class/net", net.host_interface).exists()
    nat = " ".join(provider.nat_rule()[:5])  # one rule for the subnet, none per step
    assert nat in _nat_rules() and net.id not in _nat_rules()
    net.teardown()
    net.teardown()  # idempotent
    provider.flush()  # a pool namespace is torn down in the background
    assert not step_dir.exists() and not cni.is_mountpoint(net.netns_path)
    assert not Path("/sys/class/net", net.host_interface).exists()
    assert not ip_file.exists() or net.id not in ip_file.read_text()
    assert nat in _nat_rules()  # machine-wide, like the bridge


def test_pool_namespaces_are_made_ahead_used_once_and_destroyed_by_close(provider, executor, containerd_env) -> None:
    provider.prewarm()
    _wait_for(lambda: provider._pool.idle == provider.pool_size)  # noqa: SLF001 - made ahead of need
    prewarmed = {d.name for d in provider.dir.iterdir()}
    assert len(prewarmed) == provider.pool_size
    # Every idle one is already on the bridge: a namespace with its veth and address.
    assert all(cni.is_mountpoint(provider.dir / d / "netns") for d in prewarmed)
    assert prewarmed <= _ipam_owners()
    a = provider.setup("step-1", "default")
    require_bridge(a)
    assert a.id in prewarmed
    _wait_for(lambda: provider._pool.idle == provider.pool_size)  # noqa: SLF001 - refilled
    idle_dirs = {d.name for d in provider.dir.iterdir()} - {a.id}
    out = run(executor, containerd_env, a, "busybox ip -4 -o addr show dev eth0")
    assert f"inet {a.address}" in out
    a.teardown()
    b = provider.setup("step-2", "default")
    require_bridge(b)
    assert b.id in idle_dirs and b.id != a.id  # taken from the pool, never the used one again
    b.teardown()
    provider.flush()
    assert not (provider.dir / a.id).exists() and not (provider.dir / b.id).exists()
    assert not Path("/sys/class/net", a.host_interface).exists()
    assert not Path("/sys/class/net", b.host_interface).exists()
    leftover = {d.name for d in provider.dir.iterdir()}
    provider.close()
    assert list(provider.dir.iterdir()) == []
    assert not _ipam_owners() & (leftover | {a.id, b.id}), "IP addresses of destroyed namespaces are free again"


def test_nat_masquerades_traffic_leaving_through_another_interface(provider, executor, containerd_env,
                                                                    tmp_path) -> None:
    """A server in an "outside" namespace, reachable from the host over a veth pair but with no
    route back to the bridge subnet: the step reaches it only because its packets leave with the
    host's address (the NAT rule), which is also the peer the server sees."""
    tag = uuid.uuid4().hex[:6]
    net3 = 18 + int(tag[:2], 16) % 2, int(tag[2:4], 16)
    host_ip, out_ip = f"198.{net3[0]}.{net3[1]}.1", f"198.{net3[0]}.{net3[1]}.2"
    outside = tmp_path / "outside"
    cni.create_netns(outside)
    vh, vo = f"mvh{tag}", f"mvo{tag}"
    try:
        ns = ["nsenter", f"--net={outside}"]
        for cmd in (ns + ["ip", "link", "add", vo, "type", "veth", "peer", "name", vh, "netns", str(os.getpid())],
                    ns + ["ip", "addr", "add", f"{out_ip}/30", "dev", vo], ns + ["ip", "link", "set", vo, "up"],
                    ns + ["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{host_ip}/30", "dev", vh], ["ip", "link", "set", vh, "up"]):
            subprocess.run(cmd, check=True, capture_output=True)
        server = OneShotServer(out_ip, netns=str(outside))
        with provider.setup("step-nat", "default") as net:
            require_bridge(net)
            assert provider.nat_rule()[1] == DEFAULT_SUBNET and " ".join(provider.nat_rule()[2:5]) in _nat_rules()
            try:
                out = run(executor, containerd_env, net, f"echo hi | busybox nc -w 10 {out_ip} {server.port}")
            finally:
                server.close()
        assert out == "pong hi\n"
        assert server.peer == host_ip  # masqueraded: not the step's own address
    finally:
        subprocess.run(["ip", "link", "del", vh], capture_output=True)
        cni.remove_netns(outside)


def _ipam_owners() -> set[str]:
    """The CNI container IDs host-local holds addresses for (a file per IP: ID, then ifname)."""
    ipam = Path(DEFAULT_IPAM_DIR, DEFAULT_NETWORK_NAME)
    return {f.read_text().split()[0] for f in ipam.glob("10.*")} if ipam.exists() else set()


def _wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_cleanup_stale_removes_only_what_dead_owners_left(provider, tmp_path) -> None:
    dead = provider.setup("step-crashed", "default")
    live = provider.setup("step-running", "default")
    require_bridge(dead)
    # Pretend dead's owner was killed: give it the identity of a process that has exited.
    p = subprocess.Popen(["sleep", "60"])
    ident = f"{p.pid}:{Path(f'/proc/{p.pid}/stat').read_text().rsplit(')', 1)[1].split()[19]}"
    p.kill()
    p.wait()
    state_file = provider.dir / dead.id / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "owner": ident}))
    ip_file = Path(DEFAULT_IPAM_DIR, DEFAULT_NETWORK_NAME, dead.ip)

    assert cleanup_stale(provider.root) == 1
    assert not (provider.dir / dead.id).exists() and not cni.is_mountpoint(dead.netns_path)
    assert not Path("/sys/class/net", dead.host_interface).exists()
    assert not ip_file.exists() or dead.id not in ip_file.read_text()
    assert dead.id not in _nat_rules()
    assert cni.is_mountpoint(live.netns_path)  # its owner (this process) is alive
    live.teardown()
    dead.teardown()  # after the sweep: nothing to do, no error
    provider.flush()


# -- host and the fallback -----------------------------------------------------------------


def test_host_sees_host_interfaces_and_resolv_conf(provider, executor, containerd_env) -> None:
    with provider.setup("step-host", "host") as net:
        assert (net.mode, net.netns_path) == ("host", None)
        out = run(executor, containerd_env, net, "ls /sys/class/net; echo ---; cat /etc/resolv.conf")
    links, resolv = out.split("---\n")
    assert host_interfaces() <= set(links.split())
    assert resolv == Path("/etc/resolv.conf").read_text()


def test_default_falls_back_to_host_network_without_plugins(tmp_path, executor, containerd_env) -> None:
    empty = tmp_path / "no-cni"
    empty.mkdir()
    provider = NetworkProvider(tmp_path / "root", cni_path=[str(empty)])
    with provider.setup("step-fallback", "default") as net:
        assert (net.mode, net.netns_path) == ("host", None)
        assert "host network" in net.warning and "not found" in net.warning
        server = OneShotServer("127.0.0.1")  # host network: the host's loopback is the step's
        try:
            out = run(executor, containerd_env, net,
                      f"ls /sys/class/net; echo ---; echo hi | busybox nc -w 10 127.0.0.1 {server.port}")
        finally:
            server.close()
    links, reply = out.split("---\n")
    assert host_interfaces() <= set(links.split())
    assert reply == "pong hi\n"
    assert list(provider.dir.iterdir()) == []


def test_default_falls_back_when_the_bridge_plugin_fails(tmp_path, executor, containerd_env) -> None:
    """A plugin error after the namespace and loopback are set up: all of it is undone."""
    bindir = tmp_path / "cni"
    bindir.mkdir()
    for name in ("loopback", "host-local"):
        (bindir / name).symlink_to(cni.find_plugins((name,), cni.DEFAULT_CNI_PATH)[name])
    fake = bindir / "bridge"
    fake.write_text('#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = DEL ] && exit 0\n'
                    'echo \'{"cniVersion":"1.0.0","code":11,"msg":"bridge says no","details":"test"}\'\nexit 1\n')
    fake.chmod(0o755)
    provider = NetworkProvider(tmp_path / "root", cni_path=[str(bindir)])
    with provider.setup("step-broken", "default") as net:
        assert net.mode == "host" and "bridge says no: test" in net.warning
        assert not _mounts_under(tmp_path)
        links = run(executor, containerd_env, net, "ls /sys/class/net")
    assert host_interfaces() <= set(links.split())
    assert list(provider.dir.iterdir()) == []


def _nat_rules() -> str:
    return subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout


def _nameservers(text: str) -> list[str]:
    return [ln.split()[1] for ln in text.splitlines() if ln.startswith("nameserver ")]
