"""A step's root filesystem mounted by mason itself rather than by the runc shim.

containerd returns a snapshot's mounts as a list (an ``overlay`` with lower/upper/work dirs, or
a ``bind`` for a snapshot without parent). :func:`mount_rootfs` mounts that list on a directory
with mount(2) through ctypes (mason runs as root); :func:`unmount_rootfs` undoes it. The
directories live under ``<io_dir>/rootfs/<owner>/`` where ``owner`` names the mason process
(pid and start time), so :func:`sweep_stale` can unmount what a killed process left mounted.

Only the common case is handled here: when an overlay's options do not fit in one page (the
kernel's limit for mount data; images with very many layers), :func:`mount_rootfs` returns
False and the caller lets the shim mount the snapshot, as containerd does with its own
shortening tricks.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from mason.backends import libc
from mason.backends.containerd.client import Mount
from mason.ir.errors import MasonError

_MS_RDONLY, _MS_BIND, _MS_REC, _MS_REMOUNT = 0x1, 0x1000, 0x4000, 0x20
_MNT_DETACH = 0x2
_PAGE = os.sysconf("SC_PAGE_SIZE")
_FLAG_WORDS = {"ro": _MS_RDONLY, "rw": 0, "bind": _MS_BIND, "rbind": _MS_BIND | _MS_REC}

class RootfsError(MasonError):
    pass


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str) -> None:
    e = libc.mount(source, target, fstype, flags, data)
    if e:
        raise RootfsError(f"mounting {fstype or 'bind'} {source} on {target}: {os.strerror(e)}")


def mount_fs(fstype: str, target: str) -> None:
    """Mount a kernel filesystem of type ``fstype`` (``binfmt_misc``…) on ``target``."""
    _mount(fstype, target, fstype, 0, "")


def mountable(mounts: Sequence[Mount]) -> bool:
    """Whether :func:`mount_rootfs` handles ``mounts``: one overlay or bind mount whose options
    fit in a page."""
    if len(mounts) != 1 or mounts[0].type not in ("overlay", "bind"):
        return False
    data = [o for o in mounts[0].options if o not in _FLAG_WORDS]
    return len(",".join(data)) < _PAGE - 1


def mount_rootfs(mounts: Sequence[Mount], target: str | os.PathLike[str]) -> bool:
    """Mount a snapshot's mount list on ``target`` (an existing directory). False (and nothing
    mounted) when :func:`mountable` says no."""
    if not mountable(mounts):
        return False
    m, target = mounts[0], os.fspath(target)
    flags = 0
    data = []
    for o in m.options:
        if o in _FLAG_WORDS:
            flags |= _FLAG_WORDS[o]
        else:
            data.append(o)
    if m.type == "bind" or flags & _MS_BIND:
        _mount(m.source, target, None, _MS_BIND | (flags & _MS_REC), "")
        if flags & _MS_RDONLY:
            _mount("", target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, "")
    else:
        _mount(m.source, target, m.type, flags, ",".join(data))
    return True


def unmount_rootfs(target: str | os.PathLike[str]) -> None:
    """Unmount ``target`` (lazily if something still holds it) and remove the directory.
    Fine if it is not mounted."""
    t = os.fspath(target)
    while (e := libc.umount2(t)) == 0:
        pass  # something stacked: take it all off
    if e == errno.EBUSY:
        e = libc.umount2(t, _MNT_DETACH)
        if e:
            raise RootfsError(f"unmounting {t}: {os.strerror(e)}")
    elif e not in (errno.EINVAL, errno.ENOENT):
        raise RootfsError(f"unmounting {t}: {os.strerror(e)}")
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(t)


def sweep_stale(base: str | os.PathLike[str], alive: Callable[[str], bool]) -> int:
    """Unmount and remove the rootfs directories under ``base`` (one subdirectory per owner,
    named ``pid-starttime``) whose owner is no longer ``alive``. Returns how many went."""
    n = 0
    base = Path(base)
    if not base.is_dir():
        return 0
    for owner in base.iterdir():
        if alive(owner.name.replace("-", ":", 1)):
            continue
        for d in owner.iterdir():
            with contextlib.suppress(OSError, MasonError):
                unmount_rootfs(d)
                n += 1
        with contextlib.suppress(OSError):
            owner.rmdir()
    return n
