"""Network modes of a build step (LLB's ``NetMode``): ``none``, ``host`` and ``default``.

The solver asks a :class:`NetworkProvider` for each ExecOp and applies what it gets::

    with provider.setup(step_id, "default") as net:      # teardown() on exit, always
        if net.warning:
            emit_warning(net.warning)                     # e.g. fell back to the host network
        result = executor.run_step(net.apply(process), parent, ...)

* ``none`` — a fresh network namespace with only ``lo`` (runc creates it and brings ``lo`` up).
* ``host`` — the host's network namespace. Only with the ``network.host`` entitlement; the
  solver checks that, not this module.
* ``default`` — the step's own namespace with outbound access, like buildkitd's CNI mode: a
  named namespace (``<root>/network/<id>/netns``), the CNI ``loopback`` plugin, then the
  ``bridge`` plugin (bridge ``mason0`` as gateway, ``host-local`` IPAM on 10.89.0.0/24) and
  one machine-wide NAT rule for the subnet (``iptables -t nat POSTROUTING -s 10.89.0.0/24
  ! -o mason0 -j MASQUERADE``, as Docker does for docker0; the plugin's per-namespace ``ipMasq``
  chains cost ≈ 75 ms per ADD and ≈ 70 ms per DEL here). Where that cannot work — plugins
  missing, not root, a plugin failing — it is the host network instead, with a warning, as
  buildkitd does when it has no CNI.

  Like BuildKit's netns pool, these namespaces are made *ahead of need* by a background thread
  (:mod:`.netpool`; ``pool_size`` idle ones, the first when a step first asks), so a step only
  takes one; after the step it is torn down in the background, never reused (a step may have
  changed routes, iptables rules or sysctls in it). :meth:`NetworkProvider.close` destroys the
  idle ones and waits for the teardowns; an ``atexit`` hook closes forgotten providers.

Every mode gets generated ``/etc/hosts`` and ``/etc/resolv.conf``, bind-mounted read-only as
BuildKit does (one copy per step; runc creates missing mount points in the rootfs, so the
solver removes such stubs before committing, as for any mount). ``resolv.conf`` follows buildkitd:
with the host network the host's file as it is; otherwise the host's file without loopback
nameservers (unreachable from another namespace), reading systemd-resolved's upstream list
(``/run/systemd/resolve/resolv.conf``) when the host file points at its stub 127.0.0.53, and
with Docker's public defaults when no nameserver is left. It does *not* switch a step to the
host network because the host's resolver is on loopback: the step's namespace is what it asked
for; only name resolution would suffer, and the upstream file or the defaults cover that.

Machine-wide things, shared by every mason root on the machine because the bridge and its
subnet are: the bridge and the NAT rule (left in place, like docker0 or buildkit0), the IPAM state
(``/run/mason/cni`` by default; host-local locks it, so concurrent steps in different
processes get different addresses) and ``net.ipv4.ip_forward=1``, which the bridge plugin sets
for the gateway. Per step, all under ``<root>/network/<id>/`` with a ``state.json`` naming
the owning process (pool namespaces too, from the moment they are made): :func:`cleanup_stale`
tears down what a dead process left behind; a provider runs it once, before its first namespace.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mason.backends.containerd import cni
from mason.backends.containerd.exec import _owner_alive, _process_identity
from mason.backends.containerd.netpool import Pool, PoolClosed
from mason.backends.containerd.spec import BindMount, Process
from mason.ir.errors import MasonError

NetMode = Literal["none", "host", "default"]
MODES: tuple[str, ...] = ("none", "host", "default")

DEFAULT_BRIDGE = "mason0"
DEFAULT_SUBNET = "10.89.0.0/24"
DEFAULT_NETWORK_NAME = "mason"
DEFAULT_IPAM_DIR = "/run/mason/cni"
HOST_RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"  # systemd-resolved's real upstream servers
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # Docker's and BuildKit's fallback
IFNAME = "eth0"
DEFAULT_POOL_SIZE = 2  # idle prepared namespaces kept per provider (plus one per waiting step)
_SETUP_GRACE = 60.0  # seconds a state-less step dir may be "being set up" before a sweep takes it


@dataclass(eq=False)
class NetworkSetup:
    """One step's network: what to put into its spec, and how to undo it (:meth:`teardown`).

    ``mode`` is what the step really gets: ``"none"``, ``"host"`` or ``"bridge"`` (``default``
    with its own namespace); ``requested`` is what was asked for. A ``default`` that fell back
    to the host network has ``mode == "host"`` and a ``warning``."""

    step_id: str
    requested: str
    mode: Literal["none", "host", "bridge"]
    id: str  # also the CNI container ID
    netns_path: str | None = None
    hosts: str = ""
    resolv_conf: str = ""
    mounts: tuple[BindMount, ...] = ()
    address: str | None = None  # "10.89.0.5/24" (bridge only)
    gateway: str | None = None  # "10.89.0.1": the host side of the bridge
    host_interface: str | None = None  # the host end of the step's veth pair
    warning: str | None = None
    _provider: "NetworkProvider | None" = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)

    @property
    def ip(self) -> str | None:
        return self.address.split("/", 1)[0] if self.address else None

    def apply(self, process: Process) -> Process:
        """``process`` with this network: namespace choice and the /etc/hosts, /etc/resolv.conf
        mounts (first, so an ExecOp's own mount on those paths still wins)."""
        return replace(process, network="host" if self.mode == "host" else "none",
                       netns_path=self.netns_path, mounts=self.mounts + tuple(process.mounts))

    def teardown(self) -> None:
        """Release everything (CNI DEL, namespace, files). Idempotent. A bridge namespace from
        the pool goes in the background (errors are raised by the provider's ``flush`` or
        ``close``); otherwise raises :class:`MasonError` if something could not be released
        (after trying all of it)."""
        if self._done or self._provider is None:
            return
        self._done = True
        errors = self._provider._release(self)
        if errors:
            raise MasonError(f"network teardown of step {self.step_id}: " + "; ".join(errors))

    def __enter__(self) -> "NetworkSetup":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.teardown()
        except MasonError:
            if exc_type is None:
                raise  # otherwise keep the step's own error: it is the one to report


class NetworkProvider:
    """Sets up network modes for steps; one per build (or per process), thread-safe. Call
    :meth:`close` when done: it destroys the pool of prepared namespaces and waits for the
    background teardowns."""

    def __init__(self, root: str | os.PathLike[str], *, cni_path: Sequence[str] | str | None = None,
                 bridge: str = DEFAULT_BRIDGE, subnet: str = DEFAULT_SUBNET,
                 network_name: str = DEFAULT_NETWORK_NAME, ipam_dir: str | os.PathLike[str] = DEFAULT_IPAM_DIR,
                 host_resolv_conf: str = HOST_RESOLV_CONF, resolved_upstream: str = RESOLVED_UPSTREAM,
                 pool_size: int = DEFAULT_POOL_SIZE):
        self.root = Path(root)
        self.dir = self.root / "network"
        self.cni_path = _cni_path(cni_path)
        self.bridge = bridge
        self.subnet = str(ipaddress.ip_network(subnet))
        self.network_name = network_name
        self.ipam_dir = os.fspath(ipam_dir)
        self.host_resolv_conf = host_resolv_conf
        self.resolved_upstream = resolved_upstream
        self.owner = _process_identity(os.getpid()) or str(os.getpid())
        self.pool_size = pool_size  # 0: no pool; set up and tear down on the step's own path
        self._pool: Pool[_Prepared] | None = None
        self._lock = threading.Lock()
        self._nat_ok = False
        self._swept = False

    # -- the interface -----------------------------------------------------------------------

    def setup(self, step_id: str, mode: str, *, hostname: str = "mason",
              extra_hosts: Sequence[tuple[str, str]] = ()) -> NetworkSetup:
        """Prepare the network of one step. Use the result as a context manager (or call its
        ``teardown``) whatever happens to the step. ``default`` takes a namespace from the
        pool (made ahead of need); its teardown happens in the background."""
        if mode not in MODES:
            raise MasonError(f"unknown network mode {mode!r} (expected one of: {', '.join(MODES)})")
        net: NetworkSetup | None = None
        warning = None
        if mode == "default":
            try:
                p = self._take()
                net = NetworkSetup(step_id, mode, "bridge", p.sid, netns_path=str(p.dir / "netns"),
                                   address=p.result.address, gateway=p.result.gateway,
                                   host_interface=p.result.host_interface, _provider=self)
            except cni.CniError as e:
                warning = f"network mode 'default' is unavailable ({e}); this step uses the host network instead"
        if net is None:
            sid = f"mason-{secrets.token_hex(8)}"
            (self.dir / sid).mkdir(parents=True, mode=0o700)
            _write_json(self.dir / sid / "state.json",
                        {"owner": self.owner, "step": step_id, "mode": mode, "created": time.time()})
            net = NetworkSetup(step_id, mode, "none" if mode == "none" else "host", sid, warning=warning,
                               _provider=self)
        d = self.dir / net.id
        try:
            net.hosts = render_hosts(hostname, extra_hosts)
            net.resolv_conf = render_resolv_conf(net.mode == "host", self.host_resolv_conf, self.resolved_upstream)
            for name, text in (("hosts", net.hosts), ("resolv.conf", net.resolv_conf)):
                fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                with os.fdopen(fd, "w") as f:
                    f.write(text)
            safe = ("nosuid", "nodev", "noexec")  # as BuildKit mounts them
            net.mounts = (BindMount(str(d / "hosts"), "/etc/hosts", options=safe),
                          BindMount(str(d / "resolv.conf"), "/etc/resolv.conf", options=safe))
            return net
        except BaseException:
            with contextlib.suppress(MasonError):
                net.teardown()
            raise

    def prewarm(self) -> None:
        """Start preparing ``default`` namespaces now (when a build knows it will run steps on
        the default network), so that even the first such step finds one ready."""
        if self.pool_size > 0:
            self._get_pool().start()

    def flush(self) -> None:
        """Wait for the background teardowns so far; raise :class:`MasonError` if any failed."""
        pool = self._pool
        if pool is not None:
            _raise_teardown_errors(pool.flush())

    def close(self) -> None:
        """Destroy the idle prepared namespaces and wait for every background teardown; raise
        :class:`MasonError` if something could not be released (after trying all of it).
        Idempotent; a later ``setup`` starts a new pool."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            _live_providers.discard(self)
            _raise_teardown_errors(pool.close())

    def __enter__(self) -> "NetworkProvider":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the pool ----------------------------------------------------------------------------

    def _take(self) -> "_Prepared":
        if self.pool_size <= 0:
            return self._prepare()
        try:
            return self._get_pool().take()
        except (PoolClosed, cni.CniError) as e:  # closed while we waited; or the bridge is broken
            raise cni.CniError(str(e)) from None

    def _get_pool(self) -> "Pool[_Prepared]":
        with self._lock:
            if self._pool is None:
                self._pool = Pool(self._prepare, self._destroy, size=self.pool_size, name="mason-netns")
                _live_providers.add(self)
            return self._pool

    def _release(self, net: NetworkSetup) -> list[str]:
        """Undo ``net``: a bridge namespace in the background (errors come from flush/close),
        the rest (a directory of files) right here."""
        pool = self._pool
        if net.mode == "bridge" and pool is not None:
            pool.release(_Prepared(net.id, self.dir / net.id, cni.CniResult()))
            return []
        return self._teardown_dir(self.dir / net.id)

    def _prepare(self) -> "_Prepared":
        """A fresh namespace on the bridge, not yet given to a step (runs on the pool's maker)."""
        if not self._swept:  # once: what crashed masons left (IP addresses are finite)
            self._swept = True
            cleanup_stale(self.root)
        sid = f"mason-{secrets.token_hex(8)}"
        d = self.dir / sid
        d.mkdir(parents=True, mode=0o700)
        state: dict[str, Any] = {"owner": self.owner, "step": None, "mode": "default", "created": time.time()}
        _write_json(d / "state.json", state)
        try:
            res = self._bridge_up(sid, d, state)
        except BaseException:
            if not self._teardown_dir(d):
                shutil.rmtree(d, ignore_errors=True)
            raise
        return _Prepared(sid, d, res)

    def _destroy(self, p: "_Prepared") -> None:
        errors = self._teardown_dir(p.dir)
        if errors:
            raise MasonError(f"network teardown of {p.sid}: " + "; ".join(errors))

    # -- bridge mode -------------------------------------------------------------------------

    def bridge_config(self) -> dict[str, Any]:
        # NAT is one rule for the whole subnet (_ensure_nat), as Docker does for docker0, not the
        # plugin's ipMasq: that adds and removes a chain of iptables rules per namespace, which
        # measured ≈ 75 ms of each ADD and ≈ 70 ms of each DEL here.
        return {
            "cniVersion": cni.CNI_VERSION, "name": self.network_name, "type": "bridge",
            "bridge": self.bridge, "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.ipam_dir},
        }

    def loopback_config(self) -> dict[str, Any]:
        return {"cniVersion": cni.CNI_VERSION, "name": f"{self.network_name}-lo", "type": "loopback"}

    def nat_rule(self) -> list[str]:
        """The POSTROUTING rule (iptables arguments) that masquerades the subnet's traffic
        leaving through any other interface."""
        return ["-s", self.subnet, "!", "-o", self.bridge, "-m", "comment", "--comment",
                f"mason network {self.network_name}", "-j", "MASQUERADE"]

    def _ensure_nat(self) -> None:
        """Add :meth:`nat_rule` once per machine (left in place, like the bridge; checked once
        per provider). Serialized across processes by the IPAM directory's setup lock."""
        if self._nat_ok:
            return
        os.makedirs(self.ipam_dir, mode=0o755, exist_ok=True)
        with open(os.path.join(self.ipam_dir, f"{self.network_name}.setup.lock"), "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            if cni.iptables("-t", "nat", "-C", "POSTROUTING", *self.nat_rule(), check=False) != 0:
                cni.iptables("-t", "nat", "-A", "POSTROUTING", *self.nat_rule())
        self._nat_ok = True

    def _bridge_up(self, sid: str, d: Path, state: dict[str, Any]) -> cni.CniResult:
        if os.geteuid() != 0:
            raise cni.CniError(f"the CNI bridge needs root (running as uid {os.geteuid()})")
        cni.find_plugins(("bridge", "host-local", "loopback"), self.cni_path)
        self._ensure_nat()
        netns = d / "netns"
        # Record how to undo it *before* doing it: a crash from here on leaves a sweepable state.
        state.update(netns=str(netns), cni_path=list(self.cni_path),
                     plugins=[self.loopback_config(), self.bridge_config()])
        _write_json(d / "state.json", state)
        try:
            cni.create_netns(netns)
            self._add(self.loopback_config(), sid, netns)
            try:
                result = self._add_bridge(sid, netns)
            except cni.CniError:
                # Two first-ever ADDs may race creating the bridge and its address: retry once,
                # serialized.
                _del_quietly(self.bridge_config(), sid, str(netns), self.cni_path)
                result = self._add_bridge(sid, netns, lock=True)
            res = cni.parse_result(result, IFNAME)
            if not res.address or not res.gateway:
                raise cni.CniError(f"bridge ADD gave no address/gateway: {json.dumps(result)[:300]}")
            return res
        except BaseException:
            if not self._teardown_dir(d, keep_dir=True):  # else keep the record: teardown retries
                _write_json(d / "state.json", {k: v for k, v in state.items() if k not in ("netns", "plugins")})
            raise

    def _add(self, config: Mapping[str, Any], sid: str, netns: Path) -> dict[str, Any]:
        plugin = cni.find_plugins((config["type"],), self.cni_path)[config["type"]]
        return cni.invoke(plugin, "ADD", container_id=sid, netns=str(netns), ifname=_ifname(config),
                          config=config, cni_path=self.cni_path)

    def _add_bridge(self, sid: str, netns: Path, lock: bool = False) -> dict[str, Any]:
        if not lock and os.path.exists(f"/sys/class/net/{self.bridge}"):
            return self._add(self.bridge_config(), sid, netns)
        os.makedirs(self.ipam_dir, mode=0o755, exist_ok=True)
        with open(os.path.join(self.ipam_dir, f"{self.network_name}.setup.lock"), "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            return self._add(self.bridge_config(), sid, netns)

    # -- teardown ----------------------------------------------------------------------------

    def _teardown_dir(self, d: Path, keep_dir: bool = False) -> list[str]:
        return teardown_step_dir(d, keep_dir=keep_dir)


def teardown_step_dir(d: Path, *, keep_dir: bool = False) -> list[str]:
    """Undo one step's network from its ``state.json``: CNI DEL in reverse order (while the
    namespace still exists: the bridge plugin finds the NAT rules to remove through the
    interface in it), unmount and delete the namespace, delete the files. Returns errors."""
    errors: list[str] = []
    state = _read_json(d / "state.json") or {}
    netns = state.get("netns")
    if netns:
        alive = cni.netns_exists(netns)
        cni_path = tuple(state.get("cni_path") or cni.DEFAULT_CNI_PATH)
        for config in reversed(state.get("plugins") or []):
            try:
                # Without the namespace (after a reboot) DEL with an empty CNI_NETNS still frees the IP.
                plugin = cni.find_plugins((config["type"],), cni_path)[config["type"]]
                cni.invoke(plugin, "DEL", container_id=d.name, netns=netns if alive else "",
                           ifname=_ifname(config), config=config, cni_path=cni_path)
            except cni.CniError as e:
                errors.append(str(e))
        try:
            cni.remove_netns(netns)
        except (cni.CniError, OSError) as e:
            errors.append(str(e))
    if not keep_dir and not errors:
        shutil.rmtree(d, ignore_errors=True)
    return errors


def cleanup_stale(root: str | os.PathLike[str]) -> int:
    """Tear down the step networks under ``root`` whose owning process is gone (killed, crashed,
    power loss). Call it when a build starts, next to the containerd orphan sweep. Returns how
    many were removed."""
    base = Path(root) / "network"
    n = 0
    if not base.is_dir():
        return 0
    for d in sorted(base.iterdir()):
        if not d.is_dir():
            continue
        state = _read_json(d / "state.json")
        if state is None:
            try:
                young = time.time() - d.stat().st_mtime < _SETUP_GRACE
            except FileNotFoundError:
                continue
            if young or any(cni.is_mountpoint(p) for p in d.iterdir()):
                continue
        elif _owner_alive(str(state.get("owner", ""))):
            continue
        if not teardown_step_dir(d):
            n += 1
    return n


# -- generated files ------------------------------------------------------------------------


def render_hosts(hostname: str, extra_hosts: Sequence[tuple[str, str]] = ()) -> str:
    """/etc/hosts as BuildKit writes it: localhost and the step's hostname on loopback."""
    lines = [f"127.0.0.1\tlocalhost {hostname}".rstrip(), "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{name}" for name, ip in extra_hosts]
    return "\n".join(lines) + "\n"


def render_resolv_conf(host_network: bool, host_path: str = HOST_RESOLV_CONF,
                       resolved_upstream: str = RESOLVED_UPSTREAM) -> str:
    """/etc/resolv.conf for a step (see the module docstring for the rules)."""
    text = _read_text(host_path)
    if host_network:
        return text
    servers = _nameservers(text)
    if servers and all(_is_loopback(s) for s in servers) and os.path.exists(resolved_upstream):
        text = _read_text(resolved_upstream)  # the stub 127.0.0.53 → the servers behind it
    kept = [ln for ln in text.splitlines()
            if not (_is_nameserver_line(ln) and _is_loopback(ln.split()[1]))]
    if not _nameservers("\n".join(kept)):
        kept += [f"nameserver {s}" for s in DEFAULT_NAMESERVERS]
    return "\n".join(kept) + "\n"


def _is_nameserver_line(line: str) -> bool:
    parts = line.split()
    return len(parts) >= 2 and parts[0] == "nameserver"


def _nameservers(text: str) -> list[str]:
    return [ln.split()[1] for ln in text.splitlines() if _is_nameserver_line(ln)]


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


# -- helpers --------------------------------------------------------------------------------


def _cni_path(value: Sequence[str] | str | None) -> tuple[str, ...]:
    if value is None:
        value = os.environ.get("CNI_PATH") or list(cni.DEFAULT_CNI_PATH)
    if isinstance(value, str):
        value = value.split(":")
    return tuple(p for p in value if p)


def _ifname(config: Mapping[str, Any]) -> str:
    return "lo" if config.get("type") == "loopback" else IFNAME


def _del_quietly(config: Mapping[str, Any], sid: str, netns: str, cni_path: Sequence[str]) -> None:
    with contextlib.suppress(cni.CniError):
        plugin = cni.find_plugins((config["type"],), cni_path)[config["type"]]
        cni.invoke(plugin, "DEL", container_id=sid, netns=netns, ifname=_ifname(config), config=config,
                   cni_path=cni_path)


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A namespace on the bridge, made by the pool (``<root>/network/<sid>/netns``)."""

    sid: str
    dir: Path
    result: cni.CniResult


def _raise_teardown_errors(errors: Sequence[BaseException]) -> None:
    if errors:
        raise MasonError("network teardown: " + "; ".join(str(e) for e in errors))


# Providers with a live pool: closed at interpreter exit if their owner forgot to (a crash or
# SIGKILL leaves them to cleanup_stale).
_live_providers: "weakref.WeakSet[NetworkProvider]" = weakref.WeakSet()


@atexit.register
def _close_pools() -> None:
    for p in list(_live_providers):
        with contextlib.suppress(BaseException):
            p.close()
