"""Benchmarks for shell-word expansion and .dockerignore matching; prints figures.

    .venv/bin/python bench/shell_bench.py
"""

from __future__ import annotations

import random
import time

from mason.frontends.dockerfile.shell import ShellLex
from mason.ir.patterns import PatternMatcher, parse_dockerignore

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "APP": "/srv/app", "VERSION": "1.2.3",
       "NAME": "myapp", "EMPTY": ""}
WORDS = [
    "/usr/src/app",  # no specials: the fast path
    "$APP/bin",
    "${APP}/releases/${VERSION}",
    '"$NAME-${VERSION:-dev}.tar.gz"',
    "${VERSION%.*}",
    "${PATH//:/ }",
    "'literal $NOT'\\ escaped",
    "${UNSET:-${APP:+set}}",
]

DOCKERIGNORE = """\
# typical
.git
node_modules
**/node_modules
*.log
**/*.pyc
**/__pycache__
dist/
build/
!build/keep
coverage
.env
.env.*
*.md
!README.md
tmp/**
**/.DS_Store
docs/[a-c]*
vendor/**/testdata
.cache
"""


def timeit(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_shell() -> None:
    lex = ShellLex()
    n = 2000
    for word in WORDS:
        t = timeit(lambda word=word: [lex.process_word(word, ENV) for _ in range(n)])
        print(f"shell  process_word {word!r:40} {t / n * 1e6:8.2f} µs/word")
    t = timeit(lambda: [lex.process_words(w, ENV) for _ in range(n) for w in WORDS])
    print(f"shell  process_words (mix of {len(WORDS)})              "
          f"{t / (n * len(WORDS)) * 1e6:8.2f} µs/word")


def make_paths(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    names = ["src", "lib", "app", "node_modules", "build", "docs", "tests", "vendor", "pkg",
             "a", "b", "__pycache__", "testdata", "cmd"]
    files = ["main.py", "x.pyc", "index.js", "README.md", "notes.md", "debug.log", ".DS_Store",
             "go.mod", "data.json", "keep"]
    out = []
    for _ in range(count):
        depth = rng.randint(0, 5)
        out.append("/".join([rng.choice(names) for _ in range(depth)] + [rng.choice(files)]))
    return out


def bench_patterns() -> None:
    patterns = parse_dockerignore(DOCKERIGNORE)
    t = timeit(lambda: PatternMatcher(patterns))
    print(f"ignore compile {len(patterns)} patterns                     {t * 1e3:8.3f} ms")
    pm = PatternMatcher(patterns)
    paths = make_paths(10_000)
    t = timeit(lambda: [pm.match(p) for p in paths])
    excluded = sum(pm.match(p).excluded for p in paths)
    print(f"ignore match 10,000 paths x {len(patterns)} patterns          {t * 1e3:8.3f} ms"
          f"  ({excluded} excluded)")
    dirs = sorted({p.rsplit("/", 1)[0] for p in paths if "/" in p})
    t = timeit(lambda: [pm.can_skip_dir(d) for d in dirs])
    print(f"ignore can_skip_dir {len(dirs)} dirs                     {t * 1e3:8.3f} ms")


if __name__ == "__main__":
    bench_shell()
    bench_patterns()
