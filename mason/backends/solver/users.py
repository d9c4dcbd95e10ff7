"""User and group names to ids, from a root filesystem's ``/etc/passwd`` and ``/etc/group``.

The files are read through :mod:`fsutil`, so a hostile ``/etc/passwd -> /proc/self/root/...``
link resolves inside the root like everything else. Numeric ids pass through without reading
anything. Messages follow Docker's (``unable to find user app: no matching entries in passwd
file``); a missing file counts as one without entries, as in moby's user lookup.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mason.backends.solver.fsutil import Root
from mason.ir.errors import MasonError

__all__ = ["PasswdEntry", "GroupEntry", "parse_passwd", "parse_group", "read_passwd",
           "read_group", "lookup_user", "lookup_group", "resolve_user", "exec_ids"]

_MAX_FILE = 16 << 20  # a passwd file bigger than this is not one


@dataclass(frozen=True, slots=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str = ""
    shell: str = ""


@dataclass(frozen=True, slots=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...] = ()


def _fields(text: str):
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        yield line.split(":")


def _id(s: str) -> int | None:
    s = s.strip()
    return int(s) if s.isdigit() else None


def parse_passwd(text: str) -> list[PasswdEntry]:
    """``name:x:uid:gid:gecos:home:shell`` lines; malformed lines are skipped (as libc does)."""
    out = []
    for f in _fields(text):
        if len(f) < 4:
            continue
        uid, gid = _id(f[2]), _id(f[3])
        if uid is None or gid is None:
            continue
        out.append(PasswdEntry(f[0], uid, gid, f[5] if len(f) > 5 else "",
                               f[6] if len(f) > 6 else ""))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    """``name:x:gid:member,member`` lines; malformed lines are skipped."""
    out = []
    for f in _fields(text):
        if len(f) < 3:
            continue
        gid = _id(f[2])
        if gid is None:
            continue
        members = tuple(m for m in f[3].split(",") if m) if len(f) > 3 else ()
        out.append(GroupEntry(f[0], gid, members))
    return out


def _read(root: str | Root, path: str) -> str | None:
    r = root if isinstance(root, Root) else Root(os.fspath(root))
    try:
        with r.resolve(path) as res:
            try:
                d, name = res.at()
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                             dir_fd=d)
            except (FileNotFoundError, NotADirectoryError):
                return None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise MasonError(f"{path} is not a regular file")
            data = f.read(_MAX_FILE + 1)
        if len(data) > _MAX_FILE:
            raise MasonError(f"{path} is too large")
        return data.decode("utf-8", "surrogateescape")
    finally:
        if r is not root:
            r.close()


def read_passwd(root: str | Root) -> list[PasswdEntry]:
    """The entries of ``root``'s ``/etc/passwd`` (none if it does not exist)."""
    text = _read(root, "/etc/passwd")
    return parse_passwd(text) if text is not None else []


def read_group(root: str | Root) -> list[GroupEntry]:
    """The entries of ``root``'s ``/etc/group`` (none if it does not exist)."""
    text = _read(root, "/etc/group")
    return parse_group(text) if text is not None else []


def lookup_user(root: str | Root, name: str) -> tuple[int, int]:
    """``(uid, primary gid)`` of user ``name``; a number is its own uid (and gid, as
    BuildKit's chown by id)."""
    n = _id(name)
    if n is not None:
        return n, n
    for e in read_passwd(root):
        if e.name == name:
            return e.uid, e.gid
    raise MasonError(f"unable to find user {name}: no matching entries in passwd file")


def lookup_group(root: str | Root, name: str) -> int:
    """The gid of group ``name``; a number is its own gid."""
    n = _id(name)
    if n is not None:
        return n
    for e in read_group(root):
        if e.name == name:
            return e.gid
    raise MasonError(f"unable to find group {name}: no matching entries in group file")


def resolve_user(root: str | Root, spec: str) -> tuple[int, int]:
    """``user[:group]`` (names or numbers) to ``(uid, gid)``. Without a group, a named user
    gets its primary group and a numeric one its uid as gid (``--chown=1000`` is 1000:1000)."""
    if not spec:
        raise MasonError("empty user specification")
    user, sep, group = spec.partition(":")
    if sep and not group:
        raise MasonError(f"invalid user specification {spec!r}: empty group")
    uid, gid = lookup_user(root, user)
    if sep:
        gid = lookup_group(root, group)
    return uid, gid


def exec_ids(spec: str, passwd: Callable[[], Sequence[PasswdEntry]],
             group: Callable[[], Sequence[GroupEntry]]) -> tuple[int, int, list[int]]:
    """uid, gid and supplementary gids of a process run as ``spec`` (``user[:group]``, names or
    ids; empty: the default user ``0``), as BuildKit's executor computes them: both parts numeric
    skips the files; otherwise the first passwd entry matching the name (or uid) gives uid and
    primary gid, an explicit group replaces the gid (first entry by name or gid; a number not in
    the file is used as is) and without one the supplementary groups are those listing the user
    as a member, in file order. The primary gid always leads the supplementary list unless it is
    already there (what containerd's and BuildKit's spec options ensure since CVE-2023-25173).
    An unknown user or group name is an error, except for the default user.
    ``passwd``/``group`` are called only when needed."""
    default = not spec
    sgids: list[int]
    user, sep, grp = (spec or "0").partition(":")
    if user.isdigit() and sep and grp.isdigit():
        uid, gid, sgids = int(user), int(grp), []
    else:
        try:
            uid, gid, sgids = _exec_lookup(user, grp if sep else "", passwd, group)
        except MasonError:
            if not default:
                raise
            uid, gid, sgids = 0, 0, []
    if gid not in sgids:
        sgids = [gid, *sgids]
    return uid, gid, sgids


def _exec_lookup(user: str, grp: str, passwd: Callable[[], Sequence[PasswdEntry]],
                 group: Callable[[], Sequence[GroupEntry]]) -> tuple[int, int, list[int]]:
    uid_arg = _id(user)
    ent = next((e for e in passwd() if (e.uid == uid_arg if uid_arg is not None else e.name == user)), None)
    if ent is None and uid_arg is None:
        raise MasonError(f"unable to find user {user}: no matching entries in passwd file")
    uid, gid = (ent.uid, ent.gid) if ent is not None else (uid_arg or 0, 0)
    sgids: list[int] = []
    if grp:
        gid_arg = _id(grp)
        g = next((e for e in group() if (e.gid == gid_arg if gid_arg is not None else e.name == grp)), None)
        if g is not None:
            gid = g.gid
        elif gid_arg is not None:
            gid = gid_arg
        else:
            raise MasonError(f"unable to find group {grp}: no matching entries in group file")
    elif ent is not None:
        sgids = [g.gid for g in group() if ent.name in g.members]
    return uid, gid, sgids
