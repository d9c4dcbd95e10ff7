"""libc through ctypes — the one loader every backend uses for mount(2) and umount2(2) (mason
runs as root). It is loaded on the first call, not on import: ``ctypes.util.find_library`` runs
``ldconfig -p`` in a child process, a cost no build that mounts nothing should pay (issue 17)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["libc", "mount", "umount2"]

_handle: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library (``use_errno``), ``mount`` and ``umount2`` typed."""
    global _handle
    if _handle is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
        lib.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
        _handle = lib
    return _handle


def mount(source: str, target: str | os.PathLike[str], fstype: str | None, flags: int, data: str | None) -> int:
    """mount(2): 0, or the errno it failed with (an empty ``fstype`` / ``data`` is NULL)."""
    if libc().mount(source.encode(), os.fsencode(target), fstype.encode() if fstype else None, flags,
                    data.encode() if data else None) != 0:
        return ctypes.get_errno()
    return 0


def umount2(target: str | os.PathLike[str], flags: int = 0) -> int:
    """umount2(2): 0, or the errno it failed with."""
    if libc().umount2(os.fsencode(target), flags) != 0:
        return ctypes.get_errno()
    return 0
