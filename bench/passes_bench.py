"""Pass timings on long chains: prints ms per pass for -O2 over 1k/10k/50k-op mixed chains
(exec, file and config ops, as ``tests.ir.strategies.chain`` builds them). Run:
``.venv/bin/python bench/passes_bench.py``."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mason.ir.graph import Graph  # noqa: E402
from mason.passes import LEVELS, run_pipeline  # noqa: E402
from tests.ir.strategies import chain  # noqa: E402


def main() -> None:
    for n in (1_000, 10_000, 50_000):
        t0 = time.perf_counter()
        op = chain(n)
        _ = op.digest
        built = (time.perf_counter() - t0) * 1000
        buf = io.StringIO()
        run_pipeline(Graph.of(op, {"config": {}}), LEVELS[2], time_passes=True, out=buf)
        rows = [ln.split() for ln in buf.getvalue().splitlines()[1:]]
        print(f"{n:>6} ops  build+digest {built:8.1f} ms  " + "  ".join(f"{name} {ms}" for ms, name in rows))


if __name__ == "__main__":
    main()
