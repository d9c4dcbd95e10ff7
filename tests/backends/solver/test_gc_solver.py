"""Prune against the real solver's work, on a containerd of this module's own: after builds
(and after a build killed with ``kill -9`` in the middle of a RUN) prune without ``--all``
keeps every cached step — the next build runs nothing that had finished — and ``--all``
empties the cache."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mason.backends.solver.events import Recorder, VertexCached, VertexStarted
from mason.backends.solver.gc import prune
from mason.backends.solver.solver import SolveOptions, Solver
from mason.ir.builder import image
from mason.ir.graph import Graph
from tests.backends.solver.test_gc import ctr_snapshots, private_containerd

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def world():
    with private_containerd("gcsolve") as w:
        yield w


@pytest.fixture
def state(world):
    world.reset()
    root = Path(tempfile.mkdtemp(prefix="mason-gcsolve-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def solver_for(world, root: Path) -> Solver:
    return Solver(world.client, root, runc_root=str(world.daemon.runc_root), io_dir=str(world.daemon.io_dir))


def steps(ref: str, last: str = "echo three > /three"):
    return (image(ref).run("echo one > /one", network="none").run("echo two > /two", network="none")
            .run(last, network="none").root())


def solve(solver: Solver, st) -> Recorder:
    rec = Recorder()
    solver.solve(Graph.of(st.ref), options=SolveOptions(), events=rec)
    return rec


def ran(rec: Recorder) -> list[str]:
    return [e.name for e in rec.of(VertexStarted) if "echo" in e.name or "sleep" in e.name]


def test_prune_keeps_the_cache_of_real_builds(world, state, busybox_image) -> None:
    s = solver_for(world, state)
    try:
        solve(s, steps(busybox_image.ref))
        before = ctr_snapshots(world.address)
        report = prune(world.client, s.store)
        assert report.records == [] and report.snapshots == []
        assert ctr_snapshots(world.address) == before
        rec = solve(s, steps(busybox_image.ref))
        assert ran(rec) == [] and len(rec.of(VertexCached)) == 3

        report = prune(world.client, s.store, all=True)
        assert len(report.records) == 3 and report.freed > 0
        assert s.store.records() == [] and ctr_snapshots(world.address) == {world.busybox}
        rec = solve(s, steps(busybox_image.ref))
        assert len(ran(rec)) == 3
    finally:
        s.close()


def test_prune_after_a_build_killed_during_a_run(world, state, busybox_image, tmp_path) -> None:
    script = tmp_path / "build.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from mason.backends.containerd.client import Client
from mason.backends.solver.events import VertexStarted
from mason.backends.solver.solver import SolveOptions, Solver
from mason.ir.graph import Graph
from tests.backends.solver.test_gc_solver import steps
from tests.backends.solver.test_gc import World
c = Client({world.address!r})
class D: runc_root = {str(world.daemon.runc_root)!r}; io_dir = {str(world.daemon.io_dir)!r}
s = Solver(c, Path({str(state)!r}), runc_root=D.runc_root, io_dir=D.io_dir)
def sink(e):
    if isinstance(e, VertexStarted):
        print(e.name, flush=True)
s.solve(Graph.of(steps({busybox_image.ref!r}, "sleep 600").ref), options=SolveOptions(), events=sink)
""")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        for line in p.stdout:
            if "sleep 600" in line or time.monotonic() > deadline:
                break
        time.sleep(1.0)  # the RUN is running now
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    s = solver_for(world, state)
    try:
        kept = {r.result.snapshot for r in s.store.records()}
        assert len(kept) == 2  # "echo one", "echo two" finished and were recorded
        prune(world.client, s.store)
        left = ctr_snapshots(world.address)
        assert kept <= left
        # what is left is what the records need and their parents; nothing of the killed RUN
        from mason.backends.solver.gc_refs import Namespace

        ns = Namespace.read(world.client)
        needed = ns.ancestors(set().union(*(r.result.snapshots() for r in s.store.records())))
        assert left - {world.busybox} <= needed, left - needed
        assert world.client.list_containers() == []  # the killed build's step and shim anchor
        # its build lease names a dead owner: stale, gone
        assert not [lid for lid, labels in world.client.list_leases().items() if labels.get("mason.build")]
        rec = solve(s, steps(busybox_image.ref))
        assert ran(rec) == ["/bin/sh -c 'echo three > /three'"]
    finally:
        s.close()
