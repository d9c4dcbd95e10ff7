"""Paths inside a root directory that can never lead outside it.

A container path (``/etc/passwd``, ``../x``) is resolved component by component inside ``root``
as if ``root`` were ``/``: symlinks are followed with absolute targets re-rooted, ``..`` stops
at the root, and more than :data:`MAX_SYMLINKS` links is ``ELOOP`` (a :class:`MasonError`). The
walk holds a directory fd per component and opens each with ``O_NOFOLLOW``, so the final
operation happens ``*at()``-style (``dir_fd=``) on a parent that was resolved safely and cannot
be swapped for a symlink behind our back (like ``openat2(RESOLVE_IN_ROOT)``, which Python does
not expose). A final component is acted on without following it unless asked to.

Besides resolution: ``mkdir -p`` (:meth:`Root.mkdir_all`), tree removal and chmod that never
follow links, and :func:`safe_extract_tar` (Docker's untar in a chroot: ``..`` entries and
hardlinks that leave the root are refused, absolute names are re-rooted, symlinks are kept as
they are and re-rooted when followed).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections import deque

from mason.backends.fstree import remove_at
from mason.ir.errors import MasonError

__all__ = [
    "MAX_SYMLINKS", "Root", "Resolved", "resolve_in_root", "mkdir_all", "remove_all_at",
    "chmod_at", "safe_extract_tar", "READ_DIR_FLAGS", "open_parent_strict", "remove_if_empty",
]

MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS
_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Root:
    """A directory treated as ``/``. Holds an fd on it; close it (or use ``with``)."""

    __slots__ = ("path", "fd")

    def __init__(self, path: str, fd: int | None = None):
        self.path = os.path.abspath(path)
        self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if fd is None else fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Root":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve(self, path: str, *, follow_final: bool = True, cwd: str = "/") -> "Resolved":
        """Resolve a container path. The result holds fds: close it (or use ``with``)."""
        return _walk(self, path, follow_final, cwd)

    def host_path(self, path: str, *, follow_final: bool = True, cwd: str = "/") -> str:
        with self.resolve(path, follow_final=follow_final, cwd=cwd) as r:
            return r.host

    def subroot(self, path: str) -> "Root":
        """The directory at container ``path`` (followed) as a root of its own."""
        with self.resolve(path) as r:
            d, name = r.at()
            return Root(os.path.join(self.path, r.rel), os.open(name, _PATH_DIR, dir_fd=d))

    def mkdir_all(self, path: str, mode: int = 0o755, owner: tuple[int, int] | None = None,
                  mtime_ns: int | None = None) -> list[str]:
        """``mkdir -p`` inside the root; returns the container paths it created."""
        with self.resolve(path) as r:
            return r.make_dirs(mode, owner, mtime_ns)


class Resolved:
    """A resolved container path: ``parts`` below the root (no ``.``/``..``, no separators), and
    open fds of the directories along it that exist (``fds[i]`` is ``parts[:i]``)."""

    __slots__ = ("root", "parts", "fds")

    def __init__(self, root: Root, parts: list[str], fds: list[int]):
        self.root = root
        self.parts = parts
        self.fds = fds

    def close(self) -> None:
        for fd in self.fds[1:]:
            os.close(fd)
        del self.fds[1:]

    def __enter__(self) -> "Resolved":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rel(self) -> str:
        return "/".join(self.parts)

    @property
    def path(self) -> str:
        """The container path (``/a/b``)."""
        return "/" + self.rel

    @property
    def host(self) -> str:
        return os.path.join(self.root.path, self.rel) if self.parts else self.root.path

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else "."

    @property
    def parent_fd(self) -> int | None:
        if not self.parts:
            return self.root.fd
        n = len(self.parts)
        return self.fds[n - 1] if len(self.fds) >= n else None

    def at(self) -> tuple[int, str]:
        """``(dir_fd, name)`` for an ``*at()`` call on the final component; raises
        ``FileNotFoundError`` when a parent directory is missing."""
        d = self.parent_fd
        if d is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT),
                                    "/" + "/".join(self.parts[:-1]))
        return d, self.name

    def lstat(self) -> os.stat_result | None:
        """The final component's ``lstat``, or None if it does not exist."""
        d = self.parent_fd
        if d is None:
            return None
        try:
            return os.stat(self.name, dir_fd=d, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def open_dir(self) -> int:
        """A readable fd on the final component, which must be a directory (not a link)."""
        d, name = self.at()
        return os.open(name, READ_DIR_FLAGS, dir_fd=d)

    def make_dirs(self, mode: int = 0o755, owner: tuple[int, int] | None = None,
                  mtime_ns: int | None = None) -> list[str]:
        """Create every missing directory along the path (modes exact, no umask); existing ones
        are left alone. Returns the container paths created."""
        created = []
        n = len(self.parts)
        i = len(self.fds) - 1  # parts[:i] exist and are open
        while i < n:
            d, name = self.fds[-1], self.parts[i]
            try:
                os.mkdir(name, 0o700, dir_fd=d)
                fd = os.open(name, READ_DIR_FLAGS, dir_fd=d)
                try:
                    os.fchmod(fd, mode & 0o7777)
                    if owner is not None:
                        os.fchown(fd, *owner)
                    if mtime_ns is not None:
                        os.utime(fd, ns=(mtime_ns, mtime_ns))
                finally:
                    os.close(fd)
                created.append("/" + "/".join(self.parts[:i + 1]))
            except FileExistsError:
                st = os.stat(name, dir_fd=d, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                             "/" + "/".join(self.parts[:i + 1])) from None
            self.fds.append(os.open(name, _PATH_DIR, dir_fd=d))
            i += 1
        return created


def _walk(root: Root, path: str, follow_final: bool, cwd: str) -> Resolved:
    if not path.startswith("/"):
        path = cwd.rstrip("/") + "/" + path
    pending = deque(path.split("/"))
    parts: list[str] = []
    fds = [root.fd]
    links = 0
    try:
        while pending:
            c = pending.popleft()
            if c in ("", "."):
                continue
            if c == "..":
                if parts:
                    parts.pop()
                    if len(fds) > len(parts) + 1:
                        os.close(fds.pop())
                continue
            last = not pending
            if len(fds) != len(parts) + 1:  # below something missing: lexical from here
                parts.append(c)
                continue
            try:
                st = os.stat(c, dir_fd=fds[-1], follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                parts.append(c)
                continue
            if stat.S_ISLNK(st.st_mode) and (follow_final or not last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise MasonError(f"{path}: too many levels of symbolic links")
                target = os.readlink(c, dir_fd=fds[-1])
                if target.startswith("/"):
                    for fd in fds[1:]:
                        os.close(fd)
                    del fds[1:]
                    parts.clear()
                pending.extendleft(reversed(target.split("/")))
                continue
            parts.append(c)
            if stat.S_ISDIR(st.st_mode) and not last:
                try:
                    fds.append(os.open(c, _PATH_DIR, dir_fd=fds[-1]))
                except OSError:  # swapped under us: leave it unresolved, later calls fail
                    pass
    except BaseException:
        for fd in fds[1:]:
            os.close(fd)
        raise
    return Resolved(root, parts, fds)


def resolve_in_root(root: str, path: str, follow_final: bool = True, cwd: str = "/") -> str:
    """The host path of container ``path`` resolved inside ``root`` (see the module doc). The
    result is always ``root`` or below it; its final component is a symlink only when
    ``follow_final`` is False."""
    with Root(root) as r:
        return r.host_path(path, follow_final=follow_final, cwd=cwd)


def mkdir_all(root: str, path: str, mode: int = 0o755) -> list[str]:
    """``mkdir -p`` of container ``path`` inside host directory ``root``."""
    with Root(root) as r:
        return r.mkdir_all(path, mode)


def open_parent_strict(root: str | int, path: str) -> tuple[int, str] | None:
    """``(dir fd, name)`` of container ``path``'s final component below ``root`` (a host
    directory or an fd on one), walking every parent with ``O_NOFOLLOW``: no symlink is
    followed at all, not even one that stays inside. None when a parent is missing, is not a
    directory or is a link (the path is then not the one the caller meant: a step swapped a
    parent for a link). The caller closes the fd."""
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts or ".." in parts:
        return None
    try:
        fd = os.open(root, _PATH_DIR) if isinstance(root, str) else os.dup(root)
    except OSError:
        return None
    try:
        for p in parts[:-1]:
            nfd = os.open(p, _PATH_DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError:  # ENOENT, ENOTDIR, ELOOP (a link): not our path
        os.close(fd)
        return None
    return fd, parts[-1]


def remove_if_empty(root: str | int, path: str) -> bool:
    """Remove container ``path`` below ``root`` if it is an empty directory or an empty
    regular file, resolving it with :func:`open_parent_strict` (never through a link, so a
    step that swapped a parent for a symlink to a host directory cannot make us delete
    anything there). True if something was removed."""
    got = open_parent_strict(root, path)
    if got is None:
        return False
    d, name = got
    try:
        st = os.stat(name, dir_fd=d, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(name, dir_fd=d)  # fails unless empty
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(name, dir_fd=d)
        else:
            return False
        return True
    except OSError:
        return False
    finally:
        os.close(d)


def remove_all_at(dir_fd: int, name: str) -> None:
    """``rm -rf name`` relative to ``dir_fd``, never following a symlink, at any depth
    (:func:`mason.backends.fstree.remove_at`)."""
    remove_at(dir_fd, name)


def chmod_at(dir_fd: int, name: str, mode: int) -> None:
    """``chmod`` without following a final symlink (links have no mode of their own: skipped).
    Goes through an ``O_PATH`` fd, since Linux has no ``lchmod``."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if not stat.S_ISLNK(os.fstat(fd).st_mode):
            os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


# -- tar ----------------------------------------------------------------------------------------

def _member_parts(name: str) -> list[str] | None:
    """An archive name as parts below the extraction root; None for the root itself. Absolute
    names are re-rooted (Docker joins them onto the destination); escaping with ``..`` is an
    error (Docker's "breakout")."""
    parts: list[str] = []
    for c in name.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if not parts:
                raise MasonError(f"invalid tar entry {name!r}: path escapes the destination")
            parts.pop()
        else:
            parts.append(c)
    return parts or None


def safe_extract_tar(tf: tarfile.TarFile, root: str | Root, *, same_owner: bool = True) -> list[str]:
    """Extract ``tf`` into ``root`` (a host directory or :class:`Root`) as Docker's untar does
    in a chroot (BuildKit's ``chrootarchive``): parents are resolved inside the root (so
    ``link -> /etc`` then ``link/passwd`` lands in ``root/etc/passwd``, and ``up -> ../../..``
    then ``up/x`` in ``root/x``), an existing entry is replaced unless both are directories, and
    hardlinks must name an entry inside the root. A symlink is stored as the archive has it,
    whatever it points at — also above the root: a link is only dangerous when followed, and
    every later path operation re-roots it. Owners come from the archive (``same_owner``).
    Returns the paths written."""
    r = Root(root) if isinstance(root, str) else root
    written: list[str] = []
    dirs: list[tuple[str, int]] = []
    try:
        for m in tf:
            parts = _member_parts(m.name)
            if parts is None:
                continue
            path = "/" + "/".join(parts)
            res = r.resolve(path, follow_final=False)
            try:
                if res.parent_fd is None:  # Docker creates missing parents 0755
                    res.close()
                    r.mkdir_all("/" + "/".join(parts[:-1]))
                    res = r.resolve(path, follow_final=False)
                _extract_member(tf, m, r, res, same_owner)
                written.append(res.path)
                if m.isdir():
                    dirs.append((res.path, int(m.mtime * 1e9)))
            finally:
                res.close()
        for p, mtime in reversed(dirs):  # after their contents, or writing would bump them
            with r.resolve(p, follow_final=False) as res:
                d, name = res.at()
                os.utime(name, ns=(mtime, mtime), dir_fd=d, follow_symlinks=False)
    finally:
        if r is not root:
            r.close()
    return written


def _extract_member(tf: tarfile.TarFile, m: tarfile.TarInfo, r: Root, res: Resolved,
                    same_owner: bool) -> None:
    d, name = res.at()
    if name == ".":
        return
    st = res.lstat()
    if st is not None and not (m.isdir() and stat.S_ISDIR(st.st_mode)):
        remove_all_at(d, name)
        st = None
    if m.isdir():
        if st is None:
            os.mkdir(name, 0o700, dir_fd=d)
    elif m.isreg():
        src = tf.extractfile(m)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=d)
        with os.fdopen(fd, "wb") as out:
            if src is not None:
                shutil.copyfileobj(src, out, 1 << 20)
    elif m.issym():
        os.symlink(m.linkname, name, dir_fd=d)
    elif m.islnk():
        target = _member_parts(m.linkname)
        if target is None:
            raise MasonError(f"invalid tar entry {m.name!r}: hardlink to the root")
        with r.resolve("/" + "/".join(target), follow_final=False) as t:
            td, tname = t.at()
            os.link(tname, name, src_dir_fd=td, dst_dir_fd=d, follow_symlinks=False)
        return  # a hardlink shares its target's metadata
    elif m.ischr() or m.isblk() or m.isfifo():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
        os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=d)
    else:
        return  # sockets, unknown types: skipped
    if same_owner:
        try:
            os.chown(name, m.uid, m.gid, dir_fd=d, follow_symlinks=False)
        except PermissionError:
            pass
    if not m.issym():
        chmod_at(d, name, m.mode & 0o7777)
    if not m.isdir():
        mt = int(m.mtime * 1e9)
        os.utime(name, ns=(mt, mt), dir_fd=d, follow_symlinks=False)
