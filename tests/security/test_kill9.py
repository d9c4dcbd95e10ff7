"""Issue 11 (suite: "SIGINT/SIGTERM/kill -9 mid-build with containerd and the cache checked
afterwards"): a ``mason build`` killed with SIGKILL in the middle of a RUN cleans nothing itself;
the next mason command that builds — or ``mason prune`` — finds what the dead process left (its
task and every process of it, the container, active snapshots, the build lease, the task's rootfs
mount) and removes it, and the databases pass ``PRAGMA integrity_check``."""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration.conftest import clean, write
from tests.security.test_signals import _containerd_dir, _db_ok, _mounts_under, _start, _step_pids, ctr_empty

pytestmark = pytest.mark.integration


def _kill9_mid_run(env, tmp_path, marker: str) -> None:
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\nRUN echo started; sh -c 'sleep 300; echo {marker}'; sleep 300\n")})
    proc, _ = _start(env, ctx)
    try:
        assert _step_pids(marker), "the RUN's processes should be running now"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = env.leftovers()
    assert left["build_leases"] and left["tasks"], left  # the dead build really left them
    assert list((env.root / "solver" / "tmp").glob("build-*")), "the dead build's scratch dir should be there"


@pytest.mark.parametrize("then", ["build", "prune"])
def test_kill9_mid_run_next_command_cleans(build_env, tmp_path, then):
    env = build_env
    marker = f"mason-kill9-{then}-{os.getpid()}"
    mounts_before = _mounts_under(env.root, _containerd_dir(env))
    _kill9_mid_run(env, tmp_path, marker)
    e = {"MASON_ROOT": str(env.root), "MASON_CONTAINERD_ADDRESS": env.address}
    if then == "build":
        ok = write(tmp_path / "ok", {"Dockerfile": f"FROM {env.base}\nRUN echo fine > /f\n"})
        p = env.cli("build", "--progress=plain", str(ok), env=e)
    else:
        p = env.cli("prune", "--force", env=e)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert clean(env.leftovers()), env.leftovers()
    ctr_empty(env)
    assert list((env.root / "solver" / "tmp").glob("build-*")) == [], "the dead build's scratch dir stayed"
    assert _step_pids(marker) == [], "the killed build's step was never reaped"
    assert _mounts_under(env.root, _containerd_dir(env)) == mounts_before
    _db_ok(env.root)


def test_kill9_then_daemon_stop_leaves_no_mount_under_the_root(build_env, tmp_path):
    """Issue 11 gap: after a killed build, ``mason daemon stop`` (here: its stop on a root whose
    containerd is the session's) leaves no netns or rootfs mount under the root."""
    from mason.backends.containerd.daemon import ManagedContainerd

    env = build_env
    mounts_before = _mounts_under(env.root)
    _kill9_mid_run(env, tmp_path, f"mason-kill9-stop-{os.getpid()}")
    assert _mounts_under(env.root) != mounts_before  # the dead build's mounts are there
    ManagedContainerd.at(env.root).stop()
    assert _mounts_under(env.root) == mounts_before
