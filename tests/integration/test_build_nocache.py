"""``--no-cache`` gives a new result, as BuildKit's does: two ``--no-cache`` builds seconds apart
of a RUN that writes the time have different file contents and different layer digests (read
from the OCI archives with skopeo and tar, not through mason); a normal build afterwards runs
nothing and is the newest result. A fresh ``--root`` on the same containerd also gets a result
of its own, not the snapshot another root committed for the same step."""

from __future__ import annotations

import gzip
import json
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.fixtures.registry import skopeo
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

# busybox's date has no %N: the uptime (centiseconds) makes two runs in one second differ too
DF = """\
FROM {base}
RUN echo "RAN-$(echo STAMP) {nonce}" && echo "$(date +%s) $(cat /proc/uptime)" > /stamp
"""


def build(env, ctx: Path, out: Path, *args: str, root: Path | None = None):
    if root is not None:
        args += ("--root", str(root))
    p = env.cli("build", "--progress=plain", "-o", f"type=oci,dest={out}", *args, str(ctx))
    assert p.returncode == 0, p.stderr
    return p


def ran(p) -> bool:
    return "RAN-STAMP" in p.stderr  # the step's output (its command line spells it otherwise)


def top_layer(archive: Path) -> str:
    """The last layer's digest, as skopeo reads the archive."""
    return json.loads(skopeo("inspect", f"oci-archive:{archive}"))["Layers"][-1]


def stamp(archive: Path) -> bytes:
    """/stamp from the archive's last layer (the RUN's), read with tarfile."""
    with tarfile.open(archive) as oci:
        def blob(digest: str) -> bytes:
            return oci.extractfile("blobs/" + digest.replace(":", "/")).read()

        index = json.loads(oci.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        data = blob(manifest["layers"][-1]["digest"])
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    with tarfile.open(fileobj=__import__("io").BytesIO(data)) as layer:
        return layer.extractfile("stamp").read()


def test_no_cache_builds_give_new_results_and_a_rebuild_is_cached(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=env.base, nonce=uuid.uuid4().hex)})
    p0 = build(env, ctx, tmp_path / "0.tar")
    assert ran(p0)
    p1 = build(env, ctx, tmp_path / "1.tar", "--no-cache")
    t1 = time.monotonic()
    assert ran(p1)
    time.sleep(max(0.0, 2.0 - (time.monotonic() - t1)))
    p2 = build(env, ctx, tmp_path / "2.tar", "--no-cache")
    assert ran(p2)

    stamps = [stamp(tmp_path / f"{i}.tar") for i in range(3)]
    layers = [top_layer(tmp_path / f"{i}.tar") for i in range(3)]
    assert len(set(stamps)) == 3, stamps  # every build that ran the step has its own file
    assert len(set(layers)) == 3, layers
    assert int(stamps[2].split()[0]) >= int(stamps[1].split()[0]) + 2

    # a normal build now: fully cached, and the result is the last --no-cache build's
    p3 = build(env, ctx, tmp_path / "3.tar")
    assert not ran(p3), p3.stderr
    assert "CACHED" in p3.stderr
    assert stamp(tmp_path / "3.tar") == stamps[2]
    assert top_layer(tmp_path / "3.tar") == layers[2]


def test_a_fresh_root_on_the_same_containerd_runs_the_step_into_its_own_snapshot(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=env.base, nonce=uuid.uuid4().hex)})
    assert ran(build(env, ctx, tmp_path / "a.tar"))
    other = Path(tempfile.mkdtemp(prefix="mason-it-other-"))
    try:
        time.sleep(1.1)
        assert ran(build(env, ctx, tmp_path / "b.tar", root=other))  # its store is empty: it runs
    finally:
        import shutil

        shutil.rmtree(other, ignore_errors=True)
    assert stamp(tmp_path / "a.tar") != stamp(tmp_path / "b.tar")
    assert top_layer(tmp_path / "a.tar") != top_layer(tmp_path / "b.tar")
