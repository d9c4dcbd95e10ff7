"""FileOp actions the Dockerfile frontend never writes, executed by mason and by BuildKit v0.32.2:
the same Definition (made with mason's builder API) goes to ``mason solve`` and to ``buildctl
build`` on the session buildkitd, both writing OCI archives, and the root filesystems must be the
same path by path (tests/conformance/rootfs.py) — mkdir with and without parents, modes and
owners, mkfile over an existing file, rm with wildcards and allow_not_found, symlinks with owners,
copies with include/exclude patterns, follow_symlink, wildcards, create_dest_path,
always_replace_existing and chmod strings."""

from __future__ import annotations

import pytest

from mason.ir import builder as llb
from tests.conformance.rootfs import diff_trees, read_image

pytestmark = pytest.mark.integration

AMD64 = "linux/amd64"


def _definition(base: str) -> bytes:
    img = llb.image(base, platform=AMD64)
    src = img.file(
        llb.mkdir("/s/d/e", 0o750, parents=True)
        .mkfile("/s/d/keep.txt", "keep\n", 0o640)
        .mkfile("/s/d/skip.log", "skip\n")
        .mkfile("/s/d/e/deep.txt", "deep\n", 0o600)
        .symlink("d/keep.txt", "/s/link")
        .symlink("/s/d", "/s/dirlink")
        .mkfile("/s/x.sh", "#!/bin/sh\n", 0o755), name="source tree")
    # names are looked up in the op's base input: the actions that chown by name come first, each
    # in an op of its own (buildkitd refuses a name looked up in an earlier action's result)
    img = img.file(llb.mkfile("/new.txt", "new\n", 0o604, owner="app"), name="by name")
    img = img.file(llb.mkfile("/owned-by-name", "x", 0o600, owner="nobody:app"), name="by names")
    out = img.file(
        llb.mkdir("/made/a/b", 0o700, parents=True, owner="1000:1000")
        .mkdir("/tmp", 0o700)  # exists: left alone
        .mkdir("/single", 0o751)
        .mkfile("/etc/hostname", "overwritten\n", 0o600)  # exists: content replaced
        .symlink("/new.txt", "/made/link", owner="1000:1000")
        .rm("/bin/c*", allow_wildcard=True)
        .rm("/no/such", allow_not_found=True)
        .rm("/etc/group")
        .copy(src, "/s/d", "/c/inc", include=["*.txt"], dir_copy_contents=True, create_dest_path=True)
        .copy(src, "/s/d", "/c/exc", exclude=["*.log", "e"], dir_copy_contents=True, create_dest_path=True)
        .copy(src, "/s/link", "/c/followed", follow_symlink=True, create_dest_path=True)
        .copy(src, "/s/link", "/c/notfollowed", create_dest_path=True)
        .copy(src, "/s/dirlink", "/c/dirfollowed", follow_symlink=True, dir_copy_contents=True,
              create_dest_path=True)
        .copy(src, "/s/*.sh", "/c/wild/", allow_wildcard=True, create_dest_path=True)
        .copy(src, "/s/*.none", "/c/empty/", allow_wildcard=True, allow_empty_wildcard=True, create_dest_path=True)
        .copy(src, "/s/d", "/c/modestr", mode_str="u=rwX,g=rX,o=", dir_copy_contents=True, create_dest_path=True)
        .copy(src, "/s/d", "/c/owned", owner="65534:1000", mode=0o710, create_dest_path=True)
        .copy(src, "/s/x.sh", "/bin/ls", always_replace_existing=True)
        .copy(src, "/s/d", "/made/a", create_dest_path=True)  # a directory into an existing one
        .copy(src, "/s/d/keep.txt", "/made/a/b/", create_dest_path=True), name="actions")
    return out.marshal()


def test_fileop_actions_as_buildkit(build_env, buildkitd, tmp_path):
    llb_file = tmp_path / "def.llb"
    llb_file.write_bytes(_definition(build_env.base))
    mine, theirs = tmp_path / "mason.tar", tmp_path / "buildkit.tar"
    build_env.cli("solve", str(llb_file), "-o", f"type=oci,dest={mine}", check=True)
    buildkitd.buildctl("build", "--progress=plain", "--output", f"type=oci,dest={theirs}",
                       input=llb_file.read_bytes())
    a, b = read_image(mine).tree, read_image(theirs).tree
    diffs = diff_trees(a, b)
    assert not diffs, "\n".join(diffs)
    assert a["/made/a/b"].mode == 0o700 and (a["/made/a/b"].uid, a["/made/a/b"].gid) == (1000, 1000)
    assert "/etc/group" not in a and "/bin/cat" not in a
    assert a["/bin/ls"].type == "symlink"  # a copy onto a link writes through it, in both
