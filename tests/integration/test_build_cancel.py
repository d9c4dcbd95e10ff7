"""Cancellation: the first failure stops a parallel build's other steps, and Ctrl-C stops a
build; either way nothing is left running in containerd and no step snapshot outlives the
build's lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration


def test_failure_cancels_parallel_stage(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base} AS slow\nRUN sleep 60\n"
        f"FROM {env.base} AS bad\nRUN sleep 1; exit 5\n"
        "FROM scratch\nCOPY --from=slow /bin/sh /a\nCOPY --from=bad /bin/sh /b\n")})
    t0 = time.monotonic()
    p = env.cli("build", "--progress=plain", str(ctx))
    took = time.monotonic() - t0
    assert p.returncode == 1
    assert "exit code: 5" in p.stderr and "CANCELED" in p.stderr
    assert took < 30, took  # the 60 s sleep was killed, not waited for
    assert clean(env.leftovers()), env.leftovers()


def test_ctrl_c_stops_build_cleanly(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nRUN echo started; sleep 60\n"})
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(ctx)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=e, text=True)
    lines = []
    deadline = time.monotonic() + 60
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if line.rstrip().endswith(" started"):
                break
            assert time.monotonic() < deadline
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()  # type: ignore[union-attr]
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 130, "".join(lines) + rest
    assert ("interrupted" in rest or "aborted" in rest) and "Traceback" not in rest
    assert clean(env.leftovers()), env.leftovers()
