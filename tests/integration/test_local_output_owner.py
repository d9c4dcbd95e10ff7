"""``--output type=local`` ownership (issue 10 item 17): the files are the calling user's, as
BuildKit's client writes what a local export sends it — checked against buildctl on the session
buildkitd with the same Dockerfile, entry by entry; ``preserve-owner=true`` keeps the image's
owners (what ``type=oci`` holds, read back with tests/conformance/rootfs.py)."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path

import pytest

from tests.conformance.rootfs import read_image
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DOCKERFILE = """\
FROM {base}
RUN mkdir -p /o/d && echo a > /o/a && echo s > /o/suid && ln -s a /o/l && ln /o/a /o/hard \\
 && chown -R 1000:1000 /o/d /o/a && chown -h 65534:1000 /o/l && chown 1000:65534 /o/suid \\
 && chmod 4755 /o/suid && chmod 2750 /o/d && chmod 0600 /o/a
"""


def _walk(root: Path) -> dict[str, tuple]:
    out = {}
    for p in [root, *sorted(root.rglob("*"))]:
        s = os.lstat(p)
        body = (hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(s.st_mode)
                else os.readlink(p) if stat.S_ISLNK(s.st_mode) else None)
        out["/" + str(p.relative_to(root)).lstrip(".")] = (stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode),
                                                           s.st_uid, s.st_gid, body)
    return out


def test_local_output_owned_by_the_caller_as_buildkit(build_env, buildkitd, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=build_env.base)})
    mine, kept, theirs, oci = tmp_path / "mine", tmp_path / "kept", tmp_path / "theirs", tmp_path / "img.tar"
    build_env.build(ctx, outputs=(f"type=local,dest={mine}", f"type=local,dest={kept},preserve-owner=true",
                                  f"type=oci,dest={oci}"))
    buildkitd.build_dockerfile(ctx, f"type=local,dest={theirs}")
    a, b = _walk(mine / "o"), _walk(theirs / "o")
    assert a == b
    me = (os.getuid(), os.getgid())
    assert {(v[2], v[3]) for v in a.values()} == {me}
    assert a["/suid"][1] == 0o4755 and a["/d"][1] == 0o2750 and a["/l"][4] == "a"
    # preserve-owner: the image's owners, as the OCI image has them
    tree = read_image(oci).tree
    k = _walk(kept / "o")
    assert {p: (v[2], v[3]) for p, v in k.items()} == {
        p: (tree["/o" + p.rstrip("/")].uid, tree["/o" + p.rstrip("/")].gid) if p != "/" else
        (tree["/o"].uid, tree["/o"].gid) for p in k}
    assert (k["/a"][2:4], k["/l"][2:4], k["/suid"][2:4]) == ((1000, 1000), (65534, 1000), (1000, 65534))
    assert {p: v[:2] + v[4:] for p, v in k.items()} == {p: v[:2] + v[4:] for p, v in a.items()}



def test_tar_output_keeps_the_image_owners_as_buildkit(build_env, buildkitd, tmp_path):
    """``type=tar`` is not mapped, by either builder: the owners are the image's."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=build_env.base)})
    mine, theirs = tmp_path / "mine.tar", tmp_path / "theirs.tar"
    build_env.build(ctx, outputs=(f"type=tar,dest={mine}",))
    buildkitd.build_dockerfile(ctx, f"type=tar,dest={theirs}")

    def owners(path):
        with tarfile.open(path) as tf:
            return {m.name.strip("./"): (m.uid, m.gid, m.mode & 0o7777) for m in tf.getmembers()
                    if m.name.strip("./").startswith("o/")}
    a = owners(mine)
    assert a == owners(theirs)
    assert a["o/a"] == (1000, 1000, 0o600) and a["o/suid"] == (1000, 65534, 0o4755)
