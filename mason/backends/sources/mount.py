"""Mount a containerd snapshot on a temporary directory, so mason can read or write it.

``mounted(client, key)`` asks containerd for the snapshot's mounts (``Snapshots.Mounts``: a
bind mount for a parentless or single-parent-view snapshot, an overlay otherwise), mounts them
with mount(2) through ctypes (mason runs as root), yields the directory and always unmounts —
lazily if something still holds it busy — and removes the directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from mason.backends import libc
from mason.backends.containerd.client import Client, Mount
from mason.ir.errors import MasonError

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2

# mount(8) option words that are flags, not filesystem data: name -> (set, clear)
_FLAGS = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "noatime": (MS_NOATIME, 0), "nodiratime": (MS_NODIRATIME, 0), "relatime": (MS_RELATIME, 0),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
    "defaults": (0, 0),
}

def _sys_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    e = libc.mount(source, target, fstype, flags, data)
    if e:
        raise MasonError(f"cannot mount {fstype or 'bind'} {source} on {target}: {os.strerror(e)}"
                         + (" (mounting snapshots needs root)" if e == errno.EPERM else ""))


def mount_all(mounts: Iterable[Mount], target: str | os.PathLike[str], *, readonly: bool = False) -> None:
    """Mount containerd ``mounts`` (in order) on ``target``."""
    target = os.fspath(target)
    for m in mounts:
        flags, data = 0, []
        for opt in m.options:
            if opt in _FLAGS:
                s, c = _FLAGS[opt]
                flags = (flags | s) & ~c
            else:
                data.append(opt)
        if readonly:
            flags |= MS_RDONLY
        if m.type == "bind" or flags & MS_BIND:
            _sys_mount(m.source, target, "", MS_BIND | (flags & MS_REC), "")
            if flags & ~(MS_BIND | MS_REC):  # bind mounts ignore other flags until remounted
                _sys_mount("", target, "", MS_REMOUNT | MS_BIND | (flags & ~MS_REC), "")
        elif len(",".join(data)) >= _PAGE - 1 and m.type == "overlay":
            _mount_long_overlay(m.source, target, flags, data)
        else:
            _sys_mount(m.source, target, m.type, flags, ",".join(data))


_PAGE = os.sysconf("SC_PAGE_SIZE")
_DIR_OPTS = ("lowerdir=", "upperdir=", "workdir=")


def _mount_long_overlay(source: str, target: str, flags: int, data: list[str]) -> None:
    """mount(2) takes at most a page of options; an image with many layers has more. Like
    containerd, shorten the layer paths relative to their common parent directory and mount
    from there — in a child process, since the working directory is process-wide."""
    dirs = [d for o in data if o.startswith(_DIR_OPTS) for d in o.split("=", 1)[1].split(":")]
    common = os.path.commonpath(dirs)
    short = []
    for o in data:
        if o.startswith(_DIR_OPTS):
            key, _, value = o.partition("=")
            o = key + "=" + ":".join(os.path.relpath(d, common) for d in value.split(":"))
        short.append(o)
    opts = ",".join(short)
    if len(opts) >= _PAGE - 1:
        raise MasonError(f"cannot mount an overlay of {len(dirs)} directories on {target}: the options "
                         f"are {len(opts)} bytes even shortened (the kernel takes {_PAGE - 1})")
    import subprocess

    extra = [name for name, (set_, _) in _FLAGS.items() if set_ and flags & set_ == set_
             and name in ("ro", "nosuid", "nodev", "noexec", "noatime")]
    p = subprocess.run(["mount", "-t", "overlay", "-o", ",".join(extra + [opts]), source, os.path.abspath(target)],
                       cwd=common, capture_output=True, text=True)
    if p.returncode != 0:
        raise MasonError(f"cannot mount overlay on {target}: {p.stderr.strip() or p.returncode}")


def unmount(target: str | os.PathLike[str]) -> None:
    """Unmount everything stacked on ``target``; fall back to a lazy unmount when busy."""
    t = os.fspath(target)
    for _ in range(8):
        e = libc.umount2(t)
        if e == 0:
            continue
        if e == errno.EINVAL:  # not (or no longer) a mount point
            return
        if e == errno.EBUSY and libc.umount2(t, MNT_DETACH) == 0:
            continue
        raise MasonError(f"cannot unmount {target}: {os.strerror(e)}")


@contextlib.contextmanager
def mounted(client: Client, key: str, *, readonly: bool = False,
            dir: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Mount snapshot ``key`` (active or view) on a fresh temporary directory for the block."""
    mounts = client.mounts(key)
    target = tempfile.mkdtemp(prefix="mason-mnt-", dir=dir)
    try:
        try:
            mount_all(mounts, target, readonly=readonly)
        except BaseException:
            unmount(target)
            raise
        try:
            yield Path(target)
        finally:
            unmount(target)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(target)


@contextlib.contextmanager
def mounted_view(client: Client, snapshot: str, *, dir: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Mount a read-only view of committed snapshot ``snapshot``; the view is removed after."""
    import uuid

    from mason.backends.containerd.client import NotFound

    key = f"mason-view-{uuid.uuid4().hex[:16]}"
    client.view(key, snapshot)
    try:
        with mounted(client, key, readonly=True, dir=dir) as path:
            yield path
    finally:
        with contextlib.suppress(NotFound):
            client.remove_snapshot(key)
