"""Build-context figures for the ``local://`` source: scan (walk + patterns + checksum) cold,
warm with the stat cache, after a ``touch`` of every file, and the copy into a directory.

    .venv/bin/python bench/context_bench.py [--files 20000] [--size 4096]

Prints seconds; asserts nothing (benchmarks never time-test).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from mason.backends.sources.local import copy_selection, scan_local


def make_context(root: Path, files: int, size: int) -> None:
    blob = os.urandom(size)
    for i in range(files):
        d = root / f"pkg{i % 100}" / f"mod{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_bytes(blob[: size - 8] + i.to_bytes(8, "little"))
    nm = root / "node_modules"
    for i in range(files // 2):
        d = nm / f"dep{i % 50}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"x{i}.js").write_bytes(b"x")
    old = time.time() - 3600  # out of the stat cache's racy window
    for dirpath, _, names in os.walk(root):
        for n in names:
            os.utime(os.path.join(dirpath, n), (old, old))


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<40} {time.perf_counter() - t0:8.3f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--size", type=int, default=4096)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mason-ctx-bench-"))
    try:
        ctx, cache = work / "ctx", work / "cache"
        timed(f"make {a.files} files (+{a.files // 2} ignored)", lambda: make_context(ctx, a.files, a.size))
        attrs = {"local.excludepatterns": '["node_modules", "**/*.pyc"]'}
        cold = timed("scan, no stat cache", lambda: scan_local(ctx, attrs))
        timed("scan, filling the stat cache", lambda: scan_local(ctx, attrs, cache_dir=cache))
        warm = timed("scan, warm stat cache", lambda: scan_local(ctx, attrs, cache_dir=cache))
        print(f"{'  files read on the warm scan':<40} {warm.hashed:8d}")
        assert warm.checksum == cold.checksum
        now = time.time() - 60
        for e in cold.entries:
            if e.kind == "file":
                os.utime(ctx / e.rel, (now, now))
        touched = timed("scan after touching every file", lambda: scan_local(ctx, attrs, cache_dir=cache))
        print(f"{'  same checksum after touch':<40} {str(touched.checksum == cold.checksum):>8}")
        dest = work / "copy"
        dest.mkdir()
        timed("copy the selection (hash-verified)", lambda: copy_selection(cold, dest))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
