"""A step that runs again gives a new result: ``no_cache`` commits a snapshot of its own (never an
earlier run's under the same name), its record replaces the key's earlier one, and a later
cached solve finds the newest. Two concurrent ``no_cache`` solves sharing a step still run it
once (the key's claim; the second takes what the first made during its build)."""

from __future__ import annotations

import threading

import pytest

from mason.backends.solver.cachekey import output_key
from mason.backends.solver.events import Recorder, VertexCached, VertexStarted
from mason.backends.solver.solver import SolveOptions
from mason.ir.builder import image, mkfile
from mason.ir.graph import Graph
from tests.backends.solver.test_solver_exec import read

pytestmark = pytest.mark.integration

RUN = "sleep 1; cat /proc/uptime > /stamp"


def solve(solver, state, **kw):
    rec = Recorder()
    out = solver.solve(Graph.of(state.ref), options=SolveOptions(**kw), events=rec)
    return out["default"], rec


def ran(rec) -> list[str]:
    return [e.name for e in rec.of(VertexStarted) if not e.name.startswith("docker-image://")]


def test_no_cache_commits_a_new_snapshot_and_replaces_the_record(solver, busybox_image, containerd_env):
    st = image(busybox_image.ref).run(RUN).root().file(mkfile("/after", b"x"))
    first, _ = solve(solver, st)
    again, rec = solve(solver, st, no_cache=True)
    assert len(ran(rec)) == 2  # the RUN and the file op
    assert again.result.snapshot != first.result.snapshot
    assert read(containerd_env, again.result, "/stamp") != read(containerd_env, first.result, "/stamp")
    # both snapshots exist: the old one is only dropped by prune
    assert containerd_env.client.snapshot_exists(first.result.snapshot)
    rec_ = solver.store.get(output_key(again.cache_key, 0))
    assert rec_.result.snapshot == again.result.snapshot
    # a cached solve afterwards is the newest result, with nothing run
    cached, rec = solve(solver, st)
    assert ran(rec) == [] and len(rec.of(VertexCached)) == 2
    assert cached.result.snapshot == again.result.snapshot


def test_concurrent_no_cache_solves_run_a_shared_step_once(solver, busybox_image, containerd_env):
    st = image(busybox_image.ref).run(RUN).root()
    solve(solver, st)  # an old result the no-cache solves must not take
    gate = threading.Barrier(2)
    outs: list = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            gate.wait(10)
            outs.append(solve(solver, st, no_cache=True))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    runs = sorted(len(ran(rec)) for _, rec in outs)
    assert runs == [0, 1], runs  # one ran it, the other waited on the claim and took its result
    (a, _), (b, _) = outs
    assert a.result.snapshot == b.result.snapshot
