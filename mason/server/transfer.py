"""fsutil's directory transfer, as BuildKit's ``FileSync/DiffCopy`` (client → daemon: the build
context) and ``FileSend/DiffCopy`` (daemon → client: ``type=local`` outputs) run it.

The messages are fsutil's ``Packet``\\ s. The **sender** walks its directory and sends one
``STAT`` per entry (paths ``/``-separated and relative, parents before children, names in byte
order; ``mode`` is Go's ``os.FileMode``), then an empty ``STAT``. The **receiver** compares the
listing with what its directory already holds and sends a ``REQ`` with the entry's index for
each regular file whose size, mtime, mode or type differ; the sender answers each with ``DATA``
chunks and an empty ``DATA``. When everything is written the receiver sends ``FIN``, the
sender answers ``FIN``. So a second transfer of an unchanged directory moves only the listing
(:attr:`Stats.requested` counts the files that crossed, :attr:`Stats.data_bytes` their bytes).

:func:`send_dir` and :func:`receive_dir` work on a :class:`Conn`: ``send(packet)`` and
``recv()`` (None at the end of the stream), whatever carries it (a gRPC call either way round).
The receiver never writes outside its directory: the listing must be in order with every
entry's parent a directory listed before it, names hold no ``..``, and each directory is made a
real directory (a symlink in its place is replaced) before anything is written into it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from mason.ir.errors import MasonError

# fsutil.types.Packet.PacketType
STAT, REQ, DATA, FIN, ERR = 0, 1, 2, 3, 4
CHUNK = 1 << 20  # gRPC's default limit is 4 MiB a message

# Go's os.FileMode bits
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHARDEV = 1 << 21
GO_STICKY = 1 << 20
GO_IRREGULAR = 1 << 19
GO_TYPE = GO_DIR | GO_SYMLINK | GO_PIPE | GO_SOCKET | GO_DEVICE | GO_CHARDEV | GO_IRREGULAR


def go_mode(st_mode: int) -> int:
    """A unix ``st_mode`` as Go's ``os.FileMode``."""
    m = st_mode & 0o777
    fmt = stat.S_IFMT(st_mode)
    m |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFIFO: GO_PIPE, stat.S_IFSOCK: GO_SOCKET,
          stat.S_IFBLK: GO_DEVICE, stat.S_IFCHR: GO_DEVICE | GO_CHARDEV}.get(fmt, 0)
    if st_mode & stat.S_ISUID:
        m |= GO_SETUID
    if st_mode & stat.S_ISGID:
        m |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        m |= GO_STICKY
    return m


def unix_mode(gm: int) -> int:
    """Go's ``os.FileMode`` as a unix ``st_mode``."""
    m = gm & 0o777
    if gm & GO_DIR:
        m |= stat.S_IFDIR
    elif gm & GO_SYMLINK:
        m |= stat.S_IFLNK
    elif gm & GO_PIPE:
        m |= stat.S_IFIFO
    elif gm & GO_SOCKET:
        m |= stat.S_IFSOCK
    elif gm & GO_DEVICE:
        m |= stat.S_IFCHR if gm & GO_CHARDEV else stat.S_IFBLK
    else:
        m |= stat.S_IFREG
    if gm & GO_SETUID:
        m |= stat.S_ISUID
    if gm & GO_SETGID:
        m |= stat.S_ISGID
    if gm & GO_STICKY:
        m |= stat.S_ISVTX
    return m


def can_request(gm: int) -> bool:
    """fsutil's rule: only entries with no type bits (regular files) carry data."""
    return gm & GO_TYPE == 0


class Conn(Protocol):
    def send(self, packet: Any) -> None: ...
    def recv(self) -> Any | None: ...


class QueueConn:
    """A :class:`Conn` over an iterator of incoming packets and a queue of outgoing ones
    (:meth:`outgoing` is what a gRPC call or handler sends; :meth:`close` ends it)."""

    _END = object()

    def __init__(self, incoming: Iterator[Any] | None = None):
        self._out: queue.Queue[Any] = queue.Queue()
        self.incoming = incoming

    def send(self, packet: Any) -> None:
        self._out.put(packet)

    def recv(self) -> Any | None:
        assert self.incoming is not None
        return next(self.incoming, None)

    def close(self) -> None:
        self._out.put(self._END)

    def outgoing(self) -> Iterator[Any]:
        while True:
            p = self._out.get()
            if p is self._END:
                return
            yield p


@dataclass
class Stats:
    entries: int = 0
    requested: int = 0  # files whose content crossed
    data_bytes: int = 0
    seconds: float = 0.0  # the whole transfer, as the receiver saw it


# -- sending ------------------------------------------------------------------------------------

def send_dir(conn: Conn, pb: Any, root: str, entries: Iterable[tuple[str, os.stat_result]], *,
             uid_gid: tuple[int, int] | None = None) -> Stats:
    """Send ``entries`` ((relative path, lstat), in walk order) of directory ``root``; serve the
    receiver's requests until its ``FIN``. ``uid_gid`` replaces every owner."""
    stats = Stats()
    files: dict[int, str] = {}
    links: dict[tuple[int, int], str] = {}
    for i, (rel, st) in enumerate(entries):
        gm = go_mode(st.st_mode)
        s = pb.stat.Stat(path=rel, mode=gm, uid=st.st_uid, gid=st.st_gid, modTime=st.st_mtime_ns)
        if uid_gid is not None:
            s.uid, s.gid = uid_gid
        fmt = stat.S_IFMT(st.st_mode)
        if fmt != stat.S_IFDIR:
            s.size = st.st_size
        if fmt == stat.S_IFLNK:
            s.linkname = os.readlink(os.path.join(root, rel))
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            s.devmajor, s.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFREG and st.st_nlink > 1:
            first = links.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                s.linkname, s.size = first, 0
        if can_request(gm):
            files[i] = rel
        conn.send(pb.fsutil.Packet(type=STAT, stat=s))
        stats.entries += 1
    conn.send(pb.fsutil.Packet(type=STAT))
    while True:
        p = conn.recv()
        if p is None:
            raise MasonError("the receiver closed the transfer early")
        if p.type == REQ:
            rel = files.pop(p.ID, "")
            if not rel:
                raise MasonError(f"the receiver asked for an unknown file (id {p.ID})")
            stats.requested += 1
            stats.data_bytes += _send_file(conn, pb, p.ID, os.path.join(root, rel))
        elif p.type == FIN:
            conn.send(pb.fsutil.Packet(type=FIN))
            return stats
        elif p.type == ERR:
            raise MasonError(f"the receiver failed: {p.data.decode('utf-8', 'replace')}")


def _send_file(conn: Conn, pb: Any, fid: int, path: str) -> int:
    n = 0
    with contextlib.suppress(FileNotFoundError):  # gone since the walk: sent empty, as fsutil does
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                conn.send(pb.fsutil.Packet(type=DATA, ID=fid, data=chunk))
                n += len(chunk)
    conn.send(pb.fsutil.Packet(type=DATA, ID=fid))
    return n


# -- receiving ----------------------------------------------------------------------------------

def _parts(path: str) -> tuple[bytes, ...]:
    if not path or path.startswith("/") or "\0" in path:
        raise MasonError(f"invalid path {path!r} in the transfer")
    parts = tuple(os.fsencode(c) for c in path.split("/"))
    if any(c in (b"", b".", b"..") for c in parts):
        raise MasonError(f"invalid path {path!r} in the transfer")
    return parts


def _same(st: os.stat_result, s: Any, mode: int) -> bool:
    return (stat.S_IFMT(st.st_mode) == stat.S_IFMT(mode) and stat.S_IMODE(st.st_mode) == stat.S_IMODE(mode)
            and st.st_size == s.size and st.st_mtime_ns == s.modTime)


def receive_dir(conn: Conn, pb: Any, dest: str, *, merge: bool = False, chown: bool = False,
                on_error: Callable[[str], None] | None = None) -> Stats:
    """Make ``dest`` hold what the sender lists (``merge``: keep entries it does not list),
    asking only for the files that differ. ``chown`` applies the listed owners."""
    stats = Stats()
    listing: list[tuple[int, Any]] = []
    while True:
        p = conn.recv()
        if p is None:
            raise MasonError("the sender closed the transfer before its listing ended")
        if p.type == ERR:
            raise MasonError(f"the sender failed: {p.data.decode('utf-8', 'replace')}")
        if p.type != STAT:
            raise MasonError(f"unexpected packet type {p.type} in the listing")
        if not p.HasField("stat"):
            break
        listing.append((len(listing), p.stat))
    os.makedirs(dest, exist_ok=True)
    stats.entries = len(listing)
    wanted, dirs, links = _apply_listing(listing, dest, merge, chown)
    pending: dict[int, tuple[Any, str, Any]] = {}
    for i, s in wanted:
        tmp = os.path.join(dest, os.path.dirname(s.path), f".mason-recv-{i}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        pending[i] = (s, tmp, open(tmp, "xb"))
        conn.send(pb.fsutil.Packet(type=REQ, ID=i))
    stats.requested = len(wanted)
    try:
        while pending:
            p = conn.recv()
            if p is None:
                raise MasonError("the sender closed the transfer before sending every file")
            if p.type == ERR:
                raise MasonError(f"the sender failed: {p.data.decode('utf-8', 'replace')}")
            if p.type != DATA or p.ID not in pending:
                raise MasonError(f"unexpected packet (type {p.type}, id {p.ID}) while receiving files")
            s, tmp, f = pending[p.ID]
            if p.data:
                f.write(p.data)
                stats.data_bytes += len(p.data)
                continue
            f.close()
            del pending[p.ID]
            _finish_file(tmp, os.path.join(dest, s.path), s, chown)
    finally:
        for _, tmp, f in pending.values():
            f.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    for path, target in links:  # after the files they share (a re-sent file is a new inode)
        _clear(path, want_dir=False)
        os.link(target, path, follow_symlinks=False)
    for path, s in reversed(dirs):  # children first: writing into a directory bumps its mtime
        os.chmod(path, stat.S_IMODE(unix_mode(s.mode)))
        os.utime(path, ns=(s.modTime, s.modTime))
    conn.send(pb.fsutil.Packet(type=FIN))
    while True:  # the sender's FIN, then the end of the stream
        p = conn.recv()
        if p is None or p.type == FIN:
            return stats


def _finish_file(tmp: str, path: str, s: Any, chown: bool) -> None:
    if chown:
        with contextlib.suppress(PermissionError):
            os.chown(tmp, s.uid, s.gid)
    os.chmod(tmp, stat.S_IMODE(unix_mode(s.mode)))
    os.utime(tmp, ns=(s.modTime, s.modTime))
    _clear(path, want_dir=False)
    os.rename(tmp, path)


def _clear(path: str, want_dir: bool) -> os.stat_result | None:
    """Remove what is at ``path`` unless it is already a directory and a directory is wanted;
    return the lstat of what stays."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        if want_dir:
            return st
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return None


def _apply_listing(listing: list[tuple[int, Any]], dest: str, merge: bool, chown: bool
                   ) -> tuple[list[tuple[int, Any]], list[tuple[str, Any]], list[tuple[str, str]]]:
    """Check the listing, make its directories, symlinks and special files, delete what it does
    not list (unless ``merge``); return the regular files to ask for, the directories and the
    hard links to make (path, target) once the files are there."""
    wanted: list[tuple[int, Any]] = []
    dirs: list[tuple[str, Any]] = []
    links: list[tuple[str, str]] = []
    kinds: dict[tuple[bytes, ...], int] = {}
    prev: tuple[bytes, ...] = ()
    for i, s in listing:
        parts = _parts(s.path)
        if parts <= prev:
            raise MasonError(f"the transfer lists {s.path!r} out of order")
        prev = parts
        if len(parts) > 1 and not stat.S_ISDIR(kinds.get(parts[:-1], 0)):
            raise MasonError(f"the transfer lists {s.path!r} before (or without) its directory")
        mode = unix_mode(s.mode)
        kinds[parts] = mode
        path = os.path.join(dest, s.path)
        fmt = stat.S_IFMT(mode)
        if fmt == stat.S_IFDIR:
            if _clear(path, want_dir=True) is None:
                os.mkdir(path, 0o700)
            dirs.append((path, s))
        elif fmt == stat.S_IFREG and s.linkname:
            target = _parts(s.linkname)
            if not stat.S_ISREG(kinds.get(target, 0)):
                raise MasonError(f"the transfer links {s.path!r} to {s.linkname!r}, which it has not listed as a file")
            links.append((path, os.path.join(dest, s.linkname)))
        elif fmt == stat.S_IFREG:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            if st is None or not _same(st, s, mode) or st.st_nlink > 1:
                wanted.append((i, s))
            elif chown and (st.st_uid, st.st_gid) != (s.uid, s.gid):
                with contextlib.suppress(PermissionError):
                    os.chown(path, s.uid, s.gid)
        else:
            _special(path, s, mode, chown)
    if not merge:
        _delete_unlisted(dest, kinds)
    return wanted, dirs, links


def _special(path: str, s: Any, mode: int, chown: bool) -> None:
    fmt = stat.S_IFMT(mode)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if fmt == stat.S_IFLNK:
        if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == s.linkname \
                and st.st_mtime_ns == s.modTime:
            return
        _clear(path, want_dir=False)
        os.symlink(s.linkname, path)
    elif fmt in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK):
        _clear(path, want_dir=False)
        if fmt == stat.S_IFIFO:
            os.mkfifo(path, 0o600)
        else:
            os.mknod(path, fmt | 0o600, os.makedev(s.devmajor, s.devminor))
        os.chmod(path, stat.S_IMODE(mode))
    else:
        return  # sockets: nothing to make
    if chown:
        with contextlib.suppress(PermissionError):
            os.lchown(path, s.uid, s.gid)
    os.utime(path, ns=(s.modTime, s.modTime), follow_symlinks=False)


def _delete_unlisted(dest: str, kinds: dict[tuple[bytes, ...], int]) -> None:
    stack: list[tuple[bytes, ...]] = [()]
    while stack:
        d = stack.pop()
        full = os.path.join(os.fsencode(dest), *d) if d else os.fsencode(dest)
        with os.scandir(full) as it:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for name, is_dir in names:
            parts = d + (name,)
            if parts not in kinds:
                p = os.path.join(full, name)
                if is_dir:
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
            elif is_dir and stat.S_ISDIR(kinds[parts]):
                stack.append(parts)


__all__ = ["Conn", "QueueConn", "Stats", "send_dir", "receive_dir", "go_mode", "unix_mode"]
