"""Mount containerd's snapshot mounts (``bind`` / ``overlay``) on a temporary directory for
reading, and always unmount again. Exporters read snapshots this way (a view's mounts are
read-only), the way containerd's own ``mount.WithTempMount`` does."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence

from mason.backends import libc
from mason.backends.containerd.client import Mount
from mason.ir.errors import MasonError

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
          "bind": MS_BIND, "rbind": MS_BIND | MS_REC}
_IGNORED = {"rw", "suid", "dev", "exec", "defaults"}

def _sys_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    err = libc.mount(source, target, fstype, flags, data)
    if err:
        raise MasonError(f"cannot mount {fstype or 'bind'} {source} on {target}: {os.strerror(err)}")


def mount_one(m: Mount, target: str, *, readonly: bool = True) -> None:
    flags, data = 0, []
    for opt in m.options:
        if opt in _FLAGS:
            flags |= _FLAGS[opt]
        elif opt not in _IGNORED:
            data.append(opt)
    if readonly:
        flags |= MS_RDONLY
    if m.type == "bind" or flags & MS_BIND:
        _sys_mount(m.source, target, "", flags & (MS_BIND | MS_REC), "")
        # a bind mount ignores MS_RDONLY until it is remounted
        _sys_mount("", target, "", MS_REMOUNT | MS_BIND | (flags & ~(MS_BIND | MS_REC)), "")
    else:
        _sys_mount(m.source, target, m.type, flags, ",".join(data))


def unmount(target: str) -> None:
    if libc.umount2(target) != 0:
        err = libc.umount2(target, MNT_DETACH)
        if err:
            raise MasonError(f"cannot unmount {target}: {os.strerror(err)}")


@contextlib.contextmanager
def mounted(mounts: Sequence[Mount], *, readonly: bool = True) -> Iterator[str]:
    """A temporary directory with ``mounts`` stacked on it (none: an empty directory)."""
    target = tempfile.mkdtemp(prefix="mason-mnt-")
    done = 0
    try:
        for m in mounts:
            mount_one(m, target, readonly=readonly)
            done += 1
        yield target
    finally:
        for _ in range(done):
            unmount(target)
        with contextlib.suppress(OSError):
            os.rmdir(target)
