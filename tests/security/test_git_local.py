"""Host-path git sources (issue 11): a ``git.fullurl`` of ``file:///…`` or a plain path in
hand-made LLB would have mason's own git read the host's repositories, with no grant. Refused
unless ``--allow git.local``; checked with the other entitlements, before any cache lookup."""

from __future__ import annotations

import subprocess

import pytest

from mason.backends.sources.git import is_local, parse_git_identifier
from mason.ir.builder import bind, git, image
from mason.ir.errors import MasonError

GENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}


@pytest.mark.parametrize("url, local", [
    ("file:///srv/repo.git", True),
    ("FILE:///srv/repo.git", True),
    ("/srv/repo.git", True),
    ("https://example.com/r.git", False),
    ("git@example.com:r.git", False),
    ("ssh://git@example.com/r.git", False),
    ("git://example.com/r.git", False),
    ("relative/path", False),  # refused as an invalid URL when loaded
])
def test_local_git_urls(url, local):
    assert is_local("git://example.com/r", {"git.fullurl": url}) is local
    if local:
        with pytest.raises(MasonError, match="needs the git.local entitlement"):
            parse_git_identifier("git://example.com/r", {"git.fullurl": url})
        assert parse_git_identifier("git://example.com/r", {"git.fullurl": url}, allow_local=True).scheme == "file"


@pytest.fixture
def host_repo(tmp_path):
    work = tmp_path / "hostrepo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], env=GENV, check=True)
    (work / "host-secret.txt").write_text("from the host\n")
    subprocess.run(["git", "add", "-A"], cwd=work, env=GENV, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "x"], cwd=work, env=GENV, check=True)
    return work


@pytest.mark.integration
@pytest.mark.parametrize("form", ["file", "path"])
def test_host_git_repository_needs_git_local(build_env, tmp_path, host_repo, form):
    env = build_env
    url = f"file://{host_repo}" if form == "file" else str(host_repo)
    st = image(env.base).run("cat /in/host-secret.txt > /got", mounts=[bind(git(url, "main"), "/in")]).root()
    path = tmp_path / "def.llb"
    path.write_bytes(st.marshal())
    p = env.cli("solve", "--allow", "git.local", str(path))
    assert p.returncode == 0, p.stderr  # with the grant: it is read (and cached)
    p = env.cli("solve", "--progress=plain", str(path))
    assert p.returncode == 1, p.stderr
    assert "--allow git.local" in p.stderr and "CACHED" not in p.stderr and "Traceback" not in p.stderr
