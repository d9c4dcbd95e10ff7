"""Which containerd mason talks to, and mason's own private one.

``--containerd-address`` / ``MASON_CONTAINERD_ADDRESS`` names a daemon that must already be
answering. Without one, mason runs its own containerd (the ``containerd`` binary on PATH) under
its state directory, starts it when it is not running and leaves it running for the next build —
the embedded default. Everything it owns lives under ``<root>/containerd/``::

    config.toml  containerd.pid  containerd.log  lock
    root/        containerd's persistent data (content, snapshots, metadata)
    state/       containerd's state; containerd.sock (gRPC) and .ttrpc live here
    state/runc/  runc's state (the runc options' ``root``)
    state/io/    FIFOs for task output
    opt/         the ``opt`` plugin's directory

Shim sockets still go to ``/run/containerd/s/``: the runc v2 shim picks that path itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mason.ir.errors import MasonError

ADDRESS_ENV = "MASON_CONTAINERD_ADDRESS"
ROOT_ENV = "MASON_ROOT"
NAMESPACE = "mason"

# Plugins a build never needs; disabling them keeps start-up fast and quiet.
DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)

# Unix socket paths are limited to 108 bytes (sun_path); containerd adds ".ttrpc".
_MAX_SOCKET_PATH = 100


def default_root() -> Path:
    """``$MASON_ROOT``, else ``/var/lib/mason`` as root and ``~/.local/share/mason`` otherwise."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/mason")
    return Path(os.path.expanduser("~")) / ".local" / "share" / "mason"


def state_root(root: str | os.PathLike[str] | None) -> Path:
    """mason's state directory: ``--root`` as given, else :func:`default_root` (every command
    and the driver resolve it here)."""
    return Path(root) if root else default_root()


def socket_path(address: str) -> str:
    """A containerd address (``/path`` or ``unix:///path``) as a filesystem path."""
    return address[len("unix://"):] if address.startswith("unix://") else address


def socket_answers(address: str, timeout: float = 1.0) -> bool:
    """True if something accepts connections on the unix socket (cheap, no gRPC)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(socket_path(address))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MasonError(f"`{name}` is not on PATH; install the Debian package {package}")
    return path


def _toml_str(s: str | Path) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class ManagedContainerd:
    """mason's private containerd under ``<root>/containerd``."""

    root: Path

    @classmethod
    def at(cls, root: str | Path | None = None) -> "ManagedContainerd":
        return cls(state_root(root))

    # -- layout ---------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return self.root.absolute() / "containerd"

    @property
    def config_file(self) -> Path:
        return self.dir / "config.toml"

    @property
    def pid_file(self) -> Path:
        return self.dir / "containerd.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "containerd.log"

    @property
    def data_dir(self) -> Path:
        return self.dir / "root"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def runc_root(self) -> Path:
        return self.state_dir / "runc"

    @property
    def io_dir(self) -> Path:
        return self.state_dir / "io"

    @property
    def address(self) -> str:
        return str(self.state_dir / "containerd.sock")

    # -- state ----------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The PID of our containerd if it is alive (checked against /proc), else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if not cmdline or not cmdline[0].endswith(b"containerd") or str(self.config_file).encode() not in cmdline:
            return None  # a stale pid file whose number was reused
        return pid

    def running(self) -> bool:
        return self.pid() is not None and socket_answers(self.address)

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {
            "running": pid is not None and socket_answers(self.address),
            "pid": pid,
            "address": self.address,
            "root": str(self.root),
            "log": str(self.log_file),
        }

    # -- start / stop ---------------------------------------------------------------------

    def write_config(self) -> None:
        lines = [
            "# Written by mason; rewritten on every start.",
            "version = 2",
            f"root = {_toml_str(self.data_dir)}",
            f"state = {_toml_str(self.state_dir)}",
            "disabled_plugins = [" + ", ".join(_toml_str(p) for p in DISABLED_PLUGINS) + "]",
            "",
            "[grpc]",
            f"  address = {_toml_str(self.address)}",
            "  max_recv_message_size = 67108864",
            "  max_send_message_size = 67108864",
            "",
            "[plugins]",
            '  [plugins."io.containerd.internal.v1.opt"]',
            f"    path = {_toml_str(self.dir / 'opt')}",
            '  [plugins."io.containerd.gc.v1.scheduler"]',
            "    pause_threshold = 0.02",
            "    deletion_threshold = 0",
            "    mutation_threshold = 100",
            '    schedule_delay = "0s"',
            '    startup_delay = "100ms"',
            "",
        ]
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines))
        os.replace(tmp, self.config_file)

    @contextlib.contextmanager
    def _lock(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def ensure_running(self, timeout: float = 30.0) -> str:
        """Start our containerd unless it already answers; return its address."""
        if self.running():
            return self.address
        with self._lock():  # two mason processes must not start two daemons
            if self.running():
                return self.address
            self._start(timeout)
        return self.address

    def restart_if_died(self, timeout: float = 30.0) -> bool:
        """Start our containerd again if it died (killed, crashed: its pid file is still there)
        — not if it was stopped (``mason daemon stop`` removes the pid file). True if it runs."""
        with self._lock():
            if not self.pid_file.exists():
                return False
            if not self.running():
                self._start(timeout)
        return True

    def _start(self, timeout: float) -> None:
        if os.geteuid() != 0:
            raise MasonError(
                "mason's own containerd needs root (rootless containerd is not supported yet); "
                f"run as root or point --containerd-address / {ADDRESS_ENV} at a running containerd"
            )
        containerd = _require_binary("containerd", "containerd")
        _require_binary("runc", "runc")
        _require_binary("containerd-shim-runc-v2", "containerd")
        if len(self.address) > _MAX_SOCKET_PATH:
            raise MasonError(
                f"mason's state directory is too deep for a unix socket ({self.address}); "
                f"use a shorter --root / {ROOT_ENV}"
            )
        stale = self.pid()
        if stale is not None:  # alive but not answering: a wedged daemon of ours
            self._terminate(stale, timeout=10)
        for d in (self.data_dir, self.state_dir, self.runc_root, self.io_dir, self.dir / "opt"):
            d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)
        self.write_config()
        log = open(self.log_file, "ab")
        try:
            proc = subprocess.Popen(
                [containerd, "--config", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # survives mason and its terminal's Ctrl-C
                close_fds=True,
            )
        finally:
            log.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise MasonError(
                    f"containerd exited with status {proc.returncode} while starting; "
                    f"see {self.log_file}:\n{self._log_tail()}"
                )
            if socket_answers(self.address, timeout=0.2):
                return
            time.sleep(0.02)
        raise MasonError(f"containerd did not answer on {self.address} within {timeout:.0f}s; see {self.log_file}")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop our containerd (after killing the tasks it runs, so no shim outlives it).
        Returns False if it was not running."""
        with self._lock():
            pid = self.pid()
            if pid is None:
                self.pid_file.unlink(missing_ok=True)
                self._sweep_mounts()
                return False
            with contextlib.suppress(OSError):  # for the builds whose steps it kills
                (self.dir / STOP_MARK).write_text(f"{time.time()}\n")
            if socket_answers(self.address):
                with contextlib.suppress(MasonError):
                    _reap_tasks(self.address)
            self._terminate(pid, timeout)
            self.pid_file.unlink(missing_ok=True)
            self._sweep_mounts()
            return True

    def _sweep_mounts(self) -> None:
        """After the stop: what dead builds left mounted under the root (their step networks'
        netns mounts, their task rootfs mounts, the views in their scratch directories), so
        ``rm -rf`` of the root then works."""
        from mason.backends.containerd import rootfs
        from mason.backends.containerd.exec import _owner_alive
        from mason.backends.containerd.network import cleanup_stale

        with contextlib.suppress(MasonError, OSError):
            cleanup_stale(self.root)
        with contextlib.suppress(MasonError, OSError):
            rootfs.sweep_stale(self.root / "solver" / "io" / "rootfs", _owner_alive)
        from mason.backends.solver.tmpdirs import sweep_build_dirs

        with contextlib.suppress(MasonError, OSError):
            sweep_build_dirs(self.root / "solver" / "tmp", _owner_alive)

    @staticmethod
    def _terminate(pid: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)


STOP_MARK = "stopped"  # under the daemon's dir: when `mason daemon stop` last stopped it


def stopped_since(root: str | Path, since: float) -> bool:
    """Whether ``mason daemon stop`` stopped the containerd of state root ``root`` at
    ``since`` (a ``time.time()``) or later: a step's task killed then was killed by the stop."""
    try:
        return os.stat(Path(root).absolute() / "containerd" / STOP_MARK).st_mtime >= since - 1
    except OSError:
        return False


def _alive(pid: int) -> bool:
    # Our own child becomes a zombie until reaped; treat a zombie as gone.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap_tasks(address: str) -> None:
    """Kill and delete every task and container in every namespace (the daemon is ours)."""
    from mason.backends.containerd.client import Client

    with Client(address) as c:
        for ns in c.list_namespaces():
            cn = c.in_namespace(ns)
            for t in cn.list_tasks():
                cn.force_delete_task(t)
            for cid in cn.list_containers():
                with contextlib.suppress(MasonError):
                    cn.delete_container(cid)


def resolve_address(address: str | None = None, root: str | Path | None = None, *, start: bool = True) -> str:
    """The containerd address to use: ``address``, else ``$MASON_CONTAINERD_ADDRESS`` (either
    must answer), else mason's private daemon under ``root`` (started if ``start``)."""
    explicit = address or os.environ.get(ADDRESS_ENV)
    if explicit:
        if not socket_answers(explicit):
            raise MasonError(f"no containerd answers at {socket_path(explicit)} "
                             f"(from --containerd-address / {ADDRESS_ENV})")
        return socket_path(explicit)
    daemon = ManagedContainerd.at(root)
    return daemon.ensure_running() if start else daemon.address
