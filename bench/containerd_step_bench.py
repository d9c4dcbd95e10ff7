"""Per-step cost of the exec primitive on containerd: a chain of 21 trivial steps (prepare a
snapshot from the previous one → ``sh -c true`` → commit) against a lone step, with and without
the levers (shim grouping, background delete, and the rootfs mounted by mason rather than the
shim, which makes the settle wait for the parent's delete unnecessary). Prints figures; asserts
nothing.

    .venv/bin/python bench/containerd_step_bench.py [--steps 21] [--rounds 3] [--root DIR]

Starts a private containerd under a temporary root (or ``--root``) and stops it afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mason.backends.containerd.client import Client  # noqa: E402
from mason.backends.containerd.daemon import ManagedContainerd  # noqa: E402
from mason.backends.containerd.exec import Executor  # noqa: E402
from mason.backends.containerd.layers import import_layer  # noqa: E402
from mason.backends.containerd.spec import Process  # noqa: E402
from tests.fixtures.containerd import busybox_layer_tar  # noqa: E402

STEP = Process(args=("sh", "-c", "true"))
CONFIGS = [  # (label, group_shims, background_delete, mount_rootfs: mason mounts the overlay)
    ("plain", False, False, False),
    ("shim grouping", True, False, False),
    ("background delete", False, True, False),
    ("both levers", True, True, False),
    ("both + mason mounts", True, True, True),
]


def chain(ex: Executor, base: str, steps: int) -> tuple[list[float], dict[str, list[float]]]:
    """Run ``steps`` chained steps; per-step wall times and per-phase times."""
    c = ex.client
    parent, made, walls = base, [], []
    phases: dict[str, list[float]] = {}
    for _ in range(steps):
        name = f"bench-{uuid.uuid4().hex[:12]}"
        t0 = time.perf_counter()
        res = ex.run_step(STEP, parent, name)
        walls.append(time.perf_counter() - t0)
        assert res.exit_code == 0, res.stderr
        for k, v in res.timings.items():
            phases.setdefault(k, []).append(v)
        made.append(name)
        parent = name
    ex.flush()
    for name in reversed(made):  # children first
        c.remove_snapshot(name)
    return walls, phases


def ms(x: float) -> str:
    return f"{x * 1000:6.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=3, help="chains per configuration (medians over all)")
    ap.add_argument("--root", help="mason root for the private containerd (default: a temp dir)")
    args = ap.parse_args()

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="mason-bench-"))
    daemon = ManagedContainerd.at(root)
    started = not daemon.running()
    client = Client(daemon.ensure_running())
    try:
        client.ensure_namespace()
        with client.lease(expire=3600) as lc:
            base = import_layer(lc, busybox_layer_tar()).chain_id
            # Warm-up: page cache, first shim start, stub import.
            with Executor.for_daemon(lc, daemon) as ex:
                chain(ex, base, 3)
            print(f"containerd {client.version()}, {args.steps} chained steps x {args.rounds} rounds "
                  f"(`sh -c true`, prepare → run → commit), medians in ms\n")
            print(f"{'configuration':<22} {'1 step':>8} {'per step':>9} {'p90':>7}   "
                  f"{'settle':>6} {'mount':>6} {'task create':>11} {'start':>6} {'wait':>6} {'delete':>7} "
                  f"{'prep+commit':>11}")
            results = {label: ([], [], {}) for label, *_ in CONFIGS}
            for _ in range(args.rounds):  # configurations interleaved, so load drift hits all alike
                for label, group, bg, mnt in CONFIGS:
                    singles, walls, phases = results[label]
                    kw = dict(group_shims=group, background_delete=bg, mount_rootfs=mnt)
                    with Executor.for_daemon(lc, daemon, **kw) as ex:
                        w, _ = chain(ex, base, 1)  # a lone step: pays for the anchor's shim start
                        singles += w
                    with Executor.for_daemon(lc, daemon, **kw) as ex:
                        w, p = chain(ex, base, args.steps)
                    walls += w[1:]  # the first step of a chain pays for the anchor once
                    for k, v in p.items():
                        phases.setdefault(k, []).extend(v[1:])
            for label, *_ in CONFIGS:
                singles, walls, phases = results[label]
                med = {k: statistics.median(v) for k, v in phases.items()}
                p90 = statistics.quantiles(walls, n=10)[-1]
                print(f"{label:<22} {ms(statistics.median(singles)):>8} {ms(statistics.median(walls)):>9} "
                      f"{ms(p90):>7}   {ms(med['settle']):>6} {ms(med['rootfs_mount'] + med['rootfs_unmount']):>6} "
                      f"{ms(med['task_create']):>11} {ms(med['task_start']):>6} "
                      f"{ms(med['wait']):>6} {ms(med['delete']):>7} {ms(med['prepare'] + med['commit']):>11}")
    finally:
        client.close()
        if started:
            daemon.stop()
            if not args.root:
                shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
