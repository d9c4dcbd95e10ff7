"""Property tests for mason.ir.patterns: the compiled matcher agrees with a slow, direct
reading of moby's rules, and a walk that prunes with can_skip_dir sees exactly what a walk
of every path sees."""

from __future__ import annotations

from functools import lru_cache

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mason.ir.patterns import PatternMatcher, parse_pattern

# -- a reference matcher, written for clarity rather than speed ---------------------------------


def _tokens(p: str) -> list:
    out, i = [], 0
    while i < len(p):
        c = p[i]
        i += 1
        if c == "*" and i < len(p) and p[i] == "*":
            i += 1
            if i < len(p) and p[i] == "/":
                i += 1
            out.append(("**end",) if i >= len(p) else ("**",))
        elif c == "*":
            out.append(("*",))
        elif c == "?":
            out.append(("?",))
        elif c == "\\":
            out.append(("lit", p[i]))
            i += 1
        elif c == "[":
            neg = p[i] == "^"
            if neg:
                i += 1
            ranges = []
            while True:
                if p[i] == "]" and ranges:
                    i += 1
                    break
                if p[i] == "\\":
                    i += 1
                lo = hi = p[i]
                i += 1
                if p[i] == "-":
                    if p[i + 1] == "\\":
                        i += 1
                    hi = p[i + 1]
                    i += 2
                ranges.append((lo, hi))
            out.append(("class", neg, tuple(ranges)))
        else:
            out.append(("lit", c))
    return out


def ref_pattern_matches(p: str, path: str) -> bool:
    if p.startswith("**") and not any(c in p[2:] for c in "*?[]\\"):
        suffix = p[2:]
        return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
    toks = _tokens(p)

    @lru_cache(maxsize=None)
    def m(t: int, i: int) -> bool:
        if t == len(toks):
            return i == len(path)
        tok = toks[t]
        kind = tok[0]
        if kind == "**end":
            return True
        if kind == "**":
            # nothing, or anything up to and including some later "/"
            return m(t + 1, i) or any(
                m(t + 1, j + 1) for j in range(i, len(path)) if path[j] == "/")
        if kind == "*":
            j = i
            while True:
                if m(t + 1, j):
                    return True
                if j == len(path) or path[j] == "/":
                    return False
                j += 1
        if i == len(path):
            return False
        c = path[i]
        if kind == "?":
            ok = c != "/"
        elif kind == "lit":
            ok = c == tok[1]
        else:
            ok = any(lo <= c <= hi for lo, hi in tok[2]) != tok[1]
        return ok and m(t + 1, i + 1)

    return m(0, 0)


def ref_excluded(patterns: list[str], path: str) -> bool:
    """moby's MatchesOrParentMatches: the last pattern matching the path or a parent decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    result = False
    for raw in patterns:
        p = parse_pattern(raw)
        if p is None:
            continue
        if any(ref_pattern_matches(p.text, c) for c in candidates):
            result = not p.negated
    return result


# -- generated trees and patterns -----------------------------------------------------------------

NAMES = ["a", "b", "ab", "c.txt", "d.log", "x y"]
SEGMENTS = ["a", "b", "ab", "*", "?", "**", "a*", "*.log", "*.txt", "[ab]", "[^a]*", "c.txt",
            "\\a", "x y", "**.log", "?b", "[a-c]b"]

paths_strategy = st.lists(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map("/".join),
    min_size=1, max_size=25)

pattern_strategy = st.builds(
    lambda neg, lead, segs, trail: ("!" if neg else "") + lead + "/".join(segs) + trail,
    st.booleans(), st.sampled_from(["", "", "/", "./"]),
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3), st.sampled_from(["", "", "/"]))


def make_tree(leaves: list[str]) -> tuple[set[str], dict[str, list[str]]]:
    """All paths (leaves and their parent directories) and each directory's children."""
    every: set[str] = set()
    children: dict[str, set[str]] = {".": set()}
    for leaf in leaves:
        parts = leaf.split("/")
        for k in range(1, len(parts) + 1):
            path = "/".join(parts[:k])
            every.add(path)
            parent = "/".join(parts[:k - 1]) or "."
            children.setdefault(parent, set()).add(path)
    return every, {d: sorted(c) for d, c in children.items()}


@settings(max_examples=250, deadline=None)
@given(leaves=paths_strategy, patterns=st.lists(pattern_strategy, max_size=6))
def test_matcher_agrees_with_reference(leaves: list[str], patterns: list[str]) -> None:
    pm = PatternMatcher(patterns)
    every, _ = make_tree(leaves)
    for path in every:
        assert pm.match(path).excluded == ref_excluded(patterns, path), (path, patterns)


@settings(max_examples=250, deadline=None)
@given(leaves=paths_strategy, patterns=st.lists(pattern_strategy, max_size=6))
@example(leaves=["a/a"], patterns=["a", "!a/a"])
@example(leaves=["a/b/c.txt", "a/d.log"], patterns=["**", "!**/*.txt"])
@example(leaves=["x y/ab/b", "b/a"], patterns=["*", "!*/a*"])
@example(leaves=["ab/b/d.log"], patterns=["a*", "!**.log", "ab/b"])
def test_pruned_walk_sees_what_a_full_walk_sees(leaves: list[str], patterns: list[str]) -> None:
    pm = PatternMatcher(patterns)
    every, children = make_tree(leaves)
    brute = {p for p in every if not pm.match(p).excluded}

    seen: set[str] = set()

    def walk(directory: str) -> None:
        for child in children.get(directory, []):
            if child in children and pm.can_skip_dir(child):
                # sound: nothing beneath a skipped directory is included
                assert pm.match(child).excluded
                assert not any(p == child or p.startswith(child + "/") for p in brute)
                continue
            if not pm.match(child).excluded:
                seen.add(child)
            walk(child)

    walk(".")
    assert seen == brute


@settings(max_examples=200, deadline=None)
@given(leaves=paths_strategy, patterns=st.lists(pattern_strategy.filter(
    lambda p: not p.startswith("!")), max_size=5))
def test_without_exceptions_every_excluded_dir_can_be_skipped(
        leaves: list[str], patterns: list[str]) -> None:
    pm = PatternMatcher(patterns)
    every, children = make_tree(leaves)
    for d in children:
        if d != ".":
            assert pm.can_skip_dir(d) == pm.match(d).excluded
