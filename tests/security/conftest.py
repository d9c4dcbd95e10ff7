"""Fixtures for the attack suite (issue 11): a fresh state root per test on the session
containerd (the integration tests' ``build_env``), and **canaries** — host files and
directories an attack aims at, recorded before the build and compared after it, so each test
asserts the host is untouched rather than that mason printed the right error.

A canary tree lives outside the state root and outside the build context (the places a step may
legitimately change). :meth:`Canary.assert_untouched` compares every entry's type, mode, owner,
size, content digest and link target, and that nothing was added or removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import build_env  # noqa: F401 - the fixture, re-exported


class Canary:
    """A host directory tree whose state is recorded and later checked."""

    def __init__(self, path: Path):
        self.path = path
        self.before: dict[str, tuple] | None = None

    def file(self, rel: str, data: bytes = b"", mode: int = 0o644) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, mode)
        return p

    def dir(self, rel: str, mode: int = 0o755) -> Path:
        p = self.path / rel
        p.mkdir(parents=True, exist_ok=True)
        os.chmod(p, mode)
        return p

    def state(self) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for dirpath, dirnames, filenames in os.walk(self.path):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                rel = os.path.relpath(p, self.path)
                extra: object = None
                if stat.S_ISREG(st.st_mode):
                    extra = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                elif stat.S_ISLNK(st.st_mode):
                    extra = os.readlink(p)
                out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                            st.st_size if not stat.S_ISDIR(st.st_mode) else 0, extra)
        st = os.lstat(self.path)
        out["."] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, 0, None)
        return out

    def record(self) -> "Canary":
        self.before = self.state()
        return self

    def assert_untouched(self) -> None:
        assert self.before is not None, "record() the canary before the attack"
        after = self.state()
        gone = sorted(set(self.before) - set(after))
        added = sorted(set(after) - set(self.before))
        changed = sorted(k for k in set(self.before) & set(after) if self.before[k] != after[k])
        assert not (gone or added or changed), f"host canary {self.path} touched: removed {gone}, " \
                                               f"added {added}, changed {changed}"


@pytest.fixture
def canary():
    """A fresh canary directory on the host (outside every root and context)."""
    d = Path(tempfile.mkdtemp(prefix="mason-canary-"))
    yield Canary(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def auth_server(tmp_path):
    """An :class:`~tests.security.authserver.AuthServer` (user ``alice``, a fresh password) with
    ``/files/data.txt`` and a bare repository ``/git/repo.git`` (branch ``main``: ``README``)."""
    import subprocess
    import uuid

    from tests.security.authserver import AuthServer

    s = AuthServer(tmp_path / "auth-www", "alice", "pw-" + uuid.uuid4().hex)
    (s.files / "data.txt").write_text("data\n")
    genv = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com"}
    work = tmp_path / "auth-work"
    for args in (["init", "-q", "-b", "main", str(work)],):
        subprocess.run(["git", *args], env=genv, check=True, capture_output=True)
    (work / "README").write_text("readme\n")
    for args in (["add", "-A"], ["commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=work, env=genv, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(s.git / "repo.git")], env=genv, check=True,
                   capture_output=True)
    yield s
    s.close()
