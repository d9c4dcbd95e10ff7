"""Git sources: what one repository's snapshot may give another (issue 11)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mason.backends.solver.mounts import mounted_view
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def test_kept_git_dir_is_not_shared_between_remotes_with_one_commit(build_env, tmp_path, auth_server):
    """With ``--keep-git-dir`` the snapshot records its origin: a build from repository B at
    the commit A had must get B's ``.git/config``, not the one A's build left (the snapshot
    was named by commit only)."""
    env, srv = build_env, auth_server
    shutil.copytree(srv.git / "repo.git", srv.git / "other.git")
    sha = subprocess.run(["git", "--git-dir", str(srv.git / "repo.git"), "rev-parse", "main"], check=True,
                         capture_output=True, text=True).stdout.strip()
    origins = {}
    for name in ("repo", "other"):
        ctx = write(tmp_path / name, {"Dockerfile": (
            f"FROM {env.base}\nADD --keep-git-dir=true {srv.url(f'/git/{name}.git')}#{sha} /src/\n")})
        res, _ = env.build(ctx)
        with mounted_view(env.lease_client, res.result.snapshot) as root:
            origins[name] = (root / "src" / ".git" / "config").read_text()
    assert "/git/repo.git" in origins["repo"] and "/git/other.git" not in origins["repo"]
    assert "/git/other.git" in origins["other"], origins["other"]
