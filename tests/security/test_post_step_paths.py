"""After a step ran, its snapshot is hostile: every link in it may point at the host. What mason
does with it next — remove mount stubs (tests/security/test_mount_stubs.py), diff it into a
layer, copy it into a ``type=local`` directory, write a ``type=tar``, COPY/chown/mkdir into it
in a later step — must stay inside (issue 11 hole 1, "every other path operation"). The step
plants links to a host canary everywhere; the canary must be untouched and the links exported
as links."""

from __future__ import annotations

import os
import tarfile

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def test_exports_and_later_steps_do_not_follow_step_links(build_env, tmp_path, canary):
    env = build_env
    canary.dir("victim")
    canary.file("victim/secret", b"host\n")
    canary.file("victim/empty", b"")
    canary.record()
    host = str(canary.path / "victim")
    up = "../" * 16 + host.lstrip("/")
    plant = (f"ln -s {host} /abs && ln -s {up} /rel && ln -s {host}/secret /file && "
             f"mkdir -p /d && ln -s /proc/self/root{host} /d/proc && ln -s /abs /d/chain")
    ctx = write(tmp_path / "c", {"ok.txt": "ok\n", "Dockerfile": (
        f"FROM {env.base}\n"
        f"RUN {plant}\n"
        "COPY --chown=1234:1234 ok.txt /abs/copied\n"
        "COPY --chown=1234:1234 ok.txt /rel/\n"
        "COPY ok.txt /file\n"
        "WORKDIR /d/chain/made/deep\n"
        "COPY --chown=1234:1234 ok.txt /d/proc/sub/\n"
        f"RUN test -f {host}/copied && test -f {host}/ok.txt && grep -q ok /file && test -d {host}/made/deep\n")})
    out, tar = tmp_path / "out", tmp_path / "rootfs.tar"
    env.build(ctx, outputs=(f"type=local,dest={out},preserve-owner=true", f"type=tar,dest={tar}"),
              tags=("sec/links:1",))
    canary.assert_untouched()
    assert os.readlink(out / "abs") == host and os.readlink(out / "rel") == up
    assert (out / host.lstrip("/") / "copied").read_text() == "ok\n"
    assert os.stat(out / host.lstrip("/") / "copied").st_uid == 1234
    with tarfile.open(tar) as tf:
        assert tf.getmember("abs").issym() and tf.getmember("abs").linkname == host
    canary.assert_untouched()
