"""The OCI runtime spec of a build step's container.

Shaped like Docker's and containerd's defaults: new pid, ipc, uts, mount and (unless the host
network is asked for) network namespaces — a fresh network namespace has only ``lo``, which
runc brings up; the usual /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys mounts; Docker's
default capability set; ``noNewPrivileges`` off (as Docker); masked and read-only /proc paths.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from typing import Any, Literal

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
    annotations: tuple[tuple[str, str], ...] = field(default=())


def _nofile_limit() -> int:
    """1048576 (as BuildKit), but never above our own hard limit: runc's init may lack the
    right to raise it (sandboxes, user namespaces) and then fails the whole create."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)


def _ns(*kinds: str) -> list[dict[str, str]]:
    return [{"type": k} for k in kinds]


def default_mounts(network: Network) -> list[dict[str, Any]]:
    sys_mount: dict[str, Any] = {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                                 "options": ["nosuid", "noexec", "nodev", "ro"]}
    if network == "host":
        # sysfs of the host's network namespace: bind it, as Docker does for --net=host.
        sys_mount = {"destination": "/sys", "type": "bind", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
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
    ]


def _extra_mount(m: BindMount | TmpfsMount) -> dict[str, Any]:
    if isinstance(m, BindMount):
        return {"destination": m.target, "type": "bind", "source": m.source,
                "options": ["rbind", "ro" if m.readonly else "rw"]}
    opts = ["nosuid", "nodev", f"mode={m.mode:o}"]
    if m.size is not None:
        opts.append(f"size={m.size}")
    return {"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts}


def build_spec(p: Process, container_id: str, *, shim_group: str | None = None) -> dict[str, Any]:
    """The OCI runtime spec (as a JSON-able dict) for running ``p`` in container
    ``container_id`` with the rootfs at ``<bundle>/rootfs``."""
    namespaces = ["pid", "ipc", "uts", "mount"]
    if p.network != "host":
        namespaces.append("network")
    caps = list(DEFAULT_CAPS)
    nofile = _nofile_limit()
    annotations = dict(p.annotations)
    if shim_group:
        annotations[SHIM_GROUP_ANNOTATION] = shim_group
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": p.uid, "gid": p.gid, **({"additionalGids": list(p.additional_gids)} if p.additional_gids else {})},
            "args": list(p.args),
            "env": list(p.env),
            "cwd": p.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": p.readonly_rootfs},
        "hostname": p.hostname,
        "mounts": default_mounts(p.network) + [_extra_mount(m) for m in p.mounts],
        "annotations": annotations,
        "linux": {
            "namespaces": [dict(n, path=p.netns_path) if n["type"] == "network" and p.netns_path else n
                           for n in _ns(*namespaces)],
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "cgroupsPath": f"/mason/{container_id}",
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
