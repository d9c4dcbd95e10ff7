"""``buildctl debug workers / debug info / du / prune`` (BuildKit v0.32.2's client) against
``mason serve``: the worker and version mason reports, and the cache records of a build made
on the same root, listed and then pruned through the daemon."""

from __future__ import annotations

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def test_workers_and_info(served):
    out = served.buildctl("debug", "workers").stdout.splitlines()
    assert out[0].split() == ["ID", "PLATFORMS"]
    assert out[1].split()[0] == "mason" and "linux/" in out[1]
    verbose = served.buildctl("debug", "workers", "-v").stdout
    assert "org.mobyproject.buildkit.worker.executor:\tcontainerd" in verbose
    assert "BuildKit:\tmason v" in verbose
    assert served.buildctl("debug", "info").stdout.startswith("BuildKit: mason v")


def test_du_and_prune_see_the_cache(served, tmp_path):
    env = served.env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN echo hi > /hi\n"})
    env.build(ctx)
    du = served.buildctl("du", "-v").stdout
    ids = [line.split()[1] for line in du.splitlines() if line.startswith("ID:")]
    assert ids, du
    assert "RUN echo hi > /hi" in du or "echo hi > /hi" in du
    assert "Total:" in served.buildctl("du").stdout

    pruned = served.buildctl("prune", "--all", "-v").stdout
    assert set(ids) <= {line.split()[1] for line in pruned.splitlines() if line.startswith("ID:")}
    after = served.buildctl("du", "-v").stdout
    assert not [line for line in after.splitlines() if line.startswith("ID:")], after


def test_filters_are_refused_clearly(served):
    p = served.buildctl("du", "--filter", "type==regular", check=False)
    assert p.returncode != 0
    assert "filters are not supported yet" in p.stderr
