"""Content checksums of what a step *selects* from a ``local://`` source, in the spirit of
BuildKit's ``contenthash``: a ``COPY src/main.c /app/`` is keyed by ``src/main.c`` alone, so
editing another file of the context invalidates nothing, and ``touch`` invalidates nothing
(mtimes and owners never count).

The input is the :class:`~mason.backends.sources.local.LocalScan` of the source (one walk of
the directory per build, with the loader's stat cache: unchanged files are not re-read; the
scan is also what the loader copies into the snapshot, so keys and content cannot disagree).
:class:`ContextIndex` turns it into a tree and answers, per read:

* a COPY action (:meth:`ContextIndex.select_copy`): its ``src`` resolved as the FileOp executor
  resolves it in the snapshot — symlinks in parent components followed inside the root, the last
  one only with ``follow_symlink``, wildcards matched per component (Go ``filepath.Match``) —
  then each match's subtree with the action's include/exclude patterns applied as the copier
  applies them (directories are always counted: conservative, never a stale hit);
* a mount of a subdirectory (:meth:`ContextIndex.select_tree`).

A :class:`Selection` carries the checksum and, for ``--explain``, a short digest per
context-relative path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mason.ir.golang import has_wildcard, match_regex  # Go's filepath.Match
from mason.ir.ops import Copy
from mason.ir.patterns import PatternMatcher, clean_path

_MAX_LINKS = 40


@dataclass(frozen=True)
class Selection:
    checksum: str  # "sha256:…"
    files: dict[str, str] = field(default_factory=dict, compare=False)  # context path → short digest


def _extra(e) -> str:
    if e.kind == "file":
        return e.sha256
    if e.kind == "symlink":
        return e.target
    if e.rdev:
        return f"{e.rdev >> 8},{e.rdev & 0xff}"
    return ""


class ContextIndex:
    """The scan of one local source as a tree (context-relative, ``/``-separated paths)."""

    def __init__(self, scan):
        self.scan = scan
        self.entries = {e.rel: e for e in scan.entries}
        self.children: dict[str, list[str]] = {"": []}
        for e in scan.entries:  # walk order: parents first
            parent, _, name = e.rel.rpartition("/")
            self.children.setdefault(parent, []).append(name)
            if e.kind == "dir":
                self.children.setdefault(e.rel, [])
        for names in self.children.values():
            names.sort()
        self._memo: dict[object, Selection] = {}

    # -- path resolution (as fsutil.Root.resolve does in the snapshot) ----------------------

    def resolve(self, path: str, follow_final: bool) -> str | None:
        """The context-relative path ``path`` leads to ("" = the root), or None if some
        component does not exist (or is not a directory where one is needed)."""
        todo = [p for p in clean_path("/" + path).split("/") if p]
        todo.reverse()
        cur: list[str] = []
        links = 0
        while todo:
            name = todo.pop()
            if name == "..":
                if cur:
                    cur.pop()
                continue
            rel = "/".join(cur + [name])
            e = self.entries.get(rel)
            if e is None:
                return None
            if e.kind == "symlink" and (todo or follow_final):
                links += 1
                if links > _MAX_LINKS:
                    return None
                target = [p for p in e.target.split("/") if p and p != "."]
                if e.target.startswith("/"):
                    cur = []
                todo.extend(reversed(target))
                continue
            if todo and e.kind != "dir":
                return None
            cur.append(name)
        return "/".join(cur)

    def _wildcards(self, path: str, follow: bool) -> list[str]:
        """fsutil's ResolveWildcards over the tree: matching container paths, lexical order,
        symlinks not followed below the literal prefix."""
        parts = [p for p in clean_path("/" + path).split("/") if p]
        k = next((i for i, p in enumerate(parts) if has_wildcard(p)), None)
        if k is None:
            return [path]
        regexes = [match_regex(p) for p in parts[k:]]
        if any(r is None for r in regexes):
            return []
        base = self.resolve("/".join(parts[:k]), follow)
        if base is None or (base and self.entries[base].kind != "dir"):
            return []
        out: list[str] = []
        prefix = "/" + "/".join(parts[:k]) if k else ""

        def below(rel: str, shown: str, rx: list) -> None:
            for name in self.children.get(rel, ()):
                if not rx[0].fullmatch(name):
                    continue
                child = f"{rel}/{name}" if rel else name
                if len(rx) == 1:
                    out.append(f"{shown}/{name}")
                elif self.entries[child].kind == "dir":
                    below(child, f"{shown}/{name}", rx[1:])

        below(base, prefix, regexes)
        return out

    # -- selections ---------------------------------------------------------------------------

    def _subtree(self, top: str, h, files: dict[str, str], inc: PatternMatcher | None,
                 exc: PatternMatcher | None) -> None:
        """Hash ``top``'s entry and everything below it, relative names, sorted; iterative."""
        stack = [("", top)]
        while stack:
            rel, full = stack.pop()
            e = self.entries.get(full) if full else None
            kind = e.kind if e is not None else "dir"
            mode = e.mode if e is not None else 0o755
            include = True
            if rel:
                if inc is not None and not inc.excluded(rel):
                    include = False
                if exc is not None and exc.excluded(rel):
                    if kind == "dir" and exc.can_skip_dir(rel):
                        continue
                    include = False
            if include or kind == "dir":
                line = f"{rel}\0{kind}\0{mode:o}\0{_extra(e) if e is not None else ''}\n"
                h.update(line.encode("utf-8", "surrogateescape"))
                if kind != "dir":
                    files[full] = _brief(e)
            if kind == "dir":
                for name in reversed(self.children.get(full, ())):
                    stack.append((f"{rel}/{name}" if rel else name, f"{full}/{name}" if full else name))

    def select_copy(self, a: Copy) -> Selection:
        """What a copy action reads from this source."""
        key = ("copy", a.src, a.follow_symlink, a.allow_wildcard, a.include_patterns, a.exclude_patterns,
               a.required_paths)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        h = hashlib.sha256(b"mason.contenthash.copy.v1\0")
        files: dict[str, str] = {}
        matches = self._wildcards(a.src, a.follow_symlink) if a.allow_wildcard else [a.src]
        inc = PatternMatcher(a.include_patterns) if a.include_patterns else None
        exc = PatternMatcher(a.exclude_patterns) if a.exclude_patterns else None
        for s in matches:
            target = self.resolve(s, a.follow_symlink)
            h.update(f"match\0{s}\0{'-' if target is None else target}\n".encode("utf-8", "surrogateescape"))
            if target is None:
                files[clean_path("/" + s).lstrip("/")] = "missing"
                continue
            self._subtree(target, h, files, inc, exc)
        sel = self._memo[key] = Selection("sha256:" + h.hexdigest(), files)
        return sel

    def select_tree(self, path: str) -> Selection:
        """Everything below ``path`` (symlinks on the way followed): a mount's selector."""
        key = ("tree", path)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        h = hashlib.sha256(b"mason.contenthash.tree.v1\0")
        files: dict[str, str] = {}
        target = self.resolve(path, True)
        h.update(f"tree\0{path}\0{'-' if target is None else target}\n".encode("utf-8", "surrogateescape"))
        if target is not None:
            self._subtree(target, h, files, None, None)
        sel = self._memo[key] = Selection("sha256:" + h.hexdigest(), files)
        return sel

    def select_all(self) -> Selection:
        return self.select_tree("/")


def _brief(e) -> str:
    """What ``--explain`` keeps of an entry: kind, mode, and a short content digest (the link
    target for symlinks)."""
    if e.kind == "file":
        return f"f{e.mode:o}:{e.sha256.split(':', 1)[-1][:12]}"
    if e.kind == "symlink":
        return f"l:{e.target}"
    return f"{e.kind[0]}{e.mode:o}:{_extra(e)}"


def combine(parts: list[str]) -> str:
    """One checksum over several selections from the same input (in action order)."""
    if len(parts) == 1:
        return parts[0]
    h = hashlib.sha256(b"mason.contenthash.multi.v1\0")
    for p in parts:
        h.update(p.encode() + b"\n")
    return "sha256:" + h.hexdigest()


__all__ = ["ContextIndex", "Selection", "combine"]
