"""Time ``mason llb dump`` on a long chain: decode through the typed IR, then json, dot,
buildkit-dot, text (and svg, html for small graphs); and ``record``: the graph every build keeps
with its history record (graph.json, made on a thread during the solve). Prints figures;
asserts nothing.

    .venv/bin/python bench/dump_bench.py [N ...]     # default: 1000 10000
"""

from __future__ import annotations

import hashlib
import sys
import time

from mason.backends.dump import dump_definition
from mason.ir.llb_pb import pb


def chain(n: int) -> bytes:
    """A Definition: one image source, then ``n`` execs each on the previous one."""
    P = pb()
    d = P.Definition()
    defs = getattr(d, "def")
    plat = P.Platform(Architecture="amd64", OS="linux")
    op = P.Op(source=P.SourceOp(identifier="docker-image://docker.io/library/busybox:latest"), platform=plat)
    for i in range(n + 1):
        data = op.SerializeToString(deterministic=True)
        defs.append(data)
        dg = "sha256:" + hashlib.sha256(data).hexdigest()
        d.metadata[dg].description["llb.customname"] = f"step {i}"
        op = P.Op(
            inputs=[P.Input(digest=dg)],
            exec=P.ExecOp(meta=P.Meta(args=["/bin/sh", "-c", f"echo {i} > /f{i}"], cwd="/"),
                          mounts=[P.Mount(input=0, dest="/", output=0)]),
            platform=plat,
        )
    defs.append(P.Op(inputs=[P.Input(digest=dg)]).SerializeToString(deterministic=True))
    return d.SerializeToString(deterministic=True)


def main(sizes: list[int]) -> None:
    for n in sizes:
        data = chain(n)
        formats = ["json", "dot", "buildkit-dot", "text"] + (["svg", "html"] if n <= 1000 else [])
        for fmt in formats:
            t0 = time.perf_counter()
            out = dump_definition(data, fmt)
            dt = time.perf_counter() - t0
            print(f"{n:>6} ops  {fmt:<12} {dt * 1000:8.1f} ms  {len(out) / 1e6:6.2f} MB  "
                  f"{dt / (n + 2) * 1e6:6.1f} µs/op")
        record(n, data)


def record(n: int, data: bytes) -> None:
    """What a build's record costs: the IR graph to graph.json (env masked), as mason/driver/records.py does."""
    import json

    from mason.backends.dump.graph import graph_from_ir
    from mason.ir.codec import decode_graph

    graph = decode_graph(data)
    t0 = time.perf_counter()
    text = json.dumps(graph_from_ir(graph, mask_env=True).to_json(), indent=1)
    dt = time.perf_counter() - t0
    print(f"{n:>6} ops  {'record':<12} {dt * 1000:8.1f} ms  {len(text) / 1e6:6.2f} MB  "
          f"{dt / (n + 2) * 1e6:6.1f} µs/op")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
