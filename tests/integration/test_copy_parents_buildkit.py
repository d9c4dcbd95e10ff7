"""``COPY --parents`` as BuildKit v0.32.2 runs it: a source without wildcards is a required path,
written from the source's root (``./dir/./sub/b.txt`` copies from ``/dir`` with ``sub/b.txt``
included and requires ``/dir/sub/b.txt``). mason builds what buildkitd builds, file for file, and
fails where it fails (a missing path)."""

from __future__ import annotations

import pytest

from mason.ir.errors import MasonError
from tests.conformance.rootfs import diff_trees, read_image
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DOCKERFILE = """\
FROM {base}
COPY --parents ./dir/./sub/b.txt /p1/
COPY --parents dir/x.sh dir/sub /p2/
COPY --parents /./dir/sub/b.txt /p3/
COPY --parents dir/*/b.txt /p4/
"""


def _ctx(tmp_path, text):
    return write(tmp_path / "ctx", {"Dockerfile": text, "dir/x.sh": "x\n", "dir/sub/b.txt": "b\n"})


def test_copy_parents_same_tree_as_buildkit(build_env, buildkitd, tmp_path):
    ctx = _ctx(tmp_path, DOCKERFILE.format(base=build_env.base))
    mine, theirs = tmp_path / "mason.tar", tmp_path / "buildkit.tar"
    build_env.build(ctx, outputs=(f"type=oci,dest={mine}",))
    buildkitd.build_dockerfile(ctx, f"type=oci,dest={theirs}")
    a, b = read_image(mine).tree, read_image(theirs).tree
    assert not diff_trees(a, b), "\n".join(diff_trees(a, b))
    assert "/p1/sub/b.txt" in a and "/p1/dir" not in a
    assert "/p2/dir/x.sh" in a and "/p2/dir/sub/b.txt" in a and "/p3/dir/sub/b.txt" in a


def test_copy_parents_missing_path_fails_in_both(build_env, buildkitd, tmp_path):
    ctx = _ctx(tmp_path, f"FROM {build_env.base}\nCOPY --parents ./dir/./nope /p/\n")
    r = buildkitd.build_dockerfile(ctx, f"type=oci,dest={tmp_path / 'bk.tar'}", check=False)
    assert r.returncode != 0
    with pytest.raises(MasonError, match="nope"):
        build_env.build(ctx, outputs=(f"type=oci,dest={tmp_path / 'm.tar'}",))
