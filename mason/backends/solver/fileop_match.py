"""Wildcards in FileOp paths: Go's ``filepath.Match`` per path element, resolved inside a snapshot
root as fsutil's ResolveWildcards does (symlinks not followed below the literal prefix)."""

from __future__ import annotations

import os
import re
import stat

from mason.backends.solver.fsutil import READ_DIR_FLAGS, Root
from mason.ir.patterns import clean_path


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


def wildcards(root: Root, path: str, follow: bool) -> list[str]:
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


__all__ = ["has_wildcard", "match_regex", "wildcards"]
