"""``mason rebase`` end to end: the buildpacks image of test_build_buildpacks (built on run image
one) moved onto run image two, and a Dockerfile image moved off its ``FROM``. skopeo compares
the manifests (the layers above the base are the same blobs, the base layers are the new
image's), ``ctr run`` runs the result, umoci unpacks it, and no build step runs (no exec vertex
started; the buildpack's build counter in the image is unchanged)."""

from __future__ import annotations

import json
import uuid

import pytest

from mason.backends.solver.events import Recorder, VertexStarted
from mason.rebase import RebaseRequest, rebase
from tests.fixtures.registry import skopeo
from tests.integration.conftest import clean, write
from tests.integration.test_build_buildpacks import (
    EXCLUDE,
    PROJECT,
    ctr,
    project_context,
    push_run_image,
    umoci_unpack,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run_images(registry, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rebase-run-images")
    return (push_run_image(registry, tmp, "rebase-run-one", "run-one\n"),
            push_run_image(registry, tmp, "rebase-run-two", "run-two\n"))


def manifest(oci_tar) -> dict:
    return json.loads(skopeo("inspect", "--raw", f"oci-archive:{oci_tar}"))


def config(oci_tar) -> dict:
    return json.loads(skopeo("inspect", "--config", f"oci-archive:{oci_tar}"))


def registry_manifest(ref: str) -> dict:
    return json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))


def test_rebase_buildpacks_image_onto_a_new_run_image(build_env, tmp_path, run_images):
    env = build_env
    one, two = run_images
    nonce = uuid.uuid4().hex[:12]
    text = PROJECT.format(nonce=nonce, builder=env.base, run=one, filter=EXCLUDE)
    ctx = project_context(tmp_path / "ctx", text, "v1")
    tag = f"docker.io/library/it-rebase-{nonce}:1"
    before = tmp_path / "before.tar"
    p = env.cli("build", "-f", str(ctx / "project.toml"), str(ctx), "-o", f"type=image,name={tag}",
                "-o", f"type=oci,dest={before}")
    assert p.returncode == 0, p.stderr

    rec = Recorder()
    after = tmp_path / "after.tar"
    res = rebase(RebaseRequest(tag, two, outputs=(f"type=image,name={tag}", f"type=oci,dest={after}"),
                               root=str(env.root), containerd_address=env.address, events=rec))
    assert res.names == (tag,)
    # no build step ran: the only vertices are the three image sources, the diff and the merge
    started = [e.name for e in rec.of(VertexStarted)]
    assert started and all(n.startswith("[rebase]") for n in started), started
    assert not [n for n in started if "buildpacks" in n]

    m0, m1 = manifest(before), manifest(after)
    one_layers, two_layers = registry_manifest(one)["layers"], registry_manifest(two)["layers"]
    k = len(one_layers)
    assert m0["layers"][:k] == one_layers
    # the base layers are the new run image's, the launch/app layers byte-identical (same blobs)
    assert m1["layers"][:len(two_layers)] == two_layers
    assert m1["layers"][len(two_layers):] == m0["layers"][k:] and len(m0["layers"]) > k
    c0, c1 = config(before), config(after)
    assert c1["config"]["Entrypoint"] == c0["config"]["Entrypoint"] == ["/cnb/lifecycle/launcher"]
    assert c1["config"]["WorkingDir"] == "/workspace"
    assert c1["rootfs"]["diff_ids"][k:] == c0["rootfs"]["diff_ids"][k:]
    run_cfg = json.loads(skopeo("inspect", "--config", "--tls-verify=false", f"docker://{two}"))
    assert c1["rootfs"]["diff_ids"][:k] == run_cfg["rootfs"]["diff_ids"]
    labels0, labels1 = c0["config"]["Labels"], c1["config"]["Labels"]
    assert labels1["io.buildpacks.project.metadata"] == labels0["io.buildpacks.project.metadata"]
    life = json.loads(labels1["io.buildpacks.lifecycle.metadata"])
    assert life["runImage"]["image"] == two and "@sha256:" in life["runImage"]["reference"]
    assert life["runImage"]["topLayer"] == run_cfg["rootfs"]["diff_ids"][-1]

    # the process still runs — on the new base, with the buildpack's output of the one build
    r = ctr(env, "run", "--rm", tag, f"mason-it-rebase-{nonce}")
    assert (r.returncode, r.stdout) == (0, f"app v1 greet hi-{nonce} build 1 run-two\n"), r.stderr
    skopeo("copy", f"oci-archive:{after}", f"oci:{tmp_path / 'layout'}:t")
    root = umoci_unpack(tmp_path / "layout", "t", tmp_path / "bundle")
    assert (root / "etc/run-image").read_text() == "run-two\n"
    assert (root / "workspace/build-count").read_text() == "1\n"

    # and back again: the base is now known as run image two (the rebase recorded it)
    p = env.cli("rebase", tag, "--run-image", one, "--progress=plain")
    assert p.returncode == 0, p.stderr
    r = ctr(env, "run", "--rm", tag, f"mason-it-rebase-{nonce}-back")
    assert (r.returncode, r.stdout) == (0, f"app v1 greet hi-{nonce} build 1 run-one\n"), r.stderr
    assert clean(env.leftovers()), env.leftovers()


def test_rebase_dockerfile_image_off_its_from(build_env, tmp_path, run_images):
    env = build_env
    one, two = run_images
    nonce = uuid.uuid4().hex[:12]
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {one}\nRUN echo built-{nonce} > /built\n"
                                                 'CMD ["sh", "-c", "cat /built /etc/run-image"]\n'})
    tag = f"it-rebase-df-{nonce}:1"
    p = env.cli("build", "-t", tag, str(ctx))
    assert p.returncode == 0, p.stderr
    p = env.cli("rebase", f"{tag}", "--run-image", two, "-t", f"it-rebase-df-{nonce}:2", "--progress=plain")
    assert p.returncode == 0, p.stderr
    assert "RUN" not in p.stderr and "echo built" not in p.stderr
    r = ctr(env, "run", "--rm", f"docker.io/library/it-rebase-df-{nonce}:2", f"mason-it-rebase-df-{nonce}")
    assert (r.returncode, r.stdout) == (0, f"built-{nonce}\nrun-two\n"), r.stderr
    # the original is untouched
    r = ctr(env, "run", "--rm", f"docker.io/library/{tag}", f"mason-it-rebase-df-{nonce}-0")
    assert (r.returncode, r.stdout) == (0, f"built-{nonce}\nrun-one\n"), r.stderr


def test_rebase_says_when_the_base_is_unknown_or_wrong(build_env, tmp_path, run_images):
    env = build_env
    one, two = run_images
    nonce = uuid.uuid4().hex[:12]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "x\n"})
    p = env.cli("build", "-t", f"it-rebase-scratch-{nonce}", str(ctx))
    assert p.returncode == 0, p.stderr
    p = env.cli("rebase", f"it-rebase-scratch-{nonce}", "--run-image", two)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "base of it-rebase-scratch-" in p.stderr and "is not known" in p.stderr and "--base" in p.stderr
    # an explicit --base that is not the image's base
    ctx = write(tmp_path / "ctx2", {"Dockerfile": f"FROM {env.base}\nRUN touch /x\n"})
    p = env.cli("build", "-t", f"it-rebase-bb-{nonce}", str(ctx))
    assert p.returncode == 0, p.stderr
    p = env.cli("rebase", f"it-rebase-bb-{nonce}", "--run-image", two, "--base", one)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "is not built on" in p.stderr
