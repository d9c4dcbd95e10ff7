"""Whole-tree operations whose depth is the tree's, not Python's: removal and walking.

A build step can leave a tree nested far deeper than Python's recursion limit (``mkdir -p`` of
2,000 levels is one short shell loop, a path well under ``PATH_MAX`` at each step). On Python
3.11 ``shutil.rmtree``, ``os.walk`` and ``tarfile.add(recursive=True)`` all recurse, so such a
tree turned into a ``RecursionError`` (an internal error, or a scratch directory left behind).
Everything here keeps its own stack instead:

* :func:`remove_at` / :func:`remove_tree` — ``rm -rf`` that never follows a symlink and holds at
  most two directory fds whatever the depth: it climbs back through ``..`` and checks that the
  directory it reaches is the one it came from (device and inode), so a tree moved while it is
  being removed is an error, never a walk outside it.
* :func:`walk` — ``os.walk`` (top-down, links not followed), iterative.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

__all__ = ["remove_at", "remove_tree", "walk"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Frame:
    __slots__ = ("name", "ident", "pending")

    def __init__(self, name: str, st: os.stat_result):
        self.name = name
        self.ident = (st.st_dev, st.st_ino)
        self.pending: list[str] | None = None  # subdirectories still to remove; None: unread


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def remove_at(dir_fd: int, name: str, *, one_filesystem: bool = False,
              ignore_errors: bool = False) -> None:
    """``rm -rf name`` relative to ``dir_fd``: never follows a symlink, any depth, two fds.

    ``one_filesystem``: a directory on another filesystem (a mount point) below ``name`` is an
    ``OSError`` (``EXDEV``) before anything of it is touched. ``ignore_errors``: entries that
    cannot be removed are left (with their parents) and the rest goes, as ``shutil.rmtree``'s;
    a tree that moves while it is removed still stops the removal (raised even then)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError:
        if ignore_errors:
            return
        raise
    if not stat.S_ISDIR(st.st_mode):
        _do(os.unlink, name, dir_fd, ignore_errors)
        return
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        if ignore_errors:
            return
        raise
    frames = [_Frame(name, os.fstat(fd))]
    dev = frames[0].ident[0]
    try:
        while True:
            top = frames[-1]
            if top.pending is None:
                top.pending = _clear_files(fd, dev if one_filesystem else None, ignore_errors)
            if top.pending:
                sub = top.pending.pop()
                try:
                    nfd = os.open(sub, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno == errno.ENOENT or ignore_errors:
                        continue
                    raise
                os.close(fd)
                fd = nfd
                frames.append(_Frame(sub, os.fstat(fd)))
                continue
            if len(frames) == 1:
                break
            pfd = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = pfd
            done = frames.pop()
            if _ident(fd) != frames[-1].ident:
                raise OSError(errno.ESTALE, f"{name}: the tree moved while it was being removed")
            _do(os.rmdir, done.name, fd, ignore_errors)
    finally:
        os.close(fd)
    _do(os.rmdir, name, dir_fd, ignore_errors)


def _clear_files(fd: int, dev: int | None, ignore_errors: bool) -> list[str]:
    """Unlink everything but the subdirectories in the directory ``fd``; return those."""
    subdirs: list[str] = []
    with os.scandir(fd) as it:
        entries = list(it)
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if dev is not None and st.st_dev != dev:
                raise OSError(errno.EXDEV, f"{e.name} is on another filesystem")
            subdirs.append(e.name)
        else:
            _do(os.unlink, e.name, fd, ignore_errors)
    subdirs.reverse()  # popped from the end: removed in directory order
    return subdirs


def _do(op, name: str, dir_fd: int, ignore_errors: bool) -> None:
    try:
        op(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError:
        if not ignore_errors:
            raise


def remove_tree(path: str | os.PathLike[str], *, one_filesystem: bool = False,
                ignore_errors: bool = False) -> None:
    """``rm -rf path`` (see :func:`remove_at`); the path's parent directories are followed as
    given, its last component is not (a symlink there is removed, not what it points to)."""
    path = os.fspath(path).rstrip("/") or "/"
    parent, name = os.path.split(path)
    try:
        pfd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError:
        if ignore_errors:
            return
        raise
    try:
        remove_at(pfd, name, one_filesystem=one_filesystem, ignore_errors=ignore_errors)
    finally:
        os.close(pfd)


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top)`` (top-down, symlinks to directories listed as files and not followed,
    unreadable directories skipped) with a stack of its own. Prune by editing ``dirnames``."""
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            continue
        dirs: list[str] = []
        files: list[str] = []
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(e.name)
        yield d, dirs, files
        stack.extend(os.path.join(d, n) for n in reversed(dirs))
