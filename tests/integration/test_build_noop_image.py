"""A rebuild that reruns nothing is the same image (issue 17): history times are when each layer
was made (its snapshot's commit), the config's ``created`` is the last history entry's — BuildKit
v0.32.2's rule, checked against buildkitd here — so a no-op rebuild writes no new config,
manifest or image record."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

# metadata before the first new layer, between layers and after the last one
DF = ("FROM {base}\nENV A=1\nRUN echo one > /one\nENV B=2\nRUN echo two > /two\nLABEL x=y\n"
      "EXPOSE {port}\n")


def _config(client, digest: str) -> dict:
    manifest = json.loads(client.read_blob(digest))
    return json.loads(client.read_blob(manifest["config"]["digest"]))


def _archive_config(path: Path) -> dict:
    with tarfile.open(path) as t:
        def read(name: str) -> dict:
            f = t.extractfile(name)
            assert f is not None
            return json.load(f)
        index = read("index.json")
        manifest = read("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1])
        return read("blobs/sha256/" + manifest["config"]["digest"].split(":")[1])


def _shape(cfg: dict) -> list[str]:
    """Which time each history entry has, as a letter per distinct time in order of appearance
    (the base image's entry is ``a``) — and the config's ``created`` last."""
    names: dict[str, str] = {}
    out = []
    for t in [h["created"] for h in cfg["history"]] + [cfg["created"]]:
        out.append(names.setdefault(t, "abcdefgh"[len(names)]))
    return out


def test_a_no_op_rebuild_is_the_same_image_and_writes_nothing(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": DF.format(base=env.base, port=80)})
    p = env.cli("build", "--progress=plain", "-t", "mason-test/noop", str(ctx))
    assert p.returncode == 0, p.stderr
    first = p.stdout.split()[0]
    c = env.client
    blobs = {i.digest: i.created_ns for i in c.list_content()}
    record = c.get_image("docker.io/mason-test/noop:latest")
    cfg = _config(c, first)
    times = [h["created"] for h in cfg["history"]]
    # ENV A takes the first new layer's time, ENV B the layer before it, LABEL/EXPOSE the last
    assert _shape(cfg) == ["a", "b", "b", "b", "c", "c", "c", "c"], times
    assert cfg["created"] == times[4] > times[2]

    p = env.cli("build", "--progress=plain", "-t", "mason-test/noop", str(ctx))
    assert p.returncode == 0 and "CACHED" in p.stderr, p.stderr
    assert p.stdout.split()[0] == first
    after = {i.digest: i.created_ns for i in c.list_content()}
    # no blob written, none relabelled (containerd's GC may meanwhile drop other tests' garbage)
    assert {d: t for d, t in after.items() if blobs.get(d) != t} == {}
    assert c.get_image("docker.io/mason-test/noop:latest") == record

    # a metadata edit reruns nothing either: a new config, the layers' times kept
    (ctx / "Dockerfile").write_text(DF.format(base=env.base, port=81))
    p = env.cli("build", "--progress=plain", "-t", "mason-test/noop", str(ctx))
    assert p.returncode == 0, p.stderr
    edited = _config(c, p.stdout.split()[0])
    assert p.stdout.split()[0] != first and edited["created"] == cfg["created"]
    assert [h["created"] for h in edited["history"]] == times


def test_history_times_follow_buildkits_rule(build_env, buildkitd, tmp_path):
    ctx = write(tmp_path / "c", {"Dockerfile": DF.format(base=build_env.base, port=80)})
    ours, theirs = tmp_path / "mason.tar", tmp_path / "buildkit.tar"
    p = build_env.cli("build", "-o", f"type=oci,dest={ours}", str(ctx))
    assert p.returncode == 0, p.stderr
    buildkitd.build_dockerfile(ctx, f"type=oci,dest={theirs}")
    mine, bk = _archive_config(ours), _archive_config(theirs)
    assert mine["history"][0]["created"] == bk["history"][0]["created"]  # the base image's, kept
    assert _shape(mine) == _shape(bk)
