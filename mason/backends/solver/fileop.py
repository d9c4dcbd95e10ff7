"""Execute a FileOp's actions (copy, mkfile, mkdir, rm, symlink) on directories.

The solver calls :func:`execute_fileop` with one directory per op input (read-only views of
snapshots; None = scratch) and, ideally, the mounted writable snapshot for the output. The
contract, like BuildKit's FileOp solver:

* Action ``input``/``secondary_input`` below ``len(inputs)`` names an op input, ``len(inputs)+k``
  the result of action k, -1 scratch. The action with ``output == 0`` is the op's result.
* The *output chain* is that action and the actions its ``input`` leads back through; it starts
  from one op input or scratch, :func:`output_base`. The solver prepares ``dest_root`` as a
  writable snapshot whose parent is that input (or an empty one for scratch) and the chain runs
  in place in it. Without ``dest_root`` the executor gets a directory from
  ``scratch_dir_factory`` and copies the base into it (``cp -a`` style, never hardlinked to the
  input).
* Op inputs are never written. Results of actions off the chain, and copies of chain results a
  later action still reads after the chain moved on, live in directories from
  ``scratch_dir_factory``; the executor removes them before returning.

Every path resolves inside its root through :mod:`fsutil` (``*at()`` calls on ``O_NOFOLLOW``
fds). Semantics follow BuildKit's file backend and fsutil's copier: sources keep their owner,
mode and times unless ``owner``/``mode``/``mode_str``/``timestamp`` say otherwise (Docker's
"COPY makes files 0:0" comes from the ``local://`` source, which resets ids, not from here);
symlinks are copied as links; MkDir/MkFile modes are exact (BuildKit's depend on the daemon's
umask, 0022 in practice).
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence

from mason.backends.solver import users
from mason.backends.solver.fsutil import READ_DIR_FLAGS, Root, chmod_at, remove_all_at, safe_extract_tar
from mason.ir.errors import MasonError
from mason.ir.ops import ChownOpt, Copy, FileAction, FileOp, MkDir, MkFile, Rm, Symlink
from mason.ir.patterns import PatternMatcher, clean_path

__all__ = ["execute_fileop", "output_base", "apply_action", "copy_tree", "parse_mode_str",
           "describe_action"]

ScratchFactory = Callable[[], str]
_WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# -- the op -------------------------------------------------------------------------------------

def _output_action(op: FileOp) -> int:
    for k, a in enumerate(op.actions):
        if a.output == 0:
            return k
    raise MasonError("file op has no action with output 0")


def _chain(op: FileOp, n_in: int) -> tuple[list[int], int]:
    """The output chain (action indices, first to last) and the op input it starts from."""
    k = _output_action(op)
    chain = [k]
    while True:
        i = op.actions[k].input
        if i < n_in:
            return chain[::-1], i if i >= 0 else -1
        if i - n_in >= k:
            raise MasonError(f"file action {k} reads the result of action {i - n_in}, "
                             "which does not run before it")
        k = i - n_in
        chain.append(k)


def output_base(op: FileOp, n_inputs: int | None = None) -> int:
    """The op input whose filesystem the output chain modifies (-1: scratch). The solver
    prepares ``dest_root`` on a snapshot of it."""
    return _chain(op, len(op.inputs) if n_inputs is None else n_inputs)[1]


def _reads(a: FileAction) -> list[int]:
    out = [a.input, a.secondary_input]
    owner = getattr(a.action, "owner", None)
    for u in (owner.user, owner.group) if owner is not None else ():
        if u is not None and u.name is not None:
            out.append(u.name_input)
    return out


def execute_fileop(op: FileOp, inputs: Sequence[str | None],
                   scratch_dir_factory: ScratchFactory | None = None,
                   dest_root: str | None = None) -> str:
    """Run ``op``'s actions and return the directory holding its output (``dest_root`` when
    given). See the module docstring for the contract."""
    inputs = [None if d is None else os.fspath(d) for d in inputs]
    n_in = len(inputs)
    if len(op.inputs) not in (0, n_in):
        raise MasonError(f"file op has {len(op.inputs)} inputs but {n_in} directories were given")
    factory = scratch_dir_factory or (lambda: tempfile.mkdtemp(prefix="mason-fileop-"))
    chain, base = _chain(op, n_in)
    on_chain = set(chain)
    last_reader: dict[int, int] = {}
    for j, a in enumerate(op.actions):
        for i in _reads(a):
            if i >= n_in:
                if i - n_in >= j:
                    raise MasonError(f"file action {j} reads the result of action {i - n_in}, "
                                     "which does not run before it")
                last_reader[i - n_in] = j
    owned: list[str] = []  # directories to remove at the end
    empty: list[str] = []

    def scratch() -> str:
        d = factory()
        owned.append(d)
        return d

    def source(i: int, results: dict[int, str]) -> str:
        if i >= n_in:
            return results[i - n_in]
        if i >= 0 and inputs[i] is not None:
            return inputs[i]  # type: ignore[return-value]
        if not empty:
            empty.append(scratch())
        return empty[0]

    if dest_root is None:
        dest_root = factory()
        if base >= 0 and inputs[base] is not None:
            copy_tree(inputs[base], dest_root)  # type: ignore[arg-type]
    results: dict[int, str] = {}
    try:
        for j, a in enumerate(op.actions):
            i = a.input
            if j in on_chain:
                target = dest_root
                k = i - n_in
                if i >= n_in and last_reader.get(k, -1) > j:  # still read later: fork it
                    results[k] = scratch()
                    copy_tree(dest_root, results[k])
            elif i >= n_in and (i - n_in) not in on_chain and last_reader.get(i - n_in) == j:
                target = results[i - n_in]  # this action is the last reader: take it over
            else:
                target = scratch()
                if i >= n_in or (i >= 0 and inputs[i] is not None):
                    copy_tree(source(i, results), target)
            owner_root = lambda idx: source(idx, results)  # noqa: E731
            secondary = source(a.secondary_input, results) if isinstance(a.action, Copy) else None
            apply_action(a.action, target, secondary, owner_root)
            results[j] = target
    finally:
        for d in owned:
            if d != dest_root:
                shutil.rmtree(d, ignore_errors=True)
    return dest_root


# -- one action ---------------------------------------------------------------------------------

def describe_action(action: object) -> str:
    if isinstance(action, Copy):
        return f"copy {action.src} {action.dest}"
    if isinstance(action, Symlink):
        return f"symlink {action.oldpath} {action.newpath}"
    return f"{getattr(action, 'kind', 'file')} {getattr(action, 'path', '')}"


def apply_action(action: object, dest: str, src: str | None = None,
                 owner_root: Callable[[int], str] | None = None) -> None:
    """Apply one action to directory ``dest`` in place (``src``: a Copy's source directory;
    ``owner_root(i)``: the directory whose /etc/passwd resolves names of ``name_input`` i)."""
    desc = describe_action(action)
    try:
        owner = _owner(getattr(action, "owner", None), owner_root or (lambda i: dest))
        with Root(dest) as d:
            if isinstance(action, Copy):
                with Root(src or dest) as s:
                    _copy(s, d, action, owner, desc)
            elif isinstance(action, MkDir):
                _mkdir(d, action, owner)
            elif isinstance(action, MkFile):
                _mkfile(d, action, owner)
            elif isinstance(action, Rm):
                _rm(d, action, desc)
            elif isinstance(action, Symlink):
                _symlink(d, action, owner)
            else:
                raise MasonError(f"unknown file action {type(action).__name__}")
    except MasonError as e:
        if e.message.startswith(desc):
            raise
        raise MasonError(f"{desc}: {e.message}") from e
    except OSError as e:  # filenames are container paths: every call is *at() on a name
        where = f": {e.filename}" if e.filename else ""
        raise MasonError(f"{desc}: {e.strerror or e}{where}") from e


def _ts(ts: int) -> int | None:
    return None if ts == -1 else ts


def _owner(chown: ChownOpt | None, root_of: Callable[[int], str]) -> tuple[int, int] | None:
    """BuildKit's readUser: a user id sets uid and gid, a name the passwd entry's ids; a group
    then overrides the gid. Nothing given: None (keep)."""
    if chown is None or (chown.user is None and chown.group is None):
        return None
    uid = gid = 0
    if chown.user is not None:
        u = chown.user
        uid, gid = (u.id, u.id) if u.name is None else users.lookup_user(root_of(u.name_input), u.name)
    if chown.group is not None:
        g = chown.group
        gid = g.id if g.name is None else users.lookup_group(root_of(g.name_input), g.name)
    return uid or 0, gid or 0


def _set_meta(dir_fd: int, name: str, owner: tuple[int, int] | None, mode: int | None,
              ts: int | None) -> None:
    if owner is not None:
        os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)
    if mode is not None:
        chmod_at(dir_fd, name, mode)
    if ts is not None:
        os.utime(name, ns=(ts, ts), dir_fd=dir_fd, follow_symlinks=False)


def _mkdir(d: Root, a: MkDir, owner: tuple[int, int] | None) -> None:
    with d.resolve(a.path) as r:
        if a.make_parents:
            r.make_dirs(a.mode & 0o777, owner, _ts(a.timestamp))
            st = r.lstat()
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(0, "not a directory", r.path)
            return
        dfd, name = r.at()
        try:
            os.mkdir(name, 0o700, dir_fd=dfd)
        except FileExistsError:
            return  # as BuildKit: an existing path is fine
        _set_meta(dfd, name, owner, a.mode & 0o777, _ts(a.timestamp))


def _mkfile(d: Root, a: MkFile, owner: tuple[int, int] | None) -> None:
    with d.resolve(a.path) as r:
        dfd, name = r.at()
        created = True
        try:
            fd = os.open(name, _WFLAGS, 0o600, dir_fd=dfd)
        except FileExistsError:  # overwritten in place, keeping its mode (os.WriteFile)
            created = False
            fd = os.open(name, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        with os.fdopen(fd, "wb") as f:
            f.write(a.data)
        _set_meta(dfd, name, owner, a.mode & 0o777 if created else None, _ts(a.timestamp))


def _rm(d: Root, a: Rm, desc: str) -> None:
    paths = _wildcards(d, a.path, False) if a.allow_wildcard else [a.path]
    for p in paths:
        p = clean_path("/" + p)
        if p == "/":
            raise MasonError(f"{desc}: cannot remove the root directory")
        with d.resolve(p, follow_final=False) as r:
            if r.lstat() is None:
                if a.allow_not_found:
                    continue
                raise MasonError(f"{desc}: {p}: no such file or directory")
            remove_all_at(*r.at())


def _symlink(d: Root, a: Symlink, owner: tuple[int, int] | None) -> None:
    with d.resolve(a.newpath, follow_final=False) as r:
        dfd, name = r.at()
        os.symlink(a.oldpath, name, dir_fd=dfd)
        _set_meta(dfd, name, owner, None, _ts(a.timestamp))


# -- wildcards (Go's filepath.Match per path element) -------------------------------------------

def has_wildcard(s: str) -> bool:
    i = 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] in "*?[":
            return True
        i += 1
    return False


def match_regex(pat: str) -> re.Pattern[str] | None:
    """Go ``filepath.Match`` syntax as a regex; None for a malformed pattern (no match)."""
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i >= n:
                return None
            out.append(re.escape(pat[i]))
            i += 1
        elif c == "[":
            cls = ["["]
            if i < n and pat[i] == "^":
                cls.append("^")
                i += 1
            first = True
            while True:
                if i >= n:
                    return None
                if pat[i] == "]" and not first:
                    i += 1
                    break
                first = False
                lo = pat[i]
                if lo == "\\":
                    i += 1
                    if i >= n:
                        return None
                    lo = pat[i]
                i += 1
                if i < n and pat[i] == "-" and i + 1 < n and pat[i + 1] != "]":
                    hi = pat[i + 1]
                    if hi == "\\":
                        i += 1
                        if i + 1 >= n:
                            return None
                        hi = pat[i + 1]
                    i += 2
                    if hi < lo:
                        return None
                    cls.append(re.escape(lo) + "-" + re.escape(hi))
                else:
                    cls.append(re.escape(lo))
            cls.append("]")
            out.append("".join(cls))
        else:
            out.append(re.escape(c))
    return re.compile("(?s)" + "".join(out))


def _wildcards(root: Root, path: str, follow: bool) -> list[str]:
    """fsutil's ResolveWildcards: the container paths matching ``path`` (lexical order,
    symlinks not followed below the literal prefix)."""
    parts = [p for p in clean_path("/" + path).split("/") if p]
    k = next((i for i, p in enumerate(parts) if has_wildcard(p)), None)
    if k is None:
        return [path]
    regexes = [match_regex(p) for p in parts[k:]]
    if any(r is None for r in regexes):
        return []
    out: list[str] = []
    with root.resolve("/" + "/".join(parts[:k]), follow_final=follow) as r:
        st = r.lstat()
        if st is None or not stat.S_ISDIR(st.st_mode):
            return []
        fd = r.open_dir()
        _match_below(fd, r.path.rstrip("/"), regexes, out)
    return out


def _match_below(fd: int, prefix: str, regexes: list, out: list[str]) -> None:
    try:
        names = sorted(os.listdir(fd))
        for name in names:
            if not regexes[0].fullmatch(name):
                continue
            if len(regexes) == 1:
                out.append(f"{prefix}/{name}")
                continue
            try:
                sub = os.open(name, READ_DIR_FLAGS, dir_fd=fd)
            except OSError:  # not a directory (or a link: Walk does not follow)
                continue
            _match_below(sub, f"{prefix}/{name}", regexes[1:], out)
    finally:
        os.close(fd)


# -- chmod(1) mode strings ----------------------------------------------------------------------

_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)")
_OP = re.compile(r"([-+=])([ugo]|[rwxXst]*)")
_SHIFT = {"u": 6, "g": 3, "o": 0}
_SPECIAL = {"u": 0o4000, "g": 0o2000, "o": 0}


def parse_mode_str(text: str) -> Callable[[int, bool], int]:
    """A chmod(1) mode (``u+x,g-w``, ``a=rX``, or octal) as a function
    ``(mode, is_dir) -> mode``; the umask is not applied (no ``who`` means ``a``)."""
    if re.fullmatch(r"[0-7]{1,4}", text):
        m = int(text, 8)
        return lambda mode, is_dir: (mode & ~0o7777) | m
    ops: list[tuple[str, str, str]] = []
    for clause in text.split(","):
        cm = _CLAUSE.fullmatch(clause)
        if cm is None:
            raise MasonError(f"invalid mode string {text!r}")
        who = cm.group(1).replace("a", "ugo") or "ugo"
        ops.extend((who, op, perm) for op, perm in _OP.findall(cm.group(2)))

    def apply(mode: int, is_dir: bool) -> int:
        for who, op, perm in ops:
            bits = 0
            if perm in _SHIFT:
                src = (mode >> _SHIFT[perm]) & 7
                for w in set(who):
                    bits |= src << _SHIFT[w]
            else:
                for w in set(who):
                    v = (4 if "r" in perm else 0) | (2 if "w" in perm else 0) | (
                        1 if "x" in perm or ("X" in perm and (is_dir or mode & 0o111)) else 0)
                    bits |= v << _SHIFT[w]
                    if "s" in perm:
                        bits |= _SPECIAL[w]
                if "t" in perm and "o" in who:
                    bits |= 0o1000
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                clear = 0
                for w in set(who):
                    clear |= (7 << _SHIFT[w]) | (0 if is_dir else _SPECIAL[w])
                mode = (mode & ~clear) | bits
        return mode

    return apply


# -- copy ---------------------------------------------------------------------------------------

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
        _copy(s, d, Copy(src="/", dest="/", dir_copy_contents=True), None, "copy")


def _copy(src: Root, dst: Root, a: Copy, owner: tuple[int, int] | None, desc: str) -> None:
    ts = _ts(a.timestamp)
    if not a.create_dest_path:
        with dst.resolve(a.dest) as r:
            if r.parent_fd is None:
                raise MasonError(f"{desc}: failed to stat {a.dest}: parent directory "
                                 f"{os.path.dirname(r.path)} does not exist")
    if a.allow_wildcard:
        matches = _wildcards(src, a.src, a.follow_symlink)
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
    ts = _ts(a.timestamp)
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
        self.ts = _ts(a.timestamp)
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
                    self.copy(sub, name, f"{rel}/{name}" if rel else name, node, name, True)
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
        o = os.open(dname, _WFLAGS, 0o600, dir_fd=dfd)
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
