"""ExecOp: run a process in a container on a snapshot, with all of LLB's mount types.

Per op: prepare an active snapshot of the root mount's input → set up the other mounts →
run through :meth:`Executor.execute <mason.backends.containerd.exec.Executor.execute>` (shim
grouping, rootfs mounted by mason, background deletes) → remove the mount-point stubs runc
made in the rootfs (once ``execute`` returns the task has exited and its rootfs is unmounted)
→ commit every writable output as a snapshot of its own (a fresh name: the vertex's cache key
and a nonce, :func:`~.mergediff.result_snapshot_name`), and
:meth:`~mason.backends.containerd.exec.Executor.hold` it with the run's handle so that a later
``settle`` waits for a shim that still has it mounted.

Mounts (sorted by destination, as LLB orders them):

* ``bind`` — another result: read-only (a view) or writable (an active snapshot, committed
  as the mount's output afterwards); mounted on the host and bound in, ``selector`` = a
  subpath resolved inside the snapshot (:func:`fsutil.resolve_in_root`);
* ``cache`` — a persistent directory per id (:class:`~.mounts.CacheMounts`), seeded from the
  mount's input on first use;
* ``tmpfs`` (size), ``secret`` (a tmpfs file, read-only; see :mod:`.secrets`), ``ssh`` (the
  agent socket).

Also: the network (:class:`Network`: ``none``, ``host`` with the ``network.host``
entitlement, default; each with generated ``/etc/hosts`` and ``/etc/resolv.conf``), user names
resolved in the rootfs's ``/etc/passwd`` (read from the layer directories, no mount), and
``security=insecure`` (entitlement ``security.insecure``): a privileged process, see
:mod:`~mason.backends.containerd.spec`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mason.backends.containerd.client import NotFound
from mason.backends.containerd.exec import OWNER_LABEL, RunHandle
from mason.backends.containerd.spec import DEFAULT_ENV, BindMount, Process, TmpfsMount
from mason.backends.solver import mounts as hm
from mason.backends.solver import users
from mason.backends.solver.events import VertexLog
from mason.backends.solver.fsutil import remove_if_empty
from mason.backends.solver.mergediff import result_snapshot_name
from mason.backends.solver.results import SCRATCH, Result
from mason.backends.solver.scheduler import Cancelled
from mason.backends.solver.secrets import LineRedactor
from mason.ir.errors import MasonError
from mason.ir.ops import CacheSharing, ExecOp, Mount, MountType, NetMode, SecurityMode
from mason.ir.runlimits import rlimit_type

if TYPE_CHECKING:
    from mason.backends.solver.context import SolveContext

DEFAULT_HOSTNAME = "buildkitsandbox"
TAIL_LINES = 10


class Network:
    """Which network a step gets, behind one small interface: :meth:`setup` returns a
    context manager whose value has ``apply(process)`` (namespace choice plus the
    ``/etc/hosts`` and ``/etc/resolv.conf`` mounts) and ``warning``. The work is
    :class:`~mason.backends.containerd.network.NetworkProvider`'s: ``none`` = own namespace,
    loopback only; ``host`` (entitlement ``network.host``, checked here); default (LLB's
    UNSET) = the step's own namespace on a CNI bridge with NAT, or the host network with a
    warning where that is unavailable — or always the host network when ``default_mode`` is
    ``"host"`` (buildkitd without CNI)."""

    def __init__(self, root: Path, warn: Callable[[str], None], default_mode: str = "default"):
        from mason.backends.containerd.network import NetworkProvider

        self.provider = NetworkProvider(root)
        self.default_mode = default_mode
        self._warn = warn
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._closer_registered = False

    def mode_for(self, mode: int, entitlements: set[str], loc=None) -> str:
        if mode == NetMode.NONE:
            return "none"
        if mode == NetMode.HOST:
            if "network.host" not in entitlements:
                raise MasonError("network mode \"host\" needs the network.host entitlement "
                                 "(--allow network.host)", loc)
            return "host"
        if mode == NetMode.UNSET:
            return self.default_mode
        raise MasonError(f"unknown network mode {int(mode)}", loc)

    def setup(self, step_id: str, mode: str, hostname: str, extra_hosts, executor=None):
        """The step's :class:`~mason.backends.containerd.network.NetworkSetup`. ``executor``:
        the build's, whose ``close`` then also closes this (the provider's namespace pool)."""
        if executor is not None and mode == "default":
            self._register(executor)
        net = self.provider.setup(step_id, mode, hostname=hostname, extra_hosts=extra_hosts)
        if net.warning:
            self.warn_once(net.warning.split(" (", 1)[0], net.warning)
        elif mode == "host" and self.default_mode == "host":
            self.warn_once("host-default", "RUN steps use the host network (no isolated default network)")
        return net

    def prewarm(self, executor) -> None:
        """Start preparing default-network namespaces before the first step asks (for the
        solver to call when a build will run ExecOps on the default network)."""
        if self.default_mode == "default":
            self._register(executor)
            self.provider.prewarm()

    def _register(self, executor) -> None:
        with self._lock:
            register, self._closer_registered = not self._closer_registered, True
        if register:
            executor.on_close(self.close)

    def close(self) -> None:
        """Destroy the pool of prepared namespaces and wait for the background teardowns; a
        failure there is a warning (the build's results are fine). Idempotent."""
        try:
            self.provider.close()
        except MasonError as e:
            self.warn_once("network-teardown", str(e))

    def warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        self._warn(message)


@dataclass
class _Setup:
    """What one exec acquired and must release."""

    binds: list[BindMount | TmpfsMount] = field(default_factory=list)
    host_mounts: list[str] = field(default_factory=list)  # host dirs we mounted
    views: list[str] = field(default_factory=list)  # snapshot keys to remove
    actives: dict[int, tuple[str, int]] = field(default_factory=dict)  # output -> (active key, input)
    cache_fds: list[int | None] = field(default_factory=list)
    stubs: list[str] = field(default_factory=list)  # paths created by runc, deepest last
    net: object | None = None  # the step's NetworkSetup


def describe_exec(op: ExecOp) -> str:
    return " ".join(shlex.quote(a) for a in op.meta.args)


def run_exec(ctx: "SolveContext", op: ExecOp, inputs: list[Result], key: str, n: int, name: str) -> list[Result]:
    """Run ``op`` (inputs already solved, in op-input order); return its outputs by index."""
    c = ctx.client
    ex = ctx.executor
    if op.security == SecurityMode.INSECURE and "security.insecure" not in ctx.entitlements:
        raise MasonError("security mode \"insecure\" needs the security.insecure entitlement "
                         "(--allow security.insecure)", op.loc)
    net_mode = ctx.network.mode_for(op.network, ctx.entitlements, op.loc)
    root_m = next((m for m in op.mounts if m.dest == "/"), None)
    if root_m is None:
        raise MasonError("exec op has no root mount", op.loc)
    root_in = _input(inputs, root_m)
    root_key = f"mason-exec-{uuid.uuid4().hex[:16]}"
    root_mounts = c.prepare(root_key, root_in.snapshot, {OWNER_LABEL: ex.owner})
    s = _Setup()
    committed: dict[int, Result] = {}
    handle = None
    ok = False
    try:
        _, lowers = hm.upper_and_lowers(root_mounts)
        uid, gid, groups = _user(op.meta.user, lowers, op)
        env = list(op.meta.env) or list(DEFAULT_ENV)
        if not any(e.startswith("PATH=") for e in env):
            env = list(DEFAULT_ENV) + env
        for se in op.secret_env:
            v = ctx.secrets.value(se.id)
            if v is None:
                if se.optional:
                    continue
                raise MasonError(f"secret {se.id} not found (pass it with --secret id={se.id},src=…)", op.loc)
            env.append(f"{se.name}={v.decode('utf-8', 'surrogateescape')}")
        for m in sorted(op.mounts, key=lambda m: m.dest):
            if m.dest != "/":
                _setup_mount(ctx, op, m, inputs, s)
        hostname = op.meta.hostname or DEFAULT_HOSTNAME
        s.net = ctx.network.setup(f"{n}", net_mode, hostname, [(h.host, h.ip) for h in op.meta.extra_hosts],
                                  executor=ex)
        proc = s.net.apply(Process(args=tuple(op.meta.args), env=tuple(env), cwd=op.meta.cwd or "/", uid=uid,
                                   gid=gid, additional_gids=tuple(groups), hostname=hostname,
                                   mounts=tuple(s.binds), readonly_rootfs=root_m.readonly,
                                   privileged=op.security == SecurityMode.INSECURE,
                                   rlimits=tuple((rlimit_type(u.name), u.soft, u.hard) for u in op.meta.ulimits),
                                   memory=ctx.opts.memory, cpu_quota=ctx.opts.cpu_quota,
                                   cpu_period=ctx.opts.cpu_period))
        s.stubs = _missing(lowers, [m.target for m in proc.mounts], op.meta.remove_mount_stubs_recursive)
        tail: collections.deque[bytes] = collections.deque(maxlen=TAIL_LINES)

        def emit(stream: str, data: bytes) -> None:
            tail.extend(data.splitlines())
            ctx.events(VertexLog(n, stream, data))

        sink = LineRedactor(ctx.secrets.redactor, emit)
        if ctx.token.is_set():
            raise Cancelled()
        started = time.time()
        handle = ex.execute(proc, root_key, output=sink, parent=root_in.snapshot, rootfs_mounts=root_mounts)
        res = handle.result
        sink.flush()
        if ctx.token.is_set():
            raise Cancelled()
        valid = set(op.meta.valid_exit_codes) or {0}
        if res.exit_code not in valid:
            upper, _ = hm.upper_and_lowers(root_mounts)
            stopped = False
            if res.exit_code == 137:
                from mason.backends.containerd.daemon import stopped_since

                stopped = stopped_since(ctx.solver.root, started)
            raise _exit_error(op, name, res.exit_code, list(tail), memory=ctx.opts.memory, upper=upper,
                              daemon_stopped=stopped)
        _release(ctx, s)
        upper, _ = hm.upper_and_lowers(root_mounts)
        if upper:
            _remove_stubs(upper, s.stubs)  # the task has exited; with mason's mount, also unmounted
        outs = op.num_outputs()
        if root_m.output >= 0:
            s.actives[root_m.output] = (root_key, root_m.input)
        for idx in range(outs):
            if idx not in s.actives:
                raise MasonError(f"exec op output {idx} has no writable mount", op.loc)
            akey, inp = s.actives[idx]
            base = SCRATCH if inp < 0 else inputs[inp]
            committed[idx] = _commit(ctx, akey, result_snapshot_name(key, idx), base,
                                     handle if akey == root_key else None)
        ok = True
        return [committed[i] for i in range(outs)]
    finally:
        if not ok:
            _release(ctx, s)
            if handle is not None:
                handle.wait_released()  # the task may still have the rootfs mounted
        for akey, _ in list(s.actives.values()) + [(root_key, -1)]:
            # after a failure, one of removing it (a full disk: containerd cannot write its
            # metadata) must not hide that failure; the build lease still holds the snapshot
            with contextlib.suppress(NotFound) if ok else contextlib.suppress(NotFound, MasonError):
                c.remove_snapshot(akey)


def _input(inputs: list[Result], m: Mount) -> Result:
    return SCRATCH if m.input < 0 else inputs[m.input]


def _commit(ctx: "SolveContext", active: str, name: str, base: Result, handle: RunHandle | None) -> Result:
    ctx.client.commit(name, active, {OWNER_LABEL: ctx.executor.owner})
    if handle is not None:
        ctx.executor.hold(name, handle)  # settle(name) waits until the task let go of it
    return base.extend(name)


# -- user, network files, stubs -----------------------------------------------------------------

def _user(spec: str, lowers: list[str], op: ExecOp) -> tuple[int, int, list[int]]:
    """uid, gid and supplementary gids for ``spec`` (:func:`users.exec_ids`), the files read
    from the layer directories."""

    def db(path: str, parse):
        return lambda: parse((hm.read_file(lowers, path) or b"").decode("utf-8", "replace"))

    try:
        return users.exec_ids(spec, db("/etc/passwd", users.parse_passwd), db("/etc/group", users.parse_group))
    except MasonError as e:
        raise MasonError(e.message, op.loc) from None


def _missing(lowers: list[str], targets: list[str], recursive: bool) -> list[str]:
    """Mount points (and, if ``recursive``, their parents) that do not exist in the rootfs:
    runc will create them; they are removed again after the step if still empty."""
    out: list[str] = []
    for t in targets:
        parts = [p for p in t.split("/") if p]
        created: list[str] = []
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if created or hm.lookup(lowers, p) is None:
                created.append(p)
        if not recursive:
            created = created[-1:]
        for p in created:
            if p not in out:
                out.append(p)
    return sorted(out, key=lambda p: p.count("/"))


def _remove_stubs(upper: str, stubs: list[str]) -> None:
    """Remove the mount points runc created (deepest first) if they are still empty. The step
    has run: any parent may now be a symlink (to a host path, CVE-2024-23652), so each stub is
    resolved with every parent opened ``O_NOFOLLOW`` below the upper directory and acted on with
    ``*at()`` calls; a stub whose parent is a link is no stub any more and stays."""
    for p in reversed(stubs):
        remove_if_empty(upper, p)


# -- mounts -------------------------------------------------------------------------------------

def _setup_mount(ctx: "SolveContext", op: ExecOp, m: Mount, inputs: list[Result], s: _Setup) -> None:
    c, ex = ctx.client, ctx.executor
    t = m.mount_type
    if t == MountType.BIND:
        src = _input(inputs, m)
        tag = uuid.uuid4().hex[:16]
        if m.readonly or m.output < 0:
            key = f"mason-bind-{tag}"
            if src.snapshot:
                ex.settle(src.snapshot)
            if src.snapshot and m.readonly:
                mounts = c.view(key, src.snapshot, {OWNER_LABEL: ex.owner})
            else:  # writable without an output (``rw`` in a Dockerfile): changes are discarded
                mounts = c.prepare(key, src.snapshot, {OWNER_LABEL: ex.owner})
            s.views.append(key)
            readonly = m.readonly
        else:
            key = f"mason-bind-{tag}"
            if src.snapshot:
                ex.settle(src.snapshot)
            mounts = c.prepare(key, src.snapshot, {OWNER_LABEL: ex.owner})
            s.actives[m.output] = (key, m.input)
            readonly = False
        d = hm_dir(ctx)
        hm.mount_all(mounts, d, readonly=readonly)
        s.host_mounts.append(d)
        s.binds.append(BindMount(_select(d, m.selector, op), m.dest, readonly=readonly))
    elif t == MountType.CACHE:
        cache = m.cache
        cid = cache.id if cache is not None and cache.id else m.dest
        sharing = int(cache.sharing) if cache is not None else int(CacheSharing.SHARED)
        seed = None
        if m.input >= 0 and inputs[m.input].snapshot:
            seed = _seeder(ctx, inputs[m.input].snapshot, m.selector, op)
        path, fd = ctx.cache_mounts.acquire(cid, sharing, seed, ctx.token)
        s.cache_fds.append(fd)
        s.binds.append(BindMount(path, m.dest, readonly=m.readonly))
    elif t == MountType.TMPFS:
        size = m.tmpfs.size if m.tmpfs is not None and m.tmpfs.size > 0 else None
        s.binds.append(TmpfsMount(m.dest, size=size))
    elif t == MountType.SECRET:
        so = m.secret
        sid = so.id if so is not None else ""
        if not ctx.secrets.has(sid):
            if so is not None and so.optional:
                return
            raise MasonError(f"secret {sid} not found (pass it with --secret id={sid},src=…)", op.loc)
        path = ctx.secrets.materialize(sid, so.uid if so else 0, so.gid if so else 0,
                                       (so.mode if so and so.mode else 0o400))
        s.binds.append(BindMount(path, m.dest, readonly=True))
    elif t == MountType.SSH:
        so = m.ssh
        sid = (so.id if so is not None and so.id else "default")
        # a socket of the mount's own owner and mode, relaying to the agent (as BuildKit does)
        sock = ctx.secrets.ssh_proxy(sid, so.uid if so else 0, so.gid if so else 0,
                                     (so.mode if so and so.mode else 0o600))
        if sock is None:
            if so is not None and so.optional:
                return
            raise MasonError(f"no SSH agent socket {sid} (pass one with --ssh {sid}=$SSH_AUTH_SOCK)", op.loc)
        s.binds.append(BindMount(sock, m.dest, readonly=False))
    else:
        raise MasonError(f"unsupported mount type {int(t)} at {m.dest}", op.loc)


def hm_dir(ctx: "SolveContext") -> str:
    d = ctx.tmpdir / f"mnt-{uuid.uuid4().hex[:12]}"
    d.mkdir()
    return str(d)


def _select(root: str, selector: str, op: ExecOp) -> str:
    if not selector or selector in ("/", "."):
        return root
    from mason.backends.solver.fsutil import resolve_in_root

    path = resolve_in_root(root, selector)
    if not os.path.exists(path):
        raise MasonError(f"mount source path {selector!r} does not exist", op.loc)
    return path


def _seeder(ctx: "SolveContext", snapshot: str, selector: str, op: ExecOp):
    def seed(dest: str) -> None:
        from mason.backends.solver.fileop import copy_tree

        ctx.executor.settle(snapshot)
        with hm.mounted_view(ctx.client, snapshot, dir=ctx.tmpdir) as d:
            copy_tree(_select(str(d), selector, op), dest)
    return seed


def _release(ctx: "SolveContext", s: _Setup) -> None:
    for d in s.host_mounts:
        with contextlib.suppress(MasonError):
            hm.unmount(d)
        with contextlib.suppress(OSError):
            os.rmdir(d)
    s.host_mounts.clear()
    for k in s.views:
        with contextlib.suppress(NotFound):
            ctx.client.remove_snapshot(k)
    s.views.clear()
    for fd in s.cache_fds:
        ctx.cache_mounts.release(fd)
    s.cache_fds.clear()
    if s.net is not None:
        net, s.net = s.net, None
        with contextlib.suppress(MasonError):
            net.teardown()


def disk_full(path: str) -> str | None:
    """"no space left on device …" when the filesystem of ``path`` (a step's upper directory)
    has (almost) no room left: under 1% of it free, at most 64 MiB."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    if total <= 0 or free >= min(64 << 20, total // 100):
        return None
    return f"no space left on device: the disk of mason's snapshots ({path}) has {free >> 20} MiB free"


def _size(n: int) -> str:
    for unit, mult in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{unit}"
    return str(n)


class StepError(MasonError):
    """A step that exited non-zero: the op, its location, and the last lines of its output
    (already redacted), printed after the source line."""

    def __init__(self, message: str, loc, output_tail: list[str], exit_code: int):
        super().__init__(message, loc)
        self.output_tail = output_tail
        self.exit_code = exit_code

    def format(self) -> str:
        out = super().format()
        if self.output_tail:
            out += f"\n  last {len(self.output_tail)} lines of output:\n"
            out += "\n".join("    " + t for t in self.output_tail)
        return out


def _exit_error(op: ExecOp, name: str, code: int, tail: list[bytes], memory: int | None = None,
                upper: str | None = None, daemon_stopped: bool = False) -> MasonError:
    what = name or describe_exec(op)
    msg = f"{what}: process \"{describe_exec(op)}\" did not complete successfully: exit code: {code}"
    if daemon_stopped:  # `mason daemon stop` kills the tasks containerd runs before stopping it
        msg += " (killed: `mason daemon stop` stopped containerd while the step ran)"
    elif code == 137 and memory is not None:  # SIGKILL: what the kernel's OOM killer sends in a cgroup
        msg += f" (killed: it may have needed more than --memory {_size(memory)})"
    elif upper and (full := disk_full(upper)):
        msg += f" ({full})"
    return StepError(msg, op.loc, [t.decode("utf-8", "replace") for t in tail], code)


__all__ = ["run_exec", "Network", "StepError", "describe_exec", "DEFAULT_HOSTNAME"]
