"""Each build's scratch directory, ``<root>/solver/tmp/build-<pid>-<starttime>-<id>``: downloads,
git clones, the snapshot views and active mounts that merges and file copies use. The build
removes it when it ends; a build that was killed (SIGKILL, a second signal, power loss) cannot, so
the next build — and ``mason prune`` — sweeps the directories whose owner process is gone:
first unmounting what is still mounted below (a view of a committed snapshot must be unmounted,
never emptied), then removing the rest without crossing into another filesystem. Directories
from before owners were in the name (``build-<id>``) go once a day old."""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from mason.backends.fstree import remove_tree
from mason.ir.errors import MasonError

__all__ = ["new_build_dir", "sweep_build_dirs"]

_NAME = re.compile(r"build-(\d+)-(\d+)-[0-9a-f]+")
_OLD = re.compile(r"build-[0-9a-f]{12}")
_OLD_AGE = 24 * 3600.0


def new_build_dir(base: Path, owner: str) -> Path:
    """A fresh scratch directory for the build of ``owner`` (``pid:starttime``)."""
    d = base / f"build-{owner.replace(':', '-')}-{uuid.uuid4().hex[:12]}"
    d.mkdir(parents=True)
    return d


def _mounts_below(d: Path) -> list[str]:
    prefix = os.path.realpath(d) + "/"
    try:
        with open("/proc/self/mountinfo") as f:
            points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f]
    except OSError:
        return []
    return sorted((p for p in points if p.startswith(prefix)), key=lambda p: p.count("/"), reverse=True)


def _remove_same_fs(d: Path) -> None:
    """``rm -r d`` that never descends into another filesystem (a mount it could not take off:
    an ``OSError`` before anything of that mount is touched); any depth."""
    remove_tree(d, one_filesystem=True)


def sweep_build_dirs(base: Path, alive: Callable[[str], bool], *, now: float | None = None) -> int:
    """Remove the scratch directories under ``base`` of builds whose owner is not ``alive``;
    returns how many went. Best effort: a directory that cannot be cleared is left for later."""
    from mason.backends.containerd.rootfs import unmount_rootfs

    if not base.is_dir():
        return 0
    now = time.time() if now is None else now
    n = 0
    for d in base.iterdir():
        m = _NAME.fullmatch(d.name)
        try:
            if m is not None:
                if alive(f"{m.group(1)}:{m.group(2)}"):
                    continue
            elif not (_OLD.fullmatch(d.name) and now - d.lstat().st_mtime > _OLD_AGE):
                continue
            if not d.is_dir() or d.is_symlink():
                continue
            for p in _mounts_below(d):
                with contextlib.suppress(OSError, MasonError):
                    unmount_rootfs(p)
            if _mounts_below(d):
                continue
            _remove_same_fs(d)
            n += 1
        except OSError:
            continue
    return n
