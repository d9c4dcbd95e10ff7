"""File ops (``State.file``): an immutable chain of actions, each applied to the result of the
previous one, as BuildKit's ``llb.Mkdir(…).Copy(…)`` chains marshal.

The op's inputs are the state's filesystem first, then each action's source (a copy's), deduped;
action 0 reads the state, action k > 0 reads the result of action k-1 (``len(inputs) + k - 1``);
only the last action's result is an output (0). Owners (``"user[:group]"``, an int uid, a
``(user, group)`` pair) follow llb's ``WithUser``: ``root`` and numbers below 2³² are ids, any
other word is a name looked up in the ``/etc/passwd``/``/etc/group`` of the chain's base (the
state's filesystem, input 0 — for every action, as BuildKit's llb marshals it; -1 on scratch).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Sequence

from mason.ir.builder.core import Inputs
from mason.ir.ops import (
    ChownOpt,
    Copy,
    FileAction,
    FileActionKind,
    FileOp,
    MkDir,
    MkFile,
    Ref,
    Rm,
    Symlink,
    UserOpt,
)

if TYPE_CHECKING:  # pragma: no cover
    from mason.ir.builder.state import State

__all__ = ["FileActions", "mkdir", "mkfile", "rm", "symlink", "copy", "build_file"]

_ACTION_INPUT = -2  # a name's lookup input, not known yet: the chain's base, set by build_file


def _user(x: object) -> UserOpt:
    if isinstance(x, int):
        return UserOpt(id=x)
    s = str(x)
    if s == "root":  # llb's parseUID: root is always id 0, never looked up
        return UserOpt(id=0)
    if s.isascii() and s.isdigit() and int(s) < (1 << 32):
        return UserOpt(id=int(s))
    return UserOpt(name=s, name_input=_ACTION_INPUT)


def chown(owner: object) -> ChownOpt | None:
    """An owner for a file action (see the module docstring); None/"" = unchanged."""
    if owner is None or owner == "":
        return None
    if isinstance(owner, ChownOpt):
        return owner
    if isinstance(owner, int):
        return ChownOpt(UserOpt(id=owner), UserOpt(id=owner))
    if isinstance(owner, tuple):
        u, g = owner
        return ChownOpt(None if u is None else _user(u), None if g is None else _user(g))
    user, sep, group = str(owner).partition(":")
    return ChownOpt(_user(user), _user(group) if sep else None)


def _resolve_owner(kind: FileActionKind, inp: int) -> FileActionKind:
    owner = getattr(kind, "owner", None)
    if owner is None:
        return kind

    def fix(u: UserOpt | None) -> UserOpt | None:
        if u is not None and u.name is not None and u.name_input == _ACTION_INPUT:
            return UserOpt(name=u.name, name_input=inp)
        return u

    user, group = fix(owner.user), fix(owner.group)
    if user is owner.user and group is owner.group:  # ids only: nothing to look up
        return kind
    # replace(kind, owner=…) without replace's per-call field walk: the fields' names once per class
    names = _FIELDS.get(type(kind))
    if names is None:
        names = _FIELDS[type(kind)] = tuple(f.name for f in fields(kind))
    new = ChownOpt(user, group)
    cls: Any = type(kind)
    return cls(*[new if n == "owner" else getattr(kind, n) for n in names])


_FIELDS: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class FileActions:
    """An immutable chain of file actions; each applies to the result of the previous one."""

    steps: tuple[tuple[FileActionKind, "State | None"], ...] = ()

    def _add(self, kind: FileActionKind, src: "State | None" = None) -> "FileActions":
        return FileActions(self.steps + ((kind, src),))

    def mkdir(self, path: str, mode: int = 0o755, parents: bool = False, *, owner: object = None,
              timestamp: int = -1) -> "FileActions":
        return self._add(MkDir(path, mode, parents, chown(owner), timestamp))

    def mkfile(self, path: str, data: bytes | str, mode: int = 0o644, *, owner: object = None,
               timestamp: int = -1) -> "FileActions":
        b = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
        return self._add(MkFile(path, mode, b, chown(owner), timestamp))

    def rm(self, path: str, *, allow_not_found: bool = False, allow_wildcard: bool = False) -> "FileActions":
        return self._add(Rm(path, allow_not_found, allow_wildcard))

    def symlink(self, oldpath: str, newpath: str, *, owner: object = None, timestamp: int = -1) -> "FileActions":
        return self._add(Symlink(oldpath, newpath, chown(owner), timestamp))

    def copy(self, source: "State", src: str, dest: str, *, owner: object = None, mode: int = -1,
             follow_symlink: bool = False, dir_copy_contents: bool = False, attempt_unpack: bool = False,
             create_dest_path: bool = False, allow_wildcard: bool = False, allow_empty_wildcard: bool = False,
             timestamp: int = -1, include: Sequence[str] = (), exclude: Sequence[str] = (),
             always_replace_existing: bool = False, mode_str: str = "",
             required_paths: Sequence[str] = ()) -> "FileActions":
        c = Copy(src, dest, chown(owner), mode, follow_symlink, dir_copy_contents, attempt_unpack,
                 create_dest_path, allow_wildcard, allow_empty_wildcard, timestamp, tuple(include), tuple(exclude),
                 always_replace_existing, mode_str, tuple(required_paths))
        return self._add(c, source)

    def __add__(self, other: "FileActions") -> "FileActions":
        return FileActions(self.steps + other.steps)


_EMPTY = FileActions()


def mkdir(path: str, mode: int = 0o755, parents: bool = False, **kw: Any) -> FileActions:
    return _EMPTY.mkdir(path, mode, parents, **kw)


def mkfile(path: str, data: bytes | str, mode: int = 0o644, **kw: Any) -> FileActions:
    return _EMPTY.mkfile(path, data, mode, **kw)


def rm(path: str, **kw: bool) -> FileActions:
    return _EMPTY.rm(path, **kw)


def symlink(oldpath: str, newpath: str, **kw: Any) -> FileActions:
    return _EMPTY.symlink(oldpath, newpath, **kw)


def copy(source: "State", src: str, dest: str, **kw: Any) -> FileActions:
    return _EMPTY.copy(source, src, dest, **kw)


def build_file(state: "State", actions: FileActions, common: dict[str, Any]) -> "State":
    inputs = Inputs()
    base = inputs.index(state.ref)
    steps = actions.steps
    last = len(steps) - 1
    if last == 0:  # one action (most): it reads the state, its result is the output
        kind, src = steps[0]
        sec = -1 if src is None else inputs.index(src.ref)
        acts: tuple[FileAction, ...] = (FileAction(base, sec, 0, _resolve_owner(kind, base)),)
    else:
        secondaries = [None if src is None else inputs.index(src.ref) for _, src in steps]
        n = len(inputs)
        out = []
        for k, ((kind, _), sec2) in enumerate(zip(steps, secondaries, strict=True)):
            inp = base if k == 0 else n + k - 1
            # owner names are looked up in the chain's base for every action, as BuildKit's llb does
            out.append(FileAction(inp, -1 if sec2 is None else sec2, 0 if k == last else -1,
                                  _resolve_owner(kind, base)))
        acts = tuple(out)
    op = FileOp(actions=acts, inputs=inputs.tuple(), **common)
    return state.with_ref(Ref(op, 0))
