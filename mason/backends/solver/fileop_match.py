"""Wildcards in FileOp paths: Go's ``filepath.Match`` per path element, resolved inside a snapshot
root as fsutil's ResolveWildcards does (symlinks not followed below the literal prefix)."""

from __future__ import annotations

import os
import stat

from mason.backends.solver.fsutil import READ_DIR_FLAGS, Root
from mason.ir.golang import has_wildcard, match_regex
from mason.ir.golang import path_clean as clean_path


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
