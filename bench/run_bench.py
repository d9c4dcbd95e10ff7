"""Per-RUN cost of whole builds: a Dockerfile with 21 sequential trivial RUNs against one with
1 RUN, cold (``--no-cache``), through the real driver (frontend → passes → solver). Per-RUN
cost = (t21 − t1) / 20, for each network mode: RUN's default network on the CNI bridge (a
namespace from the pool per step), the default network as the host's (buildkitd without CNI),
and ``--network=none``; then a warm (fully cached) rebuild. Prints
figures; asserts nothing. BuildKit's OCI worker measured ≈ 0.07–0.08 s per RUN here.

    .venv/bin/python bench/run_bench.py [--rounds 5] [--root DIR] [--modes bridge,host,none]

Starts a private containerd under a temporary root (or ``--root``) and stops it afterwards.
The base stage is busybox on scratch (no registry).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mason.backends.containerd.daemon import ManagedContainerd  # noqa: E402
from mason.driver import BuildRequest, build  # noqa: E402

BASE = 'FROM scratch AS base\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nFROM base\n'


# (name, label, the build's default network, the RUNs' --network)
MODES = [("bridge", "default net (CNI bridge)", "default", "default"),
         ("host", "default net (host)", "host", "default"),
         ("none", "--network=none", "host", "none")]


def dockerfile(runs: int, network: str) -> str:
    flag = f"--network={network} " if network == "none" else ""
    return BASE + "".join(f"RUN {flag}echo step{i} > /step{i}\n" for i in range(runs))


def context(d: Path, runs: int, network: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "Dockerfile").write_text(dockerfile(runs, network))
    shutil.copy2("/bin/busybox", d / "busybox")
    return d


def timed(ctx: Path, root: Path, *, no_cache: bool, network_default: str) -> float:
    t0 = time.perf_counter()
    build(BuildRequest(context=str(ctx), root=str(root), no_cache=no_cache, network_default=network_default))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--root", help="mason root (default: a temp dir)")
    ap.add_argument("--modes", default="bridge,host,none", help="which of bridge,host,none (default: all)")
    args = ap.parse_args()
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="mason-runbench-"))
    daemon = ManagedContainerd.at(root)
    started = not daemon.running()
    work = Path(tempfile.mkdtemp(prefix="mason-runbench-ctx-"))
    modes = [m for m in MODES if m[0] in args.modes.split(",")]
    try:
        daemon.ensure_running()
        print(f"{args.steps} sequential RUNs vs 1 RUN, cold (--no-cache), {args.rounds} rounds, medians\n")
        print(f"{'mode':<26} {'1 RUN':>8} {f'{args.steps} RUNs':>9} {'per RUN':>9}")
        for _, label, netdef, runnet in modes:
            one = context(work / f"one-{runnet}", 1, runnet)
            many = context(work / f"many-{runnet}", args.steps, runnet)
            timed(one, root, no_cache=True, network_default=netdef)  # warm-up
            timed(many, root, no_cache=True, network_default=netdef)
            t1, tn = [], []
            for _ in range(args.rounds):
                t1.append(timed(one, root, no_cache=True, network_default=netdef))
                tn.append(timed(many, root, no_cache=True, network_default=netdef))
            a, b = statistics.median(t1), statistics.median(tn)
            print(f"{label:<26} {a:8.3f} {b:9.3f} {(b - a) / (args.steps - 1):9.3f}")
        many = context(work / "many-none", args.steps, "none")
        warm = [timed(many, root, no_cache=False, network_default="host") for _ in range(args.rounds)]
        print(f"\nwarm rebuild of the {args.steps}-RUN build (everything cached, in-process): "
              f"{statistics.median(warm):.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started:
            daemon.stop()
            if not args.root:
                shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
