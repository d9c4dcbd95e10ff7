"""The attack suite's source classes (issue 11):

* build-context escapes: ``COPY ../x``, and symlinks in the context pointing at host files or
  directories — a COPY reads what the link names *inside the context* (or copies the link
  itself), never the host file; ``.dockerignore``d files never reach the step;
* git option injection (CVE-2019-13139: ``#--upload-pack=…`` refs; ``-o…`` hosts and URLs):
  refused with one clear error before git runs, no command executed.

Each test asserts a host canary is untouched (or, for reads, that its content is absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

SECRET = b"host-secret-7f3a\n"


def _build(env, ctx, *args):
    return env.cli("build", "--progress=plain", *args, str(ctx))


def _all_bytes(d: Path) -> bytes:
    out = b""
    for dirpath, _dirs, files in os.walk(d):
        for f in files:
            p = Path(dirpath, f)
            if not p.is_symlink():
                out += p.read_bytes()
    return out


def test_copy_dotdot_stays_in_context(build_env, tmp_path, canary):
    env = build_env
    canary.file("secret", SECRET)
    canary.record()
    rel = os.path.relpath(canary.path / "secret", tmp_path / "c")
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM scratch\nCOPY {rel} /s\nCOPY ../../../../../../.. /all/\n"})
    out = tmp_path / "out"
    p = _build(env, ctx, "-o", f"type=local,dest={out}")
    assert "Traceback" not in p.stderr, p.stderr
    if p.returncode == 0:
        assert SECRET not in _all_bytes(out)
    else:
        assert p.returncode == 1 and "error: " in p.stderr
    canary.assert_untouched()


def test_context_symlinks_to_the_host_are_not_followed_out(build_env, tmp_path, canary):
    env = build_env
    canary.file("dir/secret", SECRET)
    canary.record()
    ctx = write(tmp_path / "c", {"Dockerfile": (
        "FROM scratch\n"
        "COPY filelink /f\n"
        "COPY dirlink /d/\n"
        "COPY . /ctx/\n")})
    os.symlink(canary.path / "dir" / "secret", ctx / "filelink")
    os.symlink(canary.path / "dir", ctx / "dirlink")
    out = tmp_path / "out"
    p = _build(env, ctx, "-o", f"type=local,dest={out}")
    assert "Traceback" not in p.stderr, p.stderr
    if p.returncode == 0:
        assert SECRET not in _all_bytes(out)
    else:
        assert p.returncode == 1 and "error: " in p.stderr
    canary.assert_untouched()


def test_copy_through_a_context_dir_symlink_is_an_error_or_inside(build_env, tmp_path, canary):
    env = build_env
    canary.file("dir/secret", SECRET)
    canary.record()
    ctx = write(tmp_path / "c", {"Dockerfile": "FROM scratch\nCOPY dirlink/secret /s\n"})
    os.symlink(canary.path / "dir", ctx / "dirlink")
    out = tmp_path / "out"
    p = _build(env, ctx, "-o", f"type=local,dest={out}")
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 1 and "error: " in p.stderr or SECRET not in _all_bytes(out)
    canary.assert_untouched()


def test_dockerignored_files_never_reach_a_step(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {".dockerignore": "secret.txt\nsub/**/*.key\n", "secret.txt": SECRET,
                                 "sub/a/b.key": SECRET, "sub/a/ok.txt": "ok\n", "Dockerfile": (
        f"FROM {env.base}\n"
        "RUN --mount=type=bind,target=/ctx sh -c 'find /ctx | sort > /seen; cat /ctx/secret.txt > /leak 2>/dev/null; true'\n"
        "COPY . /copied/\n")})
    out = tmp_path / "out"
    p = _build(env, ctx, "-o", f"type=local,dest={out}")
    assert p.returncode == 0, p.stderr
    seen = (out / "seen").read_text()
    assert "secret.txt" not in seen and "b.key" not in seen and "/ctx/sub/a/ok.txt" in seen
    assert SECRET not in _all_bytes(out)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/repo.git#--upload-pack=touch {c}/pwned;:",
    "http://127.0.0.1:9/repo.git#-u touch {c}/pwned",
    "ssh://-oProxyCommand=touch {c}/pwned/repo.git",
    "git@-oProxyCommand=touch {c}/pwned:repo.git",
    "ssh://git@127.0.0.1:9/repo.git#--config=core.sshCommand=touch {c}/pwned",
])
def test_cve_2019_13139_git_option_injection(build_env, tmp_path, canary, url):
    env = build_env
    canary.record()
    src = json.dumps([url.format(c=canary.path), "/x"])
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM scratch\nADD {src}\n"})
    p = _build(env, ctx, "--allow", "git.local")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    if not url.startswith("git@"):  # refused as an option before git runs
        assert "may not start with '-'" in p.stderr, p.stderr
    assert not (canary.path / "pwned").exists()
    canary.assert_untouched()
