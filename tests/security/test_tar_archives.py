"""Hostile tar archives in ``ADD`` (Docker's untar "breakout" class; issue 11): ``../`` names,
absolute names, a symlink then a write through it, a symlink above the destination, a hardlink
out of it, a symlink loop. Each test aims the archive at a host canary and asserts the canary is
untouched; what the image holds is checked by ``RUN`` steps in the build itself."""

from __future__ import annotations

import io
import tarfile

import pytest

from mason.ir.errors import MasonError
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def _tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_000_000
            if kind == "file":
                ti.size = len(arg)
                tf.addfile(ti, io.BytesIO(arg))
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
                ti.linkname = arg
                tf.addfile(ti)
    return buf.getvalue()


def _build(env, tmp_path, archive: bytes, then: str = ""):
    ctx = write(tmp_path / "c", {"evil.tar": archive, "ok.txt": "ok\n",
                                 "Dockerfile": f"FROM {env.base}\nADD evil.tar /dest/\n{then}"})
    return env.build(ctx)


def test_issue11_symlink_above_destination_is_extracted_and_writes_stay_inside(build_env, tmp_path, canary):
    """Docker and BuildKit extract a symlink that points above the ADD destination (in a chroot
    at the destination); mason used to refuse the archive. Writes through it — later entries of
    the archive, a later COPY, a later ADD — stay inside the snapshot."""
    env = build_env
    canary.dir("victim")
    canary.file("victim/secret", b"host\n")
    canary.record()
    up = "../" * 16 + str(canary.path / "victim").lstrip("/")
    archive = _tar([("up", "sym", up), ("up/secret", "file", b"pwned\n"), ("up/new", "file", b"pwned\n")])
    inner = "/dest" + str(canary.path / "victim")
    _build(env, tmp_path, archive, (
        f'RUN test "$(readlink /dest/up)" = "{up}" && grep -q pwned {inner}/secret && grep -q pwned {inner}/new\n'
        "COPY ok.txt /dest/up/copied\n"
        "ADD ok.txt /dest/up/added\n"
        f"RUN grep -q ok {canary.path}/victim/copied && grep -q ok {canary.path}/victim/added\n"))
    canary.assert_untouched()


@pytest.mark.parametrize("entries", [
    [("../../../../../../../../{canary}/victim/secret", "file", b"pwned\n")],
    [("a/../../../../../../../../../{canary}/victim/secret", "file", b"pwned\n")],
    [("h", "hard", "../../../../../../../../../{canary}/victim/secret")],
], ids=["dotdot", "inner-dotdot", "hardlink-outside"])
def test_tar_breakout_refused(build_env, tmp_path, canary, entries):
    env = build_env
    canary.dir("victim")
    canary.file("victim/secret", b"host\n")
    canary.record()
    rel = str(canary.path).lstrip("/")
    archive = _tar([(n.format(canary=rel), k, a.format(canary=rel) if isinstance(a, str) else a)
                    for n, k, a in entries])
    with pytest.raises(MasonError, match="escapes the destination"):
        _build(env, tmp_path, archive)
    canary.assert_untouched()


def test_tar_absolute_names_and_links_are_rerooted(build_env, tmp_path, canary):
    env = build_env
    canary.dir("victim")
    canary.file("victim/secret", b"host\n")
    canary.record()
    host = str(canary.path / "victim")
    archive = _tar([(host + "/secret", "file", b"pwned\n"),
                    ("abs", "sym", host), ("abs/new", "file", b"pwned\n"),
                    ("h", "hard", host + "/secret")])
    _build(env, tmp_path, archive, f"RUN grep -q pwned /dest{host}/secret && grep -q pwned /dest{host}/new\n")
    canary.assert_untouched()


def test_tar_symlink_loop_is_a_clear_error(build_env, tmp_path, canary):
    env = build_env
    canary.record()
    archive = _tar([("a", "sym", "b"), ("b", "sym", "a"), ("a/x", "file", b"x\n")])
    with pytest.raises(MasonError, match="[Tt]oo many (levels of )?symbolic links|ELOOP|loop"):
        _build(env, tmp_path, archive)
    canary.assert_untouched()
