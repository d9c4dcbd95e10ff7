"""Snapshots on the host: mounting containerd's mount lists at a directory (for FileOps, bind
sources of ExecOps, Diff inputs), and reading an overlay snapshot *without* mounting it, by
looking through its layer directories (``/etc/passwd`` for user names, whether a mount point
exists before a step so its stub can be removed afterwards).

Mounting itself is the sources' :mod:`mason.backends.sources.mount` (``mount(2)`` via ctypes);
this module re-exports it for the solver.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from mason.backends.containerd.client import Mount
from mason.backends.sources.mount import mount_all, mounted, mounted_view, unmount

__all__ = ["mount_all", "unmount", "mounted", "mounted_view", "upper_and_lowers", "lookup",
           "read_file"]


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


# -- cache mounts (``RUN --mount=type=cache``) --------------------------------------------------

class CacheMounts:
    """Persistent cache directories under ``<root>/solver/cache-mounts``, one per cache id
    (a plain directory, bind-mounted into steps). Sharing, as BuildKit's:

    * ``shared`` — every step uses the same directory at the same time;
    * ``locked`` — one step at a time (across processes: ``flock``); others wait;
    * ``private`` — a step that finds every existing instance busy gets a new one.

    A cache's first use may be seeded from a ``source`` directory (``from=`` in a Dockerfile,
    or the frontend's scratch mkdir that carries ``uid``/``gid``/``mode``)."""

    def __init__(self, root: str | os.PathLike[str], restore=None):
        import pathlib

        self.dir = pathlib.Path(root) / "solver" / "cache-mounts"
        self.dir.mkdir(parents=True, exist_ok=True)
        # restore(cache_id, directory) -> bool: fill a cache's first directory from an imported
        # remote cache (``cache-mounts=true``) instead of the seed
        self.restore = restore

    def path_of(self, cache_id: str) -> str:
        """The directory of ``cache_id``'s first (shared / locked) instance."""
        return self._base(cache_id)

    def _base(self, cache_id: str) -> str:
        import hashlib

        return str(self.dir / hashlib.sha256(cache_id.encode()).hexdigest()[:32])

    def acquire(self, cache_id: str, sharing: int, seed=None, cancelled=None) -> tuple[str, int | None]:
        """(directory, lock fd to release with :meth:`release`, or None). ``seed``: a
        callable copying initial content into a new directory."""
        import fcntl
        import time

        base = self._base(cache_id)
        n = 0
        while True:
            path = base if n == 0 else f"{base}-{n}"
            fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if sharing == 0:  # shared: hold a shared lock only while seeding
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._create(path, seed, self._restorer(cache_id, n))
                os.close(fd)
                return path, None
            if sharing == 2:  # locked: wait for our turn
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if cancelled is not None and cancelled():
                            os.close(fd)
                            from mason.backends.solver.scheduler import Cancelled

                            raise Cancelled(f"waiting for cache mount {cache_id}") from None
                        time.sleep(0.05)
                self._create(path, seed, self._restorer(cache_id, n))
                return path, fd
            try:  # private: the first free instance
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                n += 1
                continue
            self._create(path, seed, self._restorer(cache_id, n))
            return path, fd

    def _restorer(self, cache_id: str, n: int):
        if self.restore is None or n != 0:
            return None
        return lambda tmp: self.restore(cache_id, tmp)

    @staticmethod
    def _create(path: str, seed, restore=None) -> None:
        if os.path.isdir(path):
            return
        tmp = f"{path}.new-{os.getpid()}"
        if os.path.isdir(tmp):
            from mason.backends.fstree import remove_tree

            remove_tree(tmp)
        if restore is not None and restore(tmp):
            pass
        elif seed is not None:
            seed(tmp)
        else:
            os.mkdir(tmp, 0o755)
        os.rename(tmp, path)

    @staticmethod
    def release(fd: int | None) -> None:
        if fd is not None:
            os.close(fd)
