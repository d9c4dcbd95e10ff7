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

The parts, each using only those below it: this module (the op, one action), :mod:`.fileop_copy`
(the Copy action, :func:`copy_tree`, ADD's auto-unpack), :mod:`.fileop_match` (wildcards) and
:mod:`.fileop_modes` (chmod mode strings).
"""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Sequence

from mason.backends.fstree import remove_tree
from mason.backends.solver import users
from mason.backends.solver.fileop_copy import WFLAGS, copy_action, copy_tree, ts_of
from mason.backends.solver.fileop_match import has_wildcard, match_regex, wildcards
from mason.backends.solver.fileop_modes import parse_mode_str
from mason.backends.solver.fsutil import Root, chmod_at, remove_all_at
from mason.ir.errors import MasonError
from mason.ir.ops import ChownOpt, Copy, FileAction, FileOp, MkDir, MkFile, Rm, Symlink
from mason.ir.patterns import clean_path

__all__ = ["execute_fileop", "output_base", "apply_action", "copy_tree", "parse_mode_str",
           "describe_action", "has_wildcard", "match_regex"]

ScratchFactory = Callable[[], str]


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
            if secondary is not None and os.path.realpath(secondary) == os.path.realpath(target):
                # copying from the tree being written: read a fork, as BuildKit reads the
                # earlier action's immutable result (else a directory copied into itself
                # grows while it is walked, without end)
                secondary = scratch()
                copy_tree(target, secondary)
            apply_action(a.action, target, secondary, owner_root)
            results[j] = target
    finally:
        for d in owned:
            if d != dest_root:
                remove_tree(d, ignore_errors=True)
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
                    copy_action(s, d, action, owner, desc)
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


def _owner(chown: ChownOpt | None, root_of: Callable[[int], str]) -> tuple[int, int] | None:
    """BuildKit's readUser: a user id sets uid and gid, a name the passwd entry's ids; a group
    then overrides the gid. Nothing given: None (keep)."""
    if chown is None or (chown.user is None and chown.group is None):
        return None
    uid: int | None = 0
    gid: int | None = 0
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
            r.make_dirs(a.mode & 0o777, owner, ts_of(a.timestamp))
            st = r.lstat()
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(0, "not a directory", r.path)
            return
        dfd, name = r.at()
        try:
            os.mkdir(name, 0o700, dir_fd=dfd)
        except FileExistsError:
            return  # as BuildKit: an existing path is fine
        _set_meta(dfd, name, owner, a.mode & 0o777, ts_of(a.timestamp))


def _mkfile(d: Root, a: MkFile, owner: tuple[int, int] | None) -> None:
    with d.resolve(a.path) as r:
        dfd, name = r.at()
        created = True
        try:
            fd = os.open(name, WFLAGS, 0o600, dir_fd=dfd)
        except FileExistsError:  # overwritten in place, keeping its mode (os.WriteFile)
            created = False
            fd = os.open(name, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        with os.fdopen(fd, "wb") as f:
            f.write(a.data)
        _set_meta(dfd, name, owner, a.mode & 0o777 if created else None, ts_of(a.timestamp))


def _rm(d: Root, a: Rm, desc: str) -> None:
    paths = wildcards(d, a.path, False) if a.allow_wildcard else [a.path]
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
        _set_meta(dfd, name, owner, None, ts_of(a.timestamp))


