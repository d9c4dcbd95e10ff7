"""Cancellation: the first failure stops a parallel build's other steps, and Ctrl-C stops a
build; either way nothing is left running in containerd and no step snapshot outlives the
build's lease."""

from __future__ import annotations

import pytest

from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration


def test_failure_cancels_parallel_stage(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base} AS slow\nRUN sleep 60 && echo slow-step-$((40+2))\n"
        f"FROM {env.base} AS bad\nRUN sleep 1; exit 5\n"
        "FROM scratch\nCOPY --from=slow /bin/sh /a\nCOPY --from=bad /bin/sh /b\n")})
    p = env.cli("build", "--progress=plain", str(ctx))
    assert p.returncode == 1
    assert "exit code: 5" in p.stderr and "CANCELED" in p.stderr
    assert "slow-step-42" not in p.stderr  # the 60 s sleep was killed, not waited for
    assert clean(env.leftovers()), env.leftovers()


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-default", "sigint-ignored-at-start"])
def test_ctrl_c_stops_build_cleanly(build_env, tmp_path, sigint_ignored):
    """Also when mason starts with SIGINT ignored (a background job of a script, a CI runner):
    it takes the signal back, as docker and buildctl do."""
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nRUN echo started; sleep 60\n"})
    rc, before, rest = env.interrupt(ctx, sigint_ignored=sigint_ignored)
    assert rc == 130, before + rest
    assert ("interrupted" in rest or "aborted" in rest) and "Traceback" not in rest
    assert clean(env.leftovers()), env.leftovers()
