"""Dockerfile lowering speed: the generated 10,000-instruction Dockerfile of ``parse_bench.py``
(20 stages of mixed RUN/ENV/COPY/LABEL/WORKDIR/ARG/EXPOSE…) lowered with an in-memory resolver
(no network, like ``--no-resolve``) and run through ``-O1``; prints milliseconds per phase
(parse, instructions, lower, each pass) and the size of the result.

    .venv/bin/python bench/lower_bench.py [--instructions N] [--repeat R]

For scale: BuildKit v0.11.6's dockerfile2llb took 18 min 49 s on such a file (83 MB of output,
every RUN carrying the whole accumulated env). Never asserts anything.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.parse_bench import generate  # noqa: E402
from mason.driver import pipeline_for  # noqa: E402
from mason.frontends.dockerfile.frontend import DockerfileLowering  # noqa: E402
from mason.frontends.dockerfile.lower import LowerOptions  # noqa: E402
from mason.ir.codec import encode_graph  # noqa: E402
from mason.ir.resolver import InMemoryResolver, PlatformSpec  # noqa: E402
from mason.passes import parse_pipeline  # noqa: E402

BASE = {"architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"], "WorkingDir": "/"}}


def resolver() -> InMemoryResolver:
    r = InMemoryResolver()
    for i in range(37):
        r.add(f"busybox:1.{i}", BASE)
    return r


def run_once(text: str) -> dict[str, float]:
    times: dict[str, float] = {}
    fe = DockerfileLowering(LowerOptions(platform=PlatformSpec.parse("linux/amd64")), resolver())
    graph = fe.lower(text, "Dockerfile")
    times.update(fe.timings)
    for p in parse_pipeline(pipeline_for(1, None, None)):
        t0 = time.perf_counter()
        graph = p.run(graph)
        times[f"pass {p}"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    data = encode_graph(graph)
    times["encode"] = (time.perf_counter() - t0) * 1000
    times["_bytes"] = sum(len(d) for d in data)
    times["_ops"] = len(graph.ops())
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instructions", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    text = generate(args.instructions)
    runs = []
    for _ in range(args.repeat):
        gc.collect()
        runs.append(run_once(text))
    keys = [k for k in runs[0] if not k.startswith("_")]
    print(f"lowering {args.instructions} instructions ({len(text.splitlines())} lines), "
          f"median of {args.repeat} runs:")
    total = 0.0
    for k in keys:
        ms = statistics.median(r[k] for r in runs)
        total += ms
        print(f"  {ms:10.1f} ms  {k}")
    print(f"  {total:10.1f} ms  total")
    print(f"  result: {runs[0]['_ops']} ops, {runs[0]['_bytes'] / 1e6:.1f} MB of LLB")


if __name__ == "__main__":
    main()
