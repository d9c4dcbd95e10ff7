"""``type=local``: the final root filesystem copied into a directory — what a container would
see, so no whiteouts (the snapshot is mounted as a read-only overlay view, which applies them)
— with modes, mtimes, symlinks, hard links, devices and extended attributes kept. Every entry is
owned by the calling user (its uid and gid), as BuildKit's client writes a local export;
``preserve_owner`` keeps the image's owners instead (``type=local,preserve-owner=true``, which
needs root). Existing entries in the destination are replaced."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat

from mason.backends.containerd.client import Client
from mason.backends.exporters.layer import viewed
from mason.backends.fstree import remove_tree
from mason.ir.errors import MasonError

_CHUNK = 1 << 20


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for n in names:
        if n.startswith("trusted.overlay."):
            continue
        with contextlib.suppress(OSError):
            os.setxattr(dst, n, os.getxattr(src, n, follow_symlinks=False), follow_symlinks=False)


Owner = tuple[int, int] | None  # every entry's (uid, gid); None: each its own from the image


def _meta(dst: str, st: os.stat_result, owner: Owner, *, link: bool = False) -> None:
    try:
        os.lchown(dst, *(owner or (st.st_uid, st.st_gid)))
    except PermissionError:
        pass  # not root: the files stay ours
    if not link:
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _clear(dst: str, want_dir: bool) -> None:
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not want_dir:
            remove_tree(dst)
    else:
        os.unlink(dst)


def copy_tree(src: str, dst: str, owner: Owner = None) -> None:
    """Copy the tree at ``src`` onto ``dst`` (created if missing), keeping metadata; ``owner``
    (uid, gid) owns every entry instead of its own owner."""
    links: dict[tuple[int, int], str] = {}
    os.makedirs(dst, exist_ok=True)
    dirs: list[tuple[str, os.stat_result]] = [(dst, os.lstat(src))]

    todo = [(src, dst)]  # directories still to copy: a stack, not recursion (any depth)
    while todo:
        s_dir, d_dir = todo.pop()
        for name in sorted(os.listdir(s_dir)):
            s, d = os.path.join(s_dir, name), os.path.join(d_dir, name)
            st = os.lstat(s)
            mode = st.st_mode
            _clear(d, stat.S_ISDIR(mode))
            if stat.S_ISDIR(mode):
                if not os.path.isdir(d):
                    os.mkdir(d, 0o700)
                _copy_xattrs(s, d)
                todo.append((s, d))
                dirs.append((d, st))
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and not stat.S_ISDIR(mode) and key in links:
                os.link(links[key], d, follow_symlinks=False)
                continue
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
                _meta(d, st, owner, link=True)
            else:
                if stat.S_ISREG(mode):
                    with open(s, "rb") as fs, open(d, "wb") as fd:
                        shutil.copyfileobj(fs, fd, _CHUNK)
                elif stat.S_ISFIFO(mode):
                    os.mkfifo(d)
                elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    try:
                        os.mknod(d, mode, st.st_rdev)
                    except PermissionError:
                        continue  # devices need root; skip as rootless BuildKit does
                else:
                    continue  # sockets
                _copy_xattrs(s, d)
                _meta(d, st, owner)
            if st.st_nlink > 1:
                links[key] = d

    for d, st in reversed(dirs):  # directory times last, after their contents changed
        _meta(d, st, owner)


def export_local(client: Client, snapshot: str | None, dest: str | os.PathLike[str], *,
                 preserve_owner: bool = False) -> None:
    """Copy the filesystem of committed ``snapshot`` (None: empty) into directory ``dest``,
    owned by the calling user unless ``preserve_owner``."""
    dest = os.fspath(dest)
    owner = None if preserve_owner else (os.getuid(), os.getgid())
    try:
        with viewed(client, snapshot) as root:
            copy_tree(root, dest, owner)
    except OSError as e:
        where = e.filename or dest
        reason = e.strerror or errno.errorcode.get(e.errno or 0)
        raise MasonError(f"cannot write local output {dest}: {where}: {reason}") from None
