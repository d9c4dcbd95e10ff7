"""``local://<name>`` sources: the build context (or another local directory) as a snapshot.

Two phases, so the solver can decide on the cache before copying anything:

* :func:`scan_local` walks the directory with ``local.includepattern`` /
  ``local.excludepatterns`` / ``local.followpaths`` applied (``mason.ir.patterns``; excluded
  directories that no ``!`` exception reaches are skipped without being walked) and computes the
  **content checksum** of the selection: path, type, permission bits, link target and the sha256
  of each file — never mtimes or owners, so ``touch`` changes nothing. A **stat cache** (sqlite
  under ``cache_dir``: real path → size, mtime_ns, inode, device, sha256) saves re-reading
  unchanged files. Entries whose mtime is too close to when they were hashed are not trusted
  (the "racy git" problem: a same-size edit within one timestamp tick).
* :func:`load_local` copies the selection into a new snapshot named by that checksum — an
  existing one is reused, so an unchanged context is not copied again. Modes, mtimes, symlinks
  (as links: never followed, wherever they point), hard links inside the selection, FIFOs and
  device nodes are kept; owners become 0:0, as Docker's and buildx's context transfer does
  (``resetUIDAndGID``). Files are hashed again while copied: one that changed since the scan is
  an error, never a snapshot whose name lies about its content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mason.ir.errors import MasonError
from mason.ir.patterns import PatternMatcher, clean_path, parse_patterns

if TYPE_CHECKING:  # the snapshot side is imported where it is used: a client sending a directory needs none of it
    from mason.backends.containerd.client import Client
    from mason.backends.sources.result import SourceResult

PREFIX = "local://"
ATTR_INCLUDE = "local.includepattern"
ATTR_EXCLUDE = "local.excludepatterns"
ATTR_FOLLOW = "local.followpaths"
STAT_CACHE_FILE = "local-stat-cache.sqlite"
RACY_NS = 2_000_000_000  # coarser than any file system's timestamp granularity we meet
_CHUNK = 1 << 20

__all__ = ["LocalEntry", "LocalScan", "StatCache", "load_local", "scan_local", "select_local"]


@dataclass(frozen=True, slots=True)
class LocalEntry:
    rel: str  # "/"-separated, relative to the context root
    kind: str  # "dir" | "file" | "symlink" | "fifo" | "chr" | "blk"
    mode: int  # permission bits with setuid/setgid/sticky
    mtime_ns: int
    size: int = 0
    sha256: str = ""  # files
    target: str = ""  # symlinks
    rdev: int = 0  # devices
    inode: tuple[int, int, int] = (0, 0, 1)  # (dev, ino, nlink): hard links inside the selection

    def checksum_line(self) -> bytes:
        extra = self.sha256 or self.target or (f"{os.major(self.rdev)},{os.minor(self.rdev)}" if self.rdev else "")
        return f"{self.rel}\0{self.kind}\0{self.mode:o}\0{extra}\n".encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class LocalScan:
    root: Path
    entries: tuple[LocalEntry, ...]  # walk order: parents before children
    checksum: str  # "sha256:…" over the selection
    hashed: int  # files actually read (not served by the stat cache)


# -- stat cache -------------------------------------------------------------------------------


class StatCache:
    """path → (size, mtime_ns, ino, dev, sha256), in sqlite; safe for concurrent builds."""

    def __init__(self, path: str | os.PathLike[str]):
        import sqlite3

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(os.fspath(path), timeout=30, isolation_level=None)
        with contextlib.suppress(sqlite3.OperationalError):
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                        " ino INTEGER, dev INTEGER, sha256 TEXT, hashed_ns INTEGER)")
        self.pending: list[tuple] = []

    def load_under(self, root: str) -> dict[str, tuple]:
        lo, hi = root.rstrip("/") + "/", root.rstrip("/") + "0"  # "0" sorts right after "/"
        rows = self.db.execute("SELECT path, size, mtime_ns, ino, dev, sha256, hashed_ns FROM files"
                               " WHERE path >= ? AND path < ?", (lo, hi))
        return {r[0]: r[1:] for r in rows}

    def put(self, path: str, st: os.stat_result, sha: str, hashed_ns: int) -> None:
        self.pending.append((path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, sha, hashed_ns))

    def flush(self) -> None:
        import sqlite3

        if self.pending:
            with contextlib.suppress(sqlite3.OperationalError):  # a busy cache only costs a re-read
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", self.pending)
                self.db.execute("COMMIT")
            self.pending = []

    def close(self) -> None:
        self.flush()
        self.db.close()


def _trusted(row: tuple | None, st: os.stat_result) -> str | None:
    if row is None:
        return None
    size, mtime_ns, ino, dev, sha, hashed_ns = row
    if (size, mtime_ns, ino, dev) != (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev):
        return None
    if mtime_ns > hashed_ns - RACY_NS:
        return None
    return sha


# -- attrs and patterns -------------------------------------------------------------------------


def _json_list(attrs: Mapping[str, str], key: str) -> list[str]:
    raw = attrs.get(key)
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        raise MasonError(f"invalid {key} attr: not JSON: {raw[:80]!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MasonError(f"invalid {key} attr: expected a JSON list of strings")
    return value


def _rel(path: str) -> str | None:
    """A clean context-relative path, or None if it leaves the context."""
    c = clean_path("/" + path).lstrip("/")
    return c or None


def _follow(root: Path, paths: Sequence[str]) -> list[str]:
    """``local.followpaths``: each path, and where its symlinks lead (inside the context, read
    as if the context were ``/``), become include patterns."""
    out: list[str] = []
    for p in paths:
        cur = _rel(p)
        for _ in range(40):
            if cur is None:
                break
            out.append(cur)
            full = root / cur
            if not full.is_symlink():
                break
            target = os.readlink(full)
            base = "" if target.startswith("/") else os.path.dirname(cur)
            cur = _rel(base + "/" + target)
    return out


def _escape(path: str) -> str:
    """A path as a pattern that matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in path)


# -- scanning -----------------------------------------------------------------------------------


def select_local(context_dir: str | os.PathLike[str],
                 attrs: Mapping[str, str] | None = None) -> tuple[Path, list[tuple[str, os.stat_result]]]:
    """What :func:`scan_local` selects, without reading any file: the resolved root and
    (relative path, lstat) per entry, in walk order (parents before children; names sorted), the
    directories that only lead to selected entries included. ``mason serve``'s client sends
    exactly this."""
    attrs = attrs or {}
    root = Path(context_dir)
    try:
        root = root.resolve(strict=True)
    except OSError:
        raise MasonError(f"local source: {context_dir} does not exist") from None
    if not root.is_dir():
        raise MasonError(f"local source: {context_dir} is not a directory")
    includes = parse_patterns(_json_list(attrs, ATTR_INCLUDE))
    excludes = parse_patterns(_json_list(attrs, ATTR_EXCLUDE))
    follow = _json_list(attrs, ATTR_FOLLOW)
    if includes and follow:
        includes += parse_patterns(_escape(p) for p in _follow(root, follow))
    inc = PatternMatcher(includes)
    exc = PatternMatcher(excludes)
    # "Exclude everything but the includes": a directory it can skip holds nothing included.
    inc_skip = PatternMatcher(["**"] + ["!" + str(p) for p in includes]) if includes else None
    walked: list[tuple[str, os.stat_result, bool]] = []  # (rel, lstat, selected itself)
    stack = [("", iter(_listdir(root, "")))]
    while stack:
        reldir, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        rel = f"{reldir}/{name}" if reldir else name
        st = os.lstat(os.path.join(root, rel))
        if stat.S_ISDIR(st.st_mode):
            if exc.can_skip_dir(rel) or (inc_skip is not None and inc_skip.can_skip_dir(rel)):
                continue
            selected = (not includes or inc.excluded(rel)) and not exc.excluded(rel)
            walked.append((rel, st, selected))
            stack.append((rel, iter(_listdir(root, rel))))
            continue
        if includes and not inc.excluded(rel) or exc.excluded(rel) or stat.S_ISSOCK(st.st_mode):
            continue  # sockets and the like are not content
        walked.append((rel, st, True))
    return root, _prune(walked)


def scan_local(context_dir: str | os.PathLike[str], attrs: Mapping[str, str] | None = None, *,
               cache_dir: str | os.PathLike[str] | None = None) -> LocalScan:
    """Walk ``context_dir`` with the attrs' patterns; checksum the selection."""
    root, selection = select_local(context_dir, attrs)
    cache = StatCache(Path(cache_dir) / STAT_CACHE_FILE) if cache_dir is not None else None
    known = cache.load_under(str(root)) if cache else {}
    entries: list[LocalEntry] = []
    hashed = 0
    try:
        for rel, st in selection:
            if stat.S_ISDIR(st.st_mode):
                entries.append(LocalEntry(rel, "dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns))
                continue
            entry, fresh = _entry(rel, os.path.join(root, rel), st, known, cache)
            if entry is not None:
                hashed += fresh
                entries.append(entry)
    finally:
        if cache:
            cache.close()
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.rel):
        h.update(e.checksum_line())
    return LocalScan(root, tuple(entries), "sha256:" + h.hexdigest(), hashed)


def _listdir(root: Path, reldir: str) -> list[str]:
    try:
        with os.scandir(root / reldir if reldir else root) as it:
            return sorted(e.name for e in it)
    except OSError as e:
        raise MasonError(f"local source: cannot read {root / reldir}: {e.strerror}") from None


def _entry(rel: str, full: str, st: os.stat_result, known: Mapping[str, tuple],
           cache: StatCache | None) -> tuple[LocalEntry | None, bool]:
    """The entry for one non-directory, and whether its content had to be read."""
    fmt = stat.S_IFMT(st.st_mode)
    mode = stat.S_IMODE(st.st_mode)
    inode = (st.st_dev, st.st_ino, st.st_nlink)
    if fmt == stat.S_IFREG:
        sha = _trusted(known.get(full), st)
        fresh = sha is None
        if sha is None:
            hashed_ns = time.time_ns()
            sha, after = _hash_file(full)
            if cache is not None and (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
                cache.put(full, after, sha, hashed_ns)
            st = after
        return LocalEntry(rel, "file", mode, st.st_mtime_ns, st.st_size, sha, inode=inode), fresh
    if fmt == stat.S_IFLNK:
        return LocalEntry(rel, "symlink", 0o777, st.st_mtime_ns, target=os.readlink(full)), False
    if fmt == stat.S_IFIFO:
        return LocalEntry(rel, "fifo", mode, st.st_mtime_ns), False
    if fmt in (stat.S_IFCHR, stat.S_IFBLK):
        kind = "chr" if fmt == stat.S_IFCHR else "blk"
        return LocalEntry(rel, kind, mode, st.st_mtime_ns, rdev=st.st_rdev), False
    return None, False  # sockets and the like are not content


def _hash_file(full: str) -> tuple[str, os.stat_result]:
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise MasonError(f"local source: cannot read {full}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        h = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            h.update(chunk)
        return "sha256:" + h.hexdigest(), os.fstat(f.fileno())


def _prune(walked: list[tuple[str, os.stat_result, bool]]) -> list[tuple[str, os.stat_result]]:
    """Keep selected entries and the directories that lead to them."""
    needed: set[str] = set()
    for rel, _, selected in walked:
        if selected:
            i = rel.rfind("/")
            while i > 0:
                parent = rel[:i]
                if parent in needed:
                    break
                needed.add(parent)
                i = parent.rfind("/")
    return [(rel, st) for rel, st, selected in walked if selected or rel in needed]


# -- copying ------------------------------------------------------------------------------------


def copy_selection(scan: LocalScan, dest: str | os.PathLike[str]) -> None:
    """Recreate ``scan``'s entries under ``dest`` (an empty directory mason just made: every
    parent on the way is a directory this copy created, so nothing can lead outside it)."""
    dest = os.fspath(dest)
    links: dict[tuple[int, int], str] = {}
    dirs: list[LocalEntry] = []
    for e in scan.entries:
        src = os.path.join(scan.root, e.rel)
        dst = os.path.join(dest, e.rel)
        if e.kind == "dir":
            os.mkdir(dst, 0o700)
            dirs.append(e)
            continue
        if e.kind == "file":
            key = e.inode[:2]
            if e.inode[2] > 1 and key in links:
                os.link(links[key], dst)
                continue
            _copy_file(src, dst, e)
            if e.inode[2] > 1:
                links[key] = dst
        elif e.kind == "symlink":
            os.symlink(e.target, dst)
        elif e.kind == "fifo":
            os.mkfifo(dst, 0o600)
        else:
            os.mknod(dst, 0o600 | (stat.S_IFCHR if e.kind == "chr" else stat.S_IFBLK), e.rdev)
        if e.kind != "symlink":
            os.chmod(dst, e.mode)
        os.utime(dst, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
    for e in reversed(dirs):  # children first: writing into a directory bumps its mtime
        dst = os.path.join(dest, e.rel)
        os.chmod(dst, e.mode)
        os.utime(dst, ns=(e.mtime_ns, e.mtime_ns))


def _copy_file(src: str, dst: str, e: LocalEntry) -> None:
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise MasonError(f"local source: cannot read {src}: {err.strerror}") from None
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            h.update(chunk)
            fout.write(chunk)
    if "sha256:" + h.hexdigest() != e.sha256:
        raise MasonError(f"local source: {src} changed while it was being copied; build again")


def load_local(client: Client, name: str, context_dir: str | os.PathLike[str],
               attrs: Mapping[str, str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
               scan: LocalScan | None = None) -> SourceResult:
    """``local://<name>``: the selection of ``context_dir`` as a committed snapshot named by
    its checksum. Pass ``scan`` when :func:`scan_local` already ran (the solver checks its
    cache with ``scan.checksum`` first)."""
    from mason.backends.sources.result import SourceResult
    from mason.backends.sources.unpack import write_snapshot

    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    scan = scan or scan_local(context_dir, attrs, cache_dir=cache_dir)
    snap = write_snapshot(client, lambda root: copy_selection(scan, root),
                          name=f"mason-local-{scan.checksum.split(':', 1)[1]}",
                          labels={"mason.source": f"local://{name}"})
    return SourceResult(snapshot=snap, digest=scan.checksum, cache_key_extra=scan.checksum)
