"""CVE-2024-23652 (BuildKit "mount stub cleaner" deletes host files): a step swaps the parent
of one of its mount points for a symlink to a host directory; removing the mount-point stubs
after the step must not follow it. One test per mount type that leaves a stub: bind, tmpfs,
secret (a file stub)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def _swap(target_parent: str, host: str) -> str:
    return f"mv {target_parent} {target_parent}_old && ln -s {host} {target_parent}"


@pytest.mark.parametrize("kind", ["bind", "tmpfs"])
def test_cve_2024_23652_stub_cleanup_stays_in_snapshot(build_env, tmp_path, canary, kind):
    env = build_env
    canary.dir("victimdir")  # empty: what the stub cleaner would rmdir
    canary.dir("keep")
    canary.record()
    mount = "type=bind,target=/x/victimdir" if kind == "bind" else "type=tmpfs,target=/x/victimdir"
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        f"RUN --mount={mount} sh -c '{_swap('/x', str(canary.path))} && ls -la / >/dev/null'\n")})
    res, _ = env.build(ctx)
    assert res.result.snapshot  # the build itself is fine: the stub simply stays
    canary.assert_untouched()


def test_cve_2024_23652_secret_stub_cleanup_stays_in_snapshot(build_env, tmp_path, canary):
    env = build_env
    canary.file("victimfile", b"")  # empty: what the stub cleaner would unlink
    canary.record()
    secret = tmp_path / "s.txt"
    secret.write_text("hunter2-value")
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        f"RUN --mount=type=secret,id=s,target=/y/victimfile sh -c '{_swap('/y', str(canary.path))}'\n")})
    env.build(ctx, secrets=(f"id=s,src={secret}",))
    canary.assert_untouched()


def test_stubs_still_removed_when_untouched(build_env, tmp_path):
    """The fix keeps the cleanup: a stub whose parents are real directories goes."""
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN --mount=type=tmpfs,target=/newdir/sub true\n"
        "RUN test ! -e /newdir\n")})
    res, _ = env.build(ctx)  # the second RUN fails if the stub /newdir was left behind
    assert res.result.snapshot
