"""The session buildkitd fixture (tests/fixtures/buildkitd.py) is a working peer: it pulls the
fixture registry's busybox over plain HTTP, runs a RUN step with runc and writes an OCI archive
that skopeo reads back."""

from __future__ import annotations

import json
import tarfile

import pytest

from tests.fixtures.registry import skopeo
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def test_buildkitd_builds_from_the_session_registry(buildkitd, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {busybox_image.ref}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt && id -u >> /b.txt\n"
                      'CMD ["cat", "/b.txt"]\n',
        "a.txt": "from the context\n",
    })
    out = tmp_path / "out.tar"
    buildkitd.build_dockerfile(ctx, f"type=oci,dest={out}")
    info = json.loads(skopeo("inspect", "--config", f"oci-archive:{out}"))
    assert info["config"]["Cmd"] == ["cat", "/b.txt"]
    assert info["rootfs"]["diff_ids"][0] == busybox_image.info.diff_ids[0]
    # the last layer holds /b.txt as the RUN wrote it (as root, in the copied file's presence)
    layout = tmp_path / "layout"
    skopeo("copy", f"oci-archive:{out}", f"oci:{layout}:x")
    manifest = json.loads(skopeo("inspect", "--raw", f"oci:{layout}:x"))
    last = manifest["layers"][-1]["digest"].split(":", 1)[1]
    with tarfile.open(layout / "blobs" / "sha256" / last) as tar:
        member = tar.extractfile("b.txt")
        assert member is not None and member.read() == b"from the context\n0\n"


def test_buildkitd_answers_on_its_own_socket(buildkitd):
    p = buildkitd.buildctl("debug", "workers")
    assert b"linux/amd64" in p.stdout
    assert buildkitd.address.startswith("unix://") and str(buildkitd.root) in buildkitd.address
