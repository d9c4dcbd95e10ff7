"""``git://`` sources from local bare repositories (``file://`` through ``git.fullurl``, and
``git daemon`` on 127.0.0.1), and option injection refused."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from mason.backends.containerd.client import Client
from mason.backends.sources import git as gitsource
from mason.backends.sources.git import parse_git_identifier
from mason.backends.sources.mount import mounted_view
from mason.ir.errors import MasonError
from tests.fixtures.registry import free_port

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
       "PATH": os.environ["PATH"], "HOME": "/nonexistent"}


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


class Repo:
    def __init__(self, base: Path):
        work = base / "work"
        work.mkdir()
        git("init", "-q", "-b", "main", str(work))
        (work / "a.txt").write_text("first\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "one", cwd=work)
        self.first = git("rev-parse", "HEAD", cwd=work)
        (work / "a.txt").write_text("a\n")
        (work / "sub").mkdir()
        (work / "sub/b.txt").write_text("b\n")
        (work / "run.sh").write_text("#!/bin/sh\n")
        (work / "run.sh").chmod(0o755)
        os.symlink("../a.txt", work / "sub/up-link")
        os.symlink("../../../..", work / "escape")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "two", cwd=work)
        self.main = git("rev-parse", "HEAD", cwd=work)
        git("tag", "-a", "v1", "-m", "release", cwd=work)
        git("checkout", "-q", "-b", "feature", cwd=work)
        (work / "sub/c.txt").write_text("c\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "three", cwd=work)
        self.feature = git("rev-parse", "HEAD", cwd=work)
        git("checkout", "-q", "main", cwd=work)
        self.bare = base / "repo.git"
        git("clone", "-q", "--bare", str(work), str(self.bare))
        self.url = f"file://{self.bare}"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo(tmp_path_factory.mktemp("gitrepo"))


def load_git(*args, **kw):
    """The fixture repositories are file:// ones: these tests have the git.local grant."""
    return gitsource.load_git(*args, allow_local=True, **kw)


def _attrs(repo: Repo, **kw: str) -> dict[str, str]:
    return {"git.fullurl": repo.url, **kw}


# -- parsing and injection (no containerd needed) ---------------------------------------------------


def test_parse_identifier() -> None:
    s = parse_git_identifier("git://github.com/moby/buildkit#v0.10:docs/x")
    assert (s.remote, s.scheme, s.ref, s.subdir, s.keep_git_dir) == (
        "https://github.com/moby/buildkit", "https", "v0.10", "docs/x", False)
    s = parse_git_identifier("git://github.com/moby/buildkit", {"git.keepgitdir": "true"})
    assert (s.ref, s.subdir, s.keep_git_dir) == ("HEAD", "", True)
    s = parse_git_identifier("git://x/y#main", {"git.fullurl": "git@github.com:moby/buildkit.git"})
    assert (s.remote, s.scheme) == ("git@github.com:moby/buildkit.git", "ssh")


def test_parse_identifier_takes_credentials_out_of_the_remote() -> None:
    """GHSA-gc89-7gcr-jxqc: git never sees the credentials (they go to a header), so neither
    its command line, its messages nor a kept .git/config can show them."""
    s = parse_git_identifier("git://h/r", {"git.fullurl": "https://alice:s3cret@h/r.git"})
    assert (s.remote, s.userinfo) == ("https://h/r.git", "alice:s3cret")
    assert "s3cret" not in repr(s)
    s = parse_git_identifier("git://h/r", {"git.fullurl": "ssh://git:s3cret@h/r.git"})
    assert (s.remote, s.userinfo) == ("ssh://git@h/r.git", "")  # ssh keeps its user name only
    s = parse_git_identifier("git://h/r", {"git.fullurl": "git://tok@h/r.git"})
    assert (s.remote, s.userinfo) == ("git://h/r.git", "")
    with pytest.raises(MasonError) as e:
        parse_git_identifier("git://h/r", {"git.fullurl": "gopher://alice:s3cret@h/r"})
    assert "s3cret" not in str(e.value) and "alice:xxxxx@h" in str(e.value)


@pytest.mark.parametrize("identifier, attrs, message", [
    ("git://h/r#--upload-pack=touch /tmp/mason-pwned", {}, r"invalid ref '--upload-pack=touch /tmp/mason-pwned': it may not start with '-'"),
    ("git://h/r#-c", {}, r"it may not start with '-'"),
    ("git://h/r", {"git.fullurl": "--upload-pack=touch /tmp/mason-pwned"}, r"invalid URL '--upload-pack=.*it may not start with '-'"),
    ("git://h/r", {"git.fullurl": "ext::sh -c touch% /tmp/mason-pwned"}, r"invalid URL 'ext::sh"),
    ("git://h/r", {"git.fullurl": "fd::17"}, r"invalid URL 'fd::17'"),
    ("git://h/r", {"git.fullurl": "gopher://h/r"}, r"unsupported protocol 'gopher'"),
    ("git://h/r#main:../../etc", {}, r"subdir '../../etc' leads outside the repository"),
    ("git://h/r#ma..in", {}, r"invalid ref 'ma..in'"),
    ("git://-oProxyCommand=x/r", {}, r"invalid identifier"),
    ("git://h/r", {"git.fullurl": "ssh://-oProxyCommand=touch%20/tmp/mason-pwned/r"}, r"the host may not start with '-'"),
    ("git://h/r", {"git.fullurl": "ssh://u@-oProxyCommand=x/r"}, r"the host may not start with '-'"),
    ("git://h/r", {"git.fullurl": "-u@host:path"}, r"it may not start with '-'"),
])
def test_injection_is_refused(identifier, attrs, message) -> None:
    with pytest.raises(MasonError, match=message):
        parse_git_identifier(identifier, attrs)
    assert not os.path.exists("/tmp/mason-pwned")


# -- into snapshots -----------------------------------------------------------------------------------


@pytest.fixture
def ns(containerd_env):
    base: Client = containerd_env.client.in_namespace(f"mason-t-{uuid.uuid4().hex[:10]}")
    base.ensure_namespace()
    lease = base.create_lease(expire=3600)
    try:
        yield base.with_lease(lease)
    finally:
        with contextlib.suppress(Exception):
            base.delete_lease(lease, sync=True)


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if rel == ".git" or rel.startswith(".git/"):
                continue
            mode = os.lstat(p).st_mode
            out[rel] = ("-> " + os.readlink(p) if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode)
                        else f"{stat.S_IMODE(mode):o} {p.read_text()}")
    return out


MAIN_TREE = {"a.txt": "644 a\n", "run.sh": "755 #!/bin/sh\n", "escape": "-> ../../../..", "sub": "dir",
             "sub/b.txt": "644 b\n", "sub/up-link": "-> ../a.txt"}


@pytest.mark.integration
def test_default_ref_is_head_without_git_dir(ns, repo) -> None:
    res = load_git(ns, "git://example.invalid/repo", _attrs(repo))
    assert (res.digest, res.cache_key_extra, res.layers) == (repo.main, repo.main, ())
    with mounted_view(ns, res.snapshot) as root:
        assert _tree(root) == MAIN_TREE
        assert not (root / ".git").exists()


@pytest.mark.integration
def test_branch_tag_sha_and_subdir(ns, repo) -> None:
    res = load_git(ns, "git://example.invalid/repo#feature:sub", _attrs(repo))
    assert res.cache_key_extra == repo.feature
    with mounted_view(ns, res.snapshot) as root:
        assert _tree(root) == {"b.txt": "644 b\n", "c.txt": "644 c\n", "up-link": "-> ../a.txt"}
    assert load_git(ns, "git://example.invalid/repo#v1", _attrs(repo)).cache_key_extra == repo.main
    old = load_git(ns, f"git://example.invalid/repo#{repo.first}", _attrs(repo))  # not a branch tip
    assert old.cache_key_extra == repo.first
    with mounted_view(ns, old.snapshot) as root:
        assert _tree(root) == {"a.txt": "644 first\n"}


@pytest.mark.integration
def test_pinned_sha_is_reused_without_fetching(ns, repo) -> None:
    first = load_git(ns, f"git://example.invalid/repo#{repo.main}", _attrs(repo))
    gone = {"git.fullurl": "file:///nonexistent/repo.git"}
    assert load_git(ns, f"git://example.invalid/repo#{repo.main}", gone) == first


@pytest.mark.integration
def test_keepgitdir(ns, repo) -> None:
    res = load_git(ns, "git://example.invalid/repo#main", _attrs(repo, **{"git.keepgitdir": "true"}))
    with mounted_view(ns, res.snapshot) as root:
        assert (root / ".git").is_dir()
        assert git("--git-dir", str(root / ".git"), "rev-parse", "HEAD") == repo.main
        assert git("--git-dir", str(root / ".git"), "config", "remote.origin.url") == repo.url
        assert _tree(root) == MAIN_TREE


@pytest.mark.integration
def test_git_errors(ns, repo) -> None:
    with pytest.raises(MasonError, match=r"cannot fetch 'no-such-branch': .*couldn't find remote ref no-such-branch"):
        load_git(ns, "git://example.invalid/repo#no-such-branch", _attrs(repo))
    with pytest.raises(MasonError, match=r"subdir 'escape' leads outside the repository"):
        load_git(ns, "git://example.invalid/repo#main:escape", _attrs(repo))
    with pytest.raises(MasonError, match=r"subdir 'a.txt' is not a directory"):
        load_git(ns, "git://example.invalid/repo#main:a.txt", _attrs(repo))
    with pytest.raises(MasonError, match=r"cannot fetch 'main'"):
        load_git(ns, "git://example.invalid/repo#main", {"git.fullurl": "file:///nonexistent/repo.git"})
    assert not [s for s in ns.list_snapshots() if s.kind == "active"]


@pytest.fixture
def git_daemon(repo):
    port = free_port()
    proc = subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={repo.bare.parent}",
                             "--listen=127.0.0.1", f"--port={port}", str(repo.bare.parent)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "git daemon did not start"
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/repo.git"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.mark.integration
def test_git_protocol_from_git_daemon(ns, repo, git_daemon) -> None:
    res = load_git(ns, "git://127.0.0.1/repo.git#feature:sub", {"git.fullurl": git_daemon})
    assert res.cache_key_extra == repo.feature
    with mounted_view(ns, res.snapshot) as root:
        assert sorted(os.listdir(root)) == ["b.txt", "c.txt", "up-link"]
