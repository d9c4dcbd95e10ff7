"""Snapshots on the host: mounting containerd's mount lists at a directory (for FileOps, bind
sources of ExecOps, Diff inputs), and reading an overlay snapshot *without* mounting it, by
looking through its layer directories (``/etc/passwd`` for user names, whether a mount point
exists before a step so its stub can be removed afterwards).

Mounts go through ``mount(2)`` via ctypes (no ``mount`` process per step). Overlay options
longer than a page are not supported (containerd works around it with a chdir; a chain that
deep is rare).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import stat
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from mason.backends.containerd.client import Mount
from mason.ir.errors import MasonError

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise MasonError(f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(err)}")


def umount(target: str | Path, *, lazy: bool = True) -> None:
    rc = _libc.umount2(str(target).encode(), MNT_DETACH if lazy else 0)
    if rc != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not a mount point; ENOENT
            raise MasonError(f"umount {target}: {os.strerror(err)}")


def mount_all(mounts: Sequence[Mount], target: str | Path, *, readonly: bool = False) -> None:
    """Mount containerd's mount list (one overlay or bind mount) at ``target``."""
    if len(mounts) != 1:
        raise MasonError(f"cannot mount {len(mounts)} mounts at once at {target}")
    m = mounts[0]
    opts = [o for o in m.options if o not in ("ro", "rw", "rbind", "bind")]
    ro = readonly or "ro" in m.options
    if m.type == "bind":
        _mount(m.source, str(target), None, MS_BIND | MS_REC, None)
        if ro:
            _mount("", str(target), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None)
        return
    data = ",".join(opts)
    if len(data) >= 4096:
        raise MasonError(f"overlay options too long to mount ({len(data)} bytes): too many layers")
    _mount(m.source or m.type, str(target), m.type, MS_RDONLY if ro else 0, data)


@contextlib.contextmanager
def mounted(mounts: Sequence[Mount], *, readonly: bool = False, base: str | Path | None = None) -> Iterator[Path]:
    """A temporary directory with ``mounts`` mounted on it, unmounted and removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="mason-mnt-", dir=str(base) if base else None))
    try:
        mount_all(mounts, d, readonly=readonly)
        try:
            yield d
        finally:
            umount(d)
    finally:
        with contextlib.suppress(OSError):
            d.rmdir()


# -- looking into an overlay snapshot without mounting it ---------------------------------------

def upper_and_lowers(mounts: Sequence[Mount]) -> tuple[str | None, list[str]]:
    """The writable directory (None for a view) and the read-only layer directories, top
    first, of a snapshot's mount list."""
    if len(mounts) != 1:
        return None, []
    m = mounts[0]
    if m.type == "bind":
        return (None, [m.source]) if "ro" in m.options else (m.source, [])
    upper, lowers = None, []
    for o in m.options:
        if o.startswith("upperdir="):
            upper = o[len("upperdir="):]
        elif o.startswith("lowerdir="):
            lowers = o[len("lowerdir="):].split(":")
    return upper, lowers


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def lookup(layers: Sequence[str], path: str) -> tuple[str, os.stat_result] | None | bool:
    """Find ``path`` (absolute, inside the snapshot) in overlay ``layers`` (top first).
    Returns (host path, lstat) of the topmost entry, None if it does not exist, or True when
    it cannot be told without mounting (a symlink on the way): callers treat that as
    "exists"."""
    parts = [p for p in path.split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        return True
    for layer in layers:
        cur = layer
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                break  # not in this layer: look lower
            except OSError:
                return True
            if _is_whiteout(st):
                return None
            if i < len(parts) - 1:
                if stat.S_ISLNK(st.st_mode):
                    return True
                if not stat.S_ISDIR(st.st_mode):
                    return None
                if _opaque(cur):
                    # an opaque dir hides lower layers: the rest of the path must be here
                    rest = os.path.join(cur, *parts[i + 1:])
                    try:
                        st2 = os.lstat(rest)
                    except OSError:
                        return None
                    return None if _is_whiteout(st2) else (rest, st2)
        else:
            return cur, st
    return None


def _opaque(path: str) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def read_file(layers: Sequence[str], path: str, limit: int = 1 << 20) -> bytes | None:
    """The content of a regular file in an overlay snapshot, or None."""
    found = lookup(layers, path)
    if not isinstance(found, tuple) or not stat.S_ISREG(found[1].st_mode):
        return None
    with open(found[0], "rb") as f:
        return f.read(limit)


def scratch_dir(base: str | Path) -> Path:
    p = Path(base) / f"mason-{uuid.uuid4().hex[:12]}"
    p.mkdir(parents=True)
    return p
