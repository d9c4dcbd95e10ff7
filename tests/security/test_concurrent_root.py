"""Issue 11 (suite: "6 concurrent builds on one root"): six ``mason build`` processes started at
once on one state root, sharing some steps and differing in others, all succeed; afterwards
containerd holds no task, container, active snapshot or build lease of theirs, every database
passes ``PRAGMA integrity_check``, and a rebuild of each runs no step (the cache they wrote
together is consistent)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.conftest import clean, write
from tests.security.test_signals import _db_ok

pytestmark = pytest.mark.integration


def test_six_concurrent_builds_on_one_root(build_env, tmp_path):
    env = build_env
    ctxs = []
    for i in range(6):
        ctxs.append(write(tmp_path / f"c{i}", {"f.txt": f"file {i % 2}\n", "Dockerfile": (
            f"FROM {env.base}\n"
            "RUN echo shared > /shared\n"  # the same step in all six
            f"RUN --mount=type=cache,id=cc,target=/cache sh -c 'echo {i} >> /cache/log; echo {i % 3} > /third'\n"
            "COPY f.txt /f.txt\n"
            f"RUN echo own-{i} > /own\n")}))
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    procs = [subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain",
                               "-o", f"type=local,dest={tmp_path / f'out{i}'}", str(c)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=e, text=True) for i, c in enumerate(ctxs)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err, err
    for i in range(6):
        out = tmp_path / f"out{i}"
        assert (out / "own").read_text() == f"own-{i}\n"
        assert (out / "shared").read_text() == "shared\n"
        assert (out / "f.txt").read_text() == f"file {i % 2}\n"
    assert clean(env.leftovers()), env.leftovers()
    _db_ok(env.root)
    for c in ctxs:
        p = env.cli("build", "--progress=plain", str(c))
        assert p.returncode == 0, p.stderr
        assert p.stderr.count(" CACHED") == 4 and " DONE " not in p.stderr, p.stderr
