"""The executor's levers on the solver (``group_shims``, ``background_delete``,
``mount_rootfs``): each reaches the build's :class:`Executor`, and a step runs with every one
off (the shim mounts the rootfs, one shim per step, deletes in line)."""

from __future__ import annotations

import pytest

from mason.backends.containerd import exec as cexec
from mason.backends.solver.solver import SolveOptions
from mason.ir.builder import image
from mason.ir.graph import Graph
from tests.backends.solver.test_solver_exec import read

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("on", [False, True])
def test_executor_levers_reach_the_build(solver, busybox_image, containerd_env, monkeypatch, on):
    made: list[dict] = []
    original = cexec.Executor.__init__

    def init(self, *a, **kw):
        made.append({k: kw.get(k) for k in ("group_shims", "background_delete", "mount_rootfs")})
        original(self, *a, **kw)

    monkeypatch.setattr(cexec.Executor, "__init__", init)
    solver.group_shims = solver.background_delete = solver.mount_rootfs = on
    st = image(busybox_image.ref).run(f"echo levers-{on} > /out").root()
    out = solver.solve(Graph.of(st.ref), options=SolveOptions())["default"]
    assert made == [{"group_shims": on, "background_delete": on, "mount_rootfs": on}]
    assert read(containerd_env, out.result, "/out") == f"levers-{on}\n".encode()
    assert containerd_env.client.list_tasks() == []
