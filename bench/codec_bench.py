"""Codec benchmark: encode (digests + Definition) and decode a generated 10,000-op graph.

    python bench/codec_bench.py [N_OPS] [RUNS]

Prints ops/second both ways (medians of RUNS runs). Each encode run builds fresh ops, so
digests are computed from scratch.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mason.ir.codec import decode_definition, marshal  # noqa: E402
from mason.ir.text import format_graph  # noqa: E402
from tests.ir.strategies import chain  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    enc, dec, txt = [], [], []
    data = b""
    for _ in range(runs):
        top = chain(n)
        t0 = time.perf_counter()
        data = marshal(top)
        t1 = time.perf_counter()
        dd = decode_definition(data)
        t2 = time.perf_counter()
        format_graph(dd)
        t3 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
        txt.append(t3 - t2)
    for label, xs in (("encode", enc), ("decode", dec), ("text", txt)):
        m = statistics.median(xs)
        print(f"{label:7s} {n} ops: median {m * 1000:8.1f} ms  {n / m:10,.0f} ops/s")
    print(f"definition size: {len(data):,} bytes")


if __name__ == "__main__":
    main()
