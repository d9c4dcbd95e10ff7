"""Helpers for the FileOp tests: building ops, snapshotting trees."""

from __future__ import annotations

import hashlib
import os
import stat

from mason.backends.solver.fileop import execute_fileop
from mason.ir.ops import FileAction, FileOp


def run(tmp_path, actions, *, base=None, src=None, name="out"):
    """Apply ``actions`` in order to a copy of ``base`` (or scratch) with ``src`` as every
    copy's source; return the output directory."""
    inputs = [base, src]
    n = len(inputs)
    fas = []
    for k, a in enumerate(actions):
        fas.append(FileAction(0 if k == 0 else n + k - 1, 1, 0 if k == len(actions) - 1 else -1, a))
    dest = tmp_path / name
    dest.mkdir()
    if base is not None:
        from mason.backends.solver.fileop import copy_tree
        copy_tree(str(base), str(dest))
    return execute_fileop(FileOp(actions=tuple(fas)), inputs,
                          lambda: _mk(tmp_path), str(dest))


_count = [0]


def _mk(tmp_path) -> str:
    _count[0] += 1
    d = tmp_path / f"scratch{_count[0]}"
    d.mkdir()
    return str(d)


def snapshot(top, skip=()) -> dict:
    """Everything below ``top`` (not following links): type, mode, owner, mtime, content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        dirnames[:] = [d for d in dirnames if os.path.join(rel, d).lstrip("./") not in skip
                       and os.path.normpath(os.path.join(rel, d)) not in skip]
        for n in dirnames + filenames + ([] if rel != "." else ["."]):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(p)
            key = os.path.normpath(os.path.join(rel, n))
            out[key] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0, st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0, data)
    return out
