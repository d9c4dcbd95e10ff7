"""A FileOp's Copy action (fsutil's copier: ``cp -a`` with chown, chmod, times, include/exclude
patterns, hardlinks kept), :func:`copy_tree` between host directories, and ADD's archive
auto-unpack. Every path resolves inside its root (:mod:`.fsutil`)."""

from __future__ import annotations

import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Generator

from mason.backends.solver.fileop_match import wildcards
from mason.backends.solver.fileop_modes import parse_mode_str
from mason.backends.solver.fsutil import READ_DIR_FLAGS, Root, chmod_at, remove_all_at, safe_extract_tar
from mason.ir.errors import MasonError
from mason.ir.ops import Copy
from mason.ir.patterns import PatternMatcher, clean_path

WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def ts_of(ts: int) -> int | None:
    return None if ts == -1 else ts


def copy_tree(src: str, dst: str) -> None:
    """``cp -a src/. dst`` between host directories (owners, modes, times, links, special
    files and hardlinks inside the tree kept; nothing linked to ``src``). Like ``cp -a``, a
    missing ``dst`` is created, and ``dst`` takes ``src``'s owner and mode (a cache mount
    seeded from a ``uid``/``gid``/``mode`` directory is that directory)."""
    if not os.path.isdir(dst):
        os.mkdir(dst, 0o700)
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    with Root(src) as s, Root(dst) as d:
        copy_action(s, d, Copy(src="/", dest="/", dir_copy_contents=True), None, "copy")


def copy_action(src: Root, dst: Root, a: Copy, owner: tuple[int, int] | None, desc: str) -> None:
    ts = ts_of(a.timestamp)
    if not a.create_dest_path:
        with dst.resolve(a.dest) as r:
            if r.parent_fd is None:
                raise MasonError(f"{desc}: failed to stat {a.dest}: parent directory "
                                 f"{os.path.dirname(r.path)} does not exist")
    if a.allow_wildcard:
        matches = wildcards(src, a.src, a.follow_symlink)
        if not matches:
            if a.allow_empty_wildcard:
                return
            raise MasonError(f"{desc}: file not found in build context or excluded by "
                             f".dockerignore: stat {a.src}: file does not exist")
    else:
        matches = [a.src]
    copier = _Copier(a, owner, dst)
    for s in matches:
        if a.attempt_unpack and _unpack(src, s, dst, a.dest, owner, ts):
            continue
        _copy_one(src, s, dst, a, copier, desc)


def _copy_one(src: Root, s: str, dst: Root, a: Copy, copier: "_Copier", desc: str) -> None:
    ts = ts_of(a.timestamp)
    dest = a.dest
    head, tail = dest.rsplit("/", 1) if "/" in dest else ("", dest)
    ensure = dest if tail in ("", ".") else (head + "/" if "/" in dest else "")
    if ensure:
        dst.mkdir_all(ensure, copier.dir_mode, copier.owner, ts)
    with dst.resolve(clean_path("/" + dest)) as r:
        dpath, dst_st = r.path, r.lstat()
    with src.resolve(s, follow_final=a.follow_symlink) as sres:
        src_st = sres.lstat()
        if src_st is None:
            raise MasonError(f"{desc}: file not found in build context or excluded by "
                             f".dockerignore: stat {s}: file does not exist")
        for p in a.required_paths:  # from the input's root, as BuildKit writes them (COPY --parents)
            with src.resolve(clean_path("/" + p), follow_final=False) as rq:
                if rq.lstat() is None:
                    raise MasonError(f"{desc}: required path {p} not found")
        src_dir = stat.S_ISDIR(src_st.st_mode)
        if dst_st is not None and ((src_dir and not a.dir_copy_contents) or
                                   (not src_dir and stat.S_ISDIR(dst_st.st_mode))):
            base = os.path.basename(clean_path("/" + s))
            if base:
                dpath = dpath.rstrip("/") + "/" + base
        target = dpath if (src_dir and a.dir_copy_contents and dst_st is None) else (
            os.path.dirname(dpath))
        dst.mkdir_all(target, copier.dir_mode, copier.owner, ts)
        sfd, sname = sres.at()
        with dst.resolve(dpath, follow_final=False) as dres:
            dfd, dname = dres.at()
            top = _Dir(copier, None, os.path.dirname(dres.path), fd=dfd)
            copier.copy(sfd, sname, "", top, dname, False)


class _Dir:
    """A destination directory, created when first needed: with include patterns a parent is
    only made once something below it is copied (fsutil's delayed parent dirs)."""

    __slots__ = ("copier", "parent", "path", "name", "st", "overwrite", "fd", "created", "owns")

    def __init__(self, copier: "_Copier", parent: "_Dir | None", path: str, name: str = "",
                 st: os.stat_result | None = None, overwrite: bool = False, fd: int | None = None):
        self.copier, self.parent, self.path, self.name = copier, parent, path, name
        self.st, self.overwrite, self.fd = st, overwrite, fd
        self.created = False
        self.owns = fd is None

    def ensure(self) -> int:
        if self.fd is None:
            assert self.parent is not None and self.st is not None
            pfd = self.parent.ensure()
            self.created = self.copier.dir_only(self.st, pfd, self.name, self.path, self.overwrite)
            self.fd = os.open(self.name, READ_DIR_FLAGS, dir_fd=pfd)
            if self.created:
                self.copier.info(self.st, pfd, self.name)
        return self.fd

    def close(self) -> None:
        if self.owns and self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Copier:
    """fsutil's copier: ``cp -a`` with chown, chmod, times and include/exclude patterns."""

    def __init__(self, a: Copy, owner: tuple[int, int] | None, dst: Root):
        self.a, self.owner, self.dst = a, owner, dst
        self.ts = ts_of(a.timestamp)
        self.inc = PatternMatcher(a.include_patterns) if a.include_patterns else None
        self.exc = PatternMatcher(a.exclude_patterns) if a.exclude_patterns else None
        self.modefn = parse_mode_str(a.mode_str) if a.mode_str else None
        self.inodes: dict[tuple[int, int], str] = {}
        # the directories the copy creates on the way (missing parents of the destination, a
        # directory source's destination itself): 0755, or the copy's mode as BuildKit v0.32.2
        self.dir_mode = 0o755 if a.mode == -1 or self.modefn is not None else a.mode & 0o777

    def mode_of(self, st: os.stat_result) -> int:
        m = stat.S_IMODE(st.st_mode)
        if self.modefn is not None:
            return self.modefn(m, stat.S_ISDIR(st.st_mode)) & 0o7777
        if self.a.mode != -1:  # exactly: a source's setuid bit goes, --chmod=4755 sets it (BuildKit)
            return self.a.mode & 0o7777
        return m

    def info(self, st: os.stat_result, dfd: int, name: str) -> None:
        uid, gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
        os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            chmod_at(dfd, name, self.mode_of(st))
        times = (self.ts, self.ts) if self.ts is not None else (st.st_atime_ns, st.st_mtime_ns)
        os.utime(name, ns=times, dir_fd=dfd, follow_symlinks=False)

    def dir_only(self, st: os.stat_result, pfd: int, name: str, path: str, overwrite: bool) -> bool:
        try:
            cur = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            cur = None
        if cur is not None and not stat.S_ISDIR(cur.st_mode):
            if not self.a.always_replace_existing:
                raise MasonError(f"cannot copy to non-directory: {path}")
            remove_all_at(pfd, name)
            cur = None
        if cur is None:
            os.mkdir(name, 0o700, dir_fd=pfd)
            return True
        if overwrite and self.inc is not None:
            chmod_at(pfd, name, stat.S_IMODE(st.st_mode))
        return False

    def copy(self, sfd: int, sname: str, rel: str, parent: _Dir, dname: str, overwrite: bool) -> None:
        """Copy ``sname`` (below ``sfd``) to ``dname`` in ``parent``, a directory with all it
        holds. Iterative: each directory is a suspended :meth:`_copy` on a stack (a tree deeper
        than Python's recursion limit is a tree like any other)."""
        stack = [self._copy(sfd, sname, rel, parent, dname, overwrite)]
        try:
            while stack:
                try:
                    child = next(stack[-1])
                except StopIteration:
                    stack.pop()
                    continue
                stack.append(self._copy(*child))
        except BaseException:
            for g in reversed(stack):  # their finally clauses close the source directories
                g.close()
            raise

    def _copy(self, sfd: int, sname: str, rel: str, parent: _Dir, dname: str,
              overwrite: bool) -> Generator[tuple[int, str, str, _Dir, str, bool], None, None]:
        st = os.stat(sname, dir_fd=sfd, follow_symlinks=False)
        include = True
        if rel:
            if self.inc is not None and not self.inc.excluded(rel):
                include = False
            if self.exc is not None and self.exc.excluded(rel):
                if stat.S_ISDIR(st.st_mode) and self.exc.can_skip_dir(rel):
                    return
                include = False
        dpath = parent.path.rstrip("/") + "/" + dname if dname != "." else parent.path
        if stat.S_ISDIR(st.st_mode):
            node = _Dir(self, parent, dpath, dname, st, overwrite)
            if include:
                node.ensure()
            sub = os.open(sname, READ_DIR_FLAGS, dir_fd=sfd)
            try:
                for name in sorted(os.listdir(sub)):
                    yield (sub, name, f"{rel}/{name}" if rel else name, node, name, True)
            finally:
                os.close(sub)
            if node.fd is not None:
                node.close()
                if node.created or (overwrite and self.inc is None):
                    self.info(st, parent.ensure(), dname)
            return
        if not include:
            return
        pfd = parent.ensure()
        try:
            cur = os.stat(dname, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            cur = None
        if cur is not None:
            if stat.S_ISDIR(cur.st_mode):
                if not self.a.always_replace_existing:
                    raise MasonError(f"cannot replace to directory {dpath} with file")
                remove_all_at(pfd, dname)
            else:
                os.unlink(dname, dir_fd=pfd)
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            first = self.inodes.get(key) if st.st_nlink > 1 else None
            if first is not None:
                with self.dst.resolve(first, follow_final=False) as t:
                    tfd, tname = t.at()
                    os.link(tname, dname, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            else:
                _copy_file(sfd, sname, pfd, dname)
                if st.st_nlink > 1:
                    self.inodes[key] = dpath
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(sname, dir_fd=sfd), dname, dir_fd=pfd)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode) \
                or stat.S_ISSOCK(st.st_mode):
            os.mknod(dname, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=pfd)
        else:
            return
        self.info(st, pfd, dname)


def _copy_file(sfd: int, sname: str, dfd: int, dname: str) -> None:
    i = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
    try:
        o = os.open(dname, WFLAGS, 0o600, dir_fd=dfd)
        try:
            while True:
                try:
                    n = os.copy_file_range(i, o, 1 << 30)
                except OSError:
                    n = -1
                if n == 0:
                    break
                if n < 0:  # not supported across these filesystems
                    while chunk := os.read(i, 1 << 20):
                        os.write(o, chunk)
                    break
        finally:
            os.close(o)
    finally:
        os.close(i)


# -- ADD's archive auto-unpack ------------------------------------------------------------------

def _unpack(src: Root, s: str, dst: Root, dest: str, owner: tuple[int, int] | None,
            ts: int | None) -> bool:
    """If ``s`` is a (gzip/bzip2/xz/plain) tar archive, extract it into directory ``dest``
    and return True (BuildKit's ``unpack``: entries keep the archive's owners)."""
    with src.resolve(s) as r:
        st = r.lstat()
        if st is None or not stat.S_ISREG(st.st_mode):
            return False
        fd = os.open(r.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=r.at()[0])
    with os.fdopen(fd, "rb") as f:
        try:
            with tarfile.open(fileobj=f, mode="r|*") as tf:
                if tf.next() is None:
                    return False
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error):
            return False
        f.seek(0)
        dst.mkdir_all(dest, 0o755, owner, ts)
        with dst.subroot(dest) as sub, tarfile.open(fileobj=f, mode="r|*") as tf:
            safe_extract_tar(tf, sub)
    return True


__all__ = ["copy_tree", "copy_action", "ts_of", "WFLAGS"]
