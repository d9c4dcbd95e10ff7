"""A build killed with ``kill -9`` while a later RUN runs: the next build re-runs only the steps
that had not finished (each RUN prints a marker), and ``mason prune --force`` (without
``--all``) then keeps every snapshot a cache record or an image references, and removes the
rest (as ``ctr snapshots ls`` sees them)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DF = """\
FROM {base}
RUN echo "RAN-$(echo s1)" && echo {nonce} > /one
RUN echo "RAN-$(echo s2)" && echo two > /two
RUN --mount=type=cache,id={cid},target=/m sh -c 'echo "RAN-$(echo s3)"; if [ ! -e /m/crashed ]; then touch /m/crashed; echo "SLEEP""ING-NOW"; sleep 120; fi'
RUN echo "RAN-$(echo s4)" && echo four > /four
"""


def ctr_snapshots(env) -> set[str]:
    p = subprocess.run(["ctr", "--address", env.address, "-n", "mason", "snapshots", "ls"], capture_output=True,
                       text=True, check=True)
    return {line.split()[0] for line in p.stdout.splitlines()[1:] if line.strip()}


def test_kill_9_then_rebuild_and_prune(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=env.base, nonce=uuid.uuid4().hex,
                                                           cid=f"it-crash-{uuid.uuid4().hex[:8]}")})
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    baseline = ctr_snapshots(env)  # other tests' (the session containerd is shared)
    p = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(ctx)], env=e,
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    first: list[str] = []
    try:
        deadline = time.monotonic() + 120
        for line in p.stderr:
            first += re.findall(r"RAN-(\w+)", line)
            if "SLEEPING-NOW" in line or time.monotonic() > deadline:
                break
        assert "s3" in first, first
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert first == ["s1", "s2", "s3"]

    p = env.cli("build", "--progress=plain", "-t", "it-crash", str(ctx))
    assert p.returncode == 0, p.stderr
    assert re.findall(r"RAN-(\w+)", p.stderr) == ["s3", "s4"]  # s1, s2 had finished: reused

    # prune without --all: what records and images reference stays, the rest goes
    from mason.backends.solver.gc_refs import Namespace
    from mason.backends.solver.store import ResultStore

    p = env.cli("prune", "--force")
    assert p.returncode == 0, p.stderr
    left = ctr_snapshots(env)
    ns = Namespace.read(env.client)
    with ResultStore(env.root) as store:
        records = store.records()
    assert len(records) >= 4  # s1..s4
    referenced = set().union(*(r.result.snapshots() for r in records)) | ns.image_snapshots()
    assert referenced <= left, referenced - left
    ours = left - baseline
    assert ours <= ns.ancestors(referenced), ours - ns.ancestors(referenced)
    # and the next build still runs nothing
    p = env.cli("build", "--progress=plain", str(ctx))
    assert p.returncode == 0 and re.findall(r"RAN-(\w+)", p.stderr) == [], p.stderr
