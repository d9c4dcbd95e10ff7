"""The OCI runtime spec of a build step's container.

Shaped like Docker's and containerd's defaults: new pid, ipc, uts, mount and (unless the host
network is asked for) network namespaces — a fresh network namespace has only ``lo``, which
runc brings up; the usual /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, /sys/fs/cgroup mounts; Docker's
default capability set and seccomp filter (:mod:`.seccomp`); ``noNewPrivileges`` off (as
Docker); masked and read-only /proc paths.

A *privileged* process (``security=insecure`` in LLB, ``--allow security.insecure``) gets what
``docker run --privileged`` and BuildKit's insecure mode give: every capability (that mason
itself has), no masked or read-only paths, a writable /sys, every device of the host's /dev, and a
device cgroup that allows all, no seccomp filter. Its namespaces stay its own.
"""

from __future__ import annotations

import os
import resource
import stat
from dataclasses import dataclass, field
from typing import Any, Literal

from mason.backends.containerd.seccomp import linux_seccomp

DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)

# Docker's default set (moby oci/caps/defaults.go).
DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
# Every capability by number (linux/capability.h); the kernel's cap_last_cap says how many exist.
ALL_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# The runc v2 shim reads this *annotation* (not a container label): every container with the
# same value shares one shim process.
SHIM_GROUP_ANNOTATION = "io.containerd.runc.v2.group"

Network = Literal["none", "host"]


@dataclass(frozen=True, slots=True)
class BindMount:
    """A host path bound into the container (another result's mounted snapshot, a cache dir,
    a secret file, ...)."""

    source: str
    target: str
    readonly: bool = True
    options: tuple[str, ...] = ()  # more mount options (nosuid, nodev, noexec)


@dataclass(frozen=True, slots=True)
class TmpfsMount:
    target: str
    size: int | None = None  # bytes
    mode: int = 0o1777


@dataclass(frozen=True, slots=True)
class Process:
    """What to run and how: the process part of a step, independent of its rootfs."""

    args: tuple[str, ...]
    env: tuple[str, ...] = DEFAULT_ENV
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    hostname: str = "mason"
    network: Network = "none"
    # With network "none": join this existing network namespace (a bind-mounted nsfs file, e.g.
    # one the CNI bridge set up) instead of creating a fresh one with only ``lo``.
    netns_path: str | None = None
    mounts: tuple[BindMount | TmpfsMount, ...] = ()
    readonly_rootfs: bool = False
    privileged: bool = False  # security=insecure: see the module docstring
    annotations: tuple[tuple[str, str], ...] = field(default=())
    # (RLIMIT_… type, soft, hard; -1 unlimited): replace the default of that type (NOFILE's)
    rlimits: tuple[tuple[str, int, int], ...] = ()
    memory: int | None = None  # bytes: the step's cgroup memory limit (--memory)
    cpu_quota: int | None = None  # µs per cpu_period (--cpu-quota)
    cpu_period: int | None = None  # µs (--cpu-period; the kernel's default, 100000, if None)


def _nofile_limit() -> int:
    """1048576 (as BuildKit), but never above our own hard limit: runc's init may lack the
    right to raise it (sandboxes, user namespaces) and then fails the whole create."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)


_RLIM_INFINITY = 2**64 - 1  # the spec's rlimits are uint64: -1 is RLIM_INFINITY


def _rlimits(p: Process) -> list[dict[str, Any]]:
    nofile = _nofile_limit()
    out = {"RLIMIT_NOFILE": (nofile, nofile)}
    for kind, soft, hard in p.rlimits:
        out[kind] = (soft, hard)
    return [{"type": k, "hard": _RLIM_INFINITY if h == -1 else h, "soft": _RLIM_INFINITY if s == -1 else s}
            for k, (s, h) in out.items()]


def _resources(p: Process) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": p.privileged, "access": "rwm"}]}
    if p.memory is not None:
        res["memory"] = {"limit": p.memory}
    if p.cpu_quota is not None or p.cpu_period is not None:
        res["cpu"] = {k: v for k, v in (("quota", p.cpu_quota), ("period", p.cpu_period)) if v is not None}
    return res


def _ns(*kinds: str) -> list[dict[str, str]]:
    return [{"type": k} for k in kinds]


def all_caps() -> list[str]:
    """Every capability this kernel knows and mason's own bounding set holds (what a privileged
    container gets; as Docker, never more than we have: runc cannot grant the rest and would
    fail the whole create, e.g. inside a sandbox that dropped CAP_SYS_RESOURCE)."""
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = len(ALL_CAPS) - 1
    bounding = _own_bounding_set()
    return [c for i, c in enumerate(ALL_CAPS[:last + 1]) if bounding >> i & 1]


def _own_bounding_set() -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return (1 << len(ALL_CAPS)) - 1


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """The host's device nodes as OCI ``linux.devices`` entries, as Docker's ``--privileged``
    lists them: everything under /dev except the per-container trees (pts, shm, mqueue, ...)
    and the console."""
    skip_dirs = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
    out: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not (dirpath == root and d in skip_dirs))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if path == os.path.join(root, "console"):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            out.append({"path": path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return out


def default_mounts(network: Network, privileged: bool = False) -> list[dict[str, Any]]:
    ro = [] if privileged else ["ro"]
    sys_mount: dict[str, Any] = {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                                 "options": ["nosuid", "noexec", "nodev", *ro]}
    if network == "host":
        # sysfs of the host's network namespace: bind it, as Docker does for --net=host.
        sys_mount = {"destination": "/sys", "type": "bind", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", *ro]}
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        sys_mount,
        # the step's own cgroup, read-only (writable when privileged), as containerd's default
        # spec and BuildKit's steps have it
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *(ro or ["rw"])]},
    ]


def _extra_mount(m: BindMount | TmpfsMount) -> dict[str, Any]:
    if isinstance(m, BindMount):
        return {"destination": m.target, "type": "bind", "source": m.source,
                "options": ["rbind", "ro" if m.readonly else "rw", *m.options]}
    opts = ["nosuid", "nodev", f"mode={m.mode:o}"]
    if m.size is not None:
        opts.append(f"size={m.size}")
    return {"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts}


def build_spec(p: Process, container_id: str, *, shim_group: str | None = None,
               rootfs: str = "rootfs") -> dict[str, Any]:
    """The OCI runtime spec (as a JSON-able dict) for running ``p`` in container
    ``container_id`` with the rootfs at ``rootfs`` (relative to the bundle, or absolute)."""
    namespaces = ["pid", "ipc", "uts", "mount"]
    if p.network != "host":
        namespaces.append("network")
    caps = all_caps() if p.privileged else list(DEFAULT_CAPS)
    annotations = dict(p.annotations)
    if shim_group:
        annotations[SHIM_GROUP_ANNOTATION] = shim_group
    linux: dict[str, Any] = {
        "namespaces": [dict(n, path=p.netns_path) if n["type"] == "network" and p.netns_path else n
                       for n in _ns(*namespaces)],
        "resources": _resources(p),
        "cgroupsPath": f"/mason/{container_id}",
        "maskedPaths": [] if p.privileged else list(MASKED_PATHS),
        "readonlyPaths": [] if p.privileged else list(READONLY_PATHS),
    }
    if p.privileged:
        linux["devices"] = host_devices()
    else:
        linux["seccomp"] = linux_seccomp(caps)
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": p.uid, "gid": p.gid,
                     **({"additionalGids": list(p.additional_gids)} if p.additional_gids else {})},
            "args": list(p.args),
            "env": list(p.env),
            "cwd": p.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": _rlimits(p),
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": p.readonly_rootfs},
        "hostname": p.hostname,
        "mounts": default_mounts(p.network, p.privileged) + [_extra_mount(m) for m in p.mounts],
        "annotations": annotations,
        "linux": linux,
    }
