"""Layer tars written by mason: the changes from one mounted tree to another, in a fixed
order with fixed metadata, so the same trees always give the same bytes.

containerd 1.6's Diff service has no timestamp option, so reproducible layers
(``SOURCE_DATE_EPOCH``) are written here. Like containerd's walking differ it walks both trees
side by side: an entry is emitted when it is new or its metadata (type, mode, owner, size,
mtime, link target, device) or — for whole-second mtimes, which may have been truncated —
its content differs; a name present below but gone above becomes a whiteout ``.wh.NAME``; the
directories above an emitted entry are emitted too, so extraction recreates them with the
right owner and mode. Entries are sorted by name; owners are numeric with empty user and group
names; mtimes are clamped to the epoch (never raised); files with several links in the tree are
written once and then as hard links. The gzip stream has no file name and mtime 0.

Writing the whole tree against nothing (``lower=None``) is the rootfs tar of ``type=tar``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO

WHITEOUT_PREFIX = ".wh."
_CHUNK = 1 << 20


class HashingWriter:
    """A write-only file that hashes (sha256) and counts what passes through to ``inner``."""

    def __init__(self, inner: BinaryIO | None = None):
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        if self.inner is not None:
            self.inner.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def _same(up: os.stat_result, lo: os.stat_result, up_path: str, lo_path: str) -> bool:
    if (up.st_mode, up.st_uid, up.st_gid) != (lo.st_mode, lo.st_uid, lo.st_gid):
        return False
    if stat.S_ISDIR(up.st_mode):
        return up.st_mtime_ns == lo.st_mtime_ns
    if stat.S_ISLNK(up.st_mode):
        return os.readlink(up_path) == os.readlink(lo_path) and up.st_mtime_ns == lo.st_mtime_ns
    if stat.S_ISCHR(up.st_mode) or stat.S_ISBLK(up.st_mode):
        return up.st_rdev == lo.st_rdev
    if up.st_size != lo.st_size or up.st_mtime_ns != lo.st_mtime_ns:
        return False
    if up.st_mtime_ns % 1_000_000_000 or up.st_ino == lo.st_ino or up.st_size == 0:
        return True
    return _same_content(up_path, lo_path)  # the mtime may have been truncated: look inside


class _DiffWriter:
    def __init__(self, tar: tarfile.TarFile, epoch: int | None, prefix: str = ""):
        self.tar = tar
        self.epoch = epoch
        self.prefix = prefix  # put before every name in the tar (not in the tree)
        self.links: dict[tuple[int, int], str] = {}
        self.pending: list[tuple[str, str, os.stat_result]] = []  # unchanged parent dirs

    def mtime(self, st: os.stat_result) -> int:
        t = int(st.st_mtime)
        return min(t, self.epoch) if self.epoch is not None else t

    def _info(self, name: str, st: os.stat_result) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(self.prefix + name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = self.mtime(st)
        return ti

    def flush_parents(self) -> None:
        pending, self.pending = self.pending, []
        for name, _path, st in pending:
            ti = self._info(name, st)
            ti.type = tarfile.DIRTYPE
            self.tar.addfile(ti)

    def emit(self, name: str, path: str, st: os.stat_result) -> None:
        self.flush_parents()
        ti = self._info(name, st)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
            ti.name = self.prefix + name + "/"
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                ti.type, ti.linkname = tarfile.LNKTYPE, self.links[key]
                self.tar.addfile(ti)
                return
            if st.st_nlink > 1:
                self.links[key] = self.prefix + name
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            with open(path, "rb") as f:
                self.tar.addfile(ti, f)
            return
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        else:
            return  # sockets do not go into layers
        self.tar.addfile(ti)

    def whiteout(self, parent: str, name: str, st: os.stat_result) -> None:
        self.flush_parents()
        ti = tarfile.TarInfo(self.prefix + parent + WHITEOUT_PREFIX + name)
        ti.mode, ti.uname, ti.gname = 0o644, "", ""
        ti.mtime = self.epoch if self.epoch is not None else int(st.st_mtime)
        self.tar.addfile(ti)

    def walk(self, lower: str | None, upper: str, rel: str) -> None:
        """Emit the changes below ``rel``: depth first, each directory a suspended
        :meth:`_entries` on a stack of its own (a tree deeper than Python's recursion limit is
        a tree like any other)."""
        stack: list[tuple[Iterator, int | None]] = [(self._entries(lower, upper, rel), None)]
        while stack:
            entries, mark = stack[-1]
            child = next(entries, None)
            if child is None:
                stack.pop()
                if mark is not None:
                    del self.pending[mark:]  # nothing below changed: the directory stays out
                continue
            stack.append(child)

    def _entries(self, lower: str | None, upper: str, rel: str) -> Iterator[tuple[Iterator, int | None]]:
        """Emit the entries of directory ``rel``; yield each subdirectory's own walk (with the
        mark of its pending entry, if it is one) before going on."""
        up_dir = os.path.join(upper, rel)
        lo_dir = os.path.join(lower, rel) if lower is not None else None
        up_names = set(os.listdir(up_dir))
        lo_names: set[str] = set()
        if lo_dir is not None and os.path.isdir(lo_dir) and not os.path.islink(lo_dir.rstrip("/")):
            lo_names = set(os.listdir(lo_dir))
        for name in sorted(up_names | lo_names, key=os.fsencode):
            entry = rel + name
            up_path = os.path.join(upper, entry)
            if name not in up_names:
                self.whiteout(rel, name, os.lstat(os.path.join(lower, entry)))  # type: ignore[arg-type]
                continue
            st = os.lstat(up_path)
            lo_st = os.lstat(os.path.join(lower, entry)) if name in lo_names else None  # type: ignore[arg-type]
            changed = lo_st is None or not _same(st, lo_st, up_path, os.path.join(lower, entry))  # type: ignore[arg-type]
            if stat.S_ISDIR(st.st_mode):
                below = lower if lo_st is not None and stat.S_ISDIR(lo_st.st_mode) else None
                if changed:
                    self.emit(entry, up_path, st)
                    yield self._entries(below, upper, entry + "/"), None
                else:
                    mark = len(self.pending)
                    self.pending.append((entry + "/", up_path, st))
                    yield self._entries(below, upper, entry + "/"), mark
            elif changed:
                self.emit(entry, up_path, st)


def write_diff(lower: str | None, upper: str, out: BinaryIO, *, epoch: int | None = None) -> None:
    """Write the uncompressed tar of the changes from tree ``lower`` (None: empty) to tree
    ``upper`` into ``out``."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _DiffWriter(tar, epoch).walk(lower, upper, "")


def write_trees(trees: Sequence[tuple[str, str]], out: BinaryIO, *, epoch: int | None = None) -> None:
    """One uncompressed tar of several whole trees, each ``(dirname, root)`` under a directory
    ``dirname/`` of its own (the directory takes the root's owner, mode and mtime)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, root in trees:
            w = _DiffWriter(tar, epoch)
            w.emit(name, root, os.stat(root))
            w.prefix = name + "/"
            w.walk(None, root, "")


def write_gzip_diff(lower: str | None, upper: str, out: BinaryIO, *, epoch: int | None = None,
                    compresslevel: int = 6) -> tuple[str, str, int]:
    """Like :func:`write_diff`, gzip-compressed (no name, mtime 0). Returns ``(diff_id,
    digest, size)``: the digests of the uncompressed tar and of the compressed bytes."""
    blob = HashingWriter(out)
    with gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=compresslevel) as gz:
        raw = HashingWriter(gz)  # type: ignore[arg-type]
        write_diff(lower, upper, raw, epoch=epoch)  # type: ignore[arg-type]
    return raw.digest, blob.digest, blob.size


def file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk
