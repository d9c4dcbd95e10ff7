"""``mason frontend-image``: mason's Mockerfile frontend packaged as a BuildKit gateway frontend
image (on a Python base made in the test from the session's debootstrap Debian with apt), pushed
to the session registry, then run

* by mason itself, chosen with ``#syntax=<image>`` (the image speaks gRPC on its stdio to
  mason's LLBBridge, mason/gateway/client.py against mason/gateway/bridge.py);
* by BuildKit v0.32.2 (``../shared/tools/buildkit/buildkitd`` + ``buildctl build --frontend
  gateway.v0 --opt source=<image>``), which pulls it from the registry on loopback.

Both builds give the files the Mockerfile says; a Mockerfile mistake is one located error
through either; the image's labels and entrypoint are BuildKit's conventions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

MOCKERFILE = """\
#syntax={frontend}
apiVersion: v1alpha1
images:
- name: app
  from: {base}
  workdir: /src
  input:
    mount:
      ".": /src
  steps:
  - mkdir -p /out && cat greeting.txt > /out/greeting && echo "$(cat greeting.txt | wc -c)" > /out/size
  output:
  - greeting.txt:/app/greeting.txt
"""

BAD = "apiVersion: v1alpha1\nimages:\n- name: app\n  from: {base}\n  stepz: [true]\n"


class Mason:
    def __init__(self, root: Path, address: str):
        self.root, self.address = root, address

    def cli(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        env = dict(os.environ, MASON_ROOT=str(self.root), MASON_CONTAINERD_ADDRESS=self.address)
        p = subprocess.run([sys.executable, "-m", "mason", *args], capture_output=True, text=True, env=env,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"mason {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-6000:]}")
        return p


@pytest.fixture(scope="module")
def mason_cli(containerd_env):
    root = Path(tempfile.mkdtemp(prefix="mason-feimg-"))
    yield Mason(root, containerd_env.address)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def python_base(mason_cli, debian_image, registry, tmp_path_factory) -> str:
    """Debian bookworm (debootstrap, the session's) with Debian's python3, in the registry."""
    ctx = write(tmp_path_factory.mktemp("pybase"), {"Dockerfile": (
        f"FROM {debian_image.ref}\n"
        "RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 "
        "&& rm -rf /var/lib/apt/lists/*\n")})
    ref = registry.ref("mason-test/debian-python3:bookworm")
    mason_cli.cli("build", "--progress=plain", "-t", ref, "--push", str(ctx), timeout=1200)
    return ref


@pytest.fixture(scope="module")
def mockerfile_image(mason_cli, python_base, registry) -> str:
    ref = registry.ref("mason-test/mockerfile-frontend:1")
    p = mason_cli.cli("frontend-image", "mockerfile", "--base", python_base, "-t", ref, "--push", "--progress=plain")
    assert p.stdout.split()[0].startswith("sha256:")
    return ref


def test_image_has_gateway_conventions(mockerfile_image):
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--config", f"docker://{mockerfile_image}"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    cfg = json.loads(out)["config"]
    assert cfg["Entrypoint"] == ["python3", "-m", "mason.gateway.client", "mockerfile"]
    assert not cfg.get("Cmd")  # the base's CMD would be appended to the entrypoint
    assert cfg["Labels"]["moby.buildkit.frontend.network.none"] == "true"
    assert cfg["Labels"]["moby.buildkit.frontend.caps"] == "moby.buildkit.frontend.subrequests"  # --call targets
    assert "MASON_FRONTEND_FILENAME=Mockerfile.yaml" in cfg["Env"]


def _ctx(tmp_path: Path, frontend: str, base: str, nonce: str) -> Path:
    return write(tmp_path / "ctx", {"Mockerfile.yaml": MOCKERFILE.format(frontend=frontend, base=base),
                                    "greeting.txt": f"hello {nonce}\n"})


def test_mason_builds_through_the_image(mason_cli, mockerfile_image, busybox_image, containerd_env, tmp_path):
    nonce = os.urandom(4).hex()
    ctx = _ctx(tmp_path, mockerfile_image, busybox_image.ref, nonce)
    out = tmp_path / "out"
    p = mason_cli.cli("build", "--progress=plain", "-f", str(ctx / "Mockerfile.yaml"),
                      "-o", f"type=local,dest={out}", str(ctx))
    assert (out / "app" / "greeting.txt").read_text() == f"hello {nonce}\n"
    assert (out / "out" / "greeting").read_text() == f"hello {nonce}\n"
    assert f"running frontend image {mockerfile_image}" in p.stderr
    calls = p.stderr.split("gateway calls: ", 1)[1].split(")", 1)[0]
    # Ping, the Mockerfile and .dockerignore read, the base resolved, the graph solved, returned
    assert calls.startswith("Ping 1, Solve") and "ReadFile 2" in calls and "ResolveImageConfig 1" in calls, calls
    assert calls.endswith("Return 1"), calls
    assert containerd_env.client.list_tasks() == []


def test_call_targets_through_the_image(mason_cli, mockerfile_image, busybox_image, tmp_path):
    """``--call targets`` with the image: its client answers BuildKit's ``frontend.targets``
    subrequest with the Mockerfile frontend's own answer — what mason's built-in prints."""
    ctx = _ctx(tmp_path, mockerfile_image, busybox_image.ref, "t")
    through = mason_cli.cli("build", "--call", "targets", "-f", str(ctx / "Mockerfile.yaml"), str(ctx))
    builtin = mason_cli.cli("build", "--call", "targets", "--frontend", "mockerfile", "-f",
                            str(ctx / "Mockerfile.yaml"), str(ctx))
    assert through.stdout == builtin.stdout and "app" in through.stdout
    doc = json.loads(mason_cli.cli("build", "--call", "targets", "--format", "json", "-f",
                                   str(ctx / "Mockerfile.yaml"), str(ctx)).stdout)
    assert [t["name"] for t in doc["targets"]] == ["app"]
    p = mason_cli.cli("build", "--call", "outline", "-f", str(ctx / "Mockerfile.yaml"), str(ctx), check=False)
    assert p.returncode == 1 and "does not answer the 'outline' subrequest" in p.stderr, p.stderr


def test_mason_gets_the_images_located_error(mason_cli, mockerfile_image, busybox_image, tmp_path):
    ctx = write(tmp_path / "bad", {"Mockerfile.yaml": f"#syntax={mockerfile_image}\n"
                                                      + BAD.format(base=busybox_image.ref)})
    p = mason_cli.cli("build", "-f", str(ctx / "Mockerfile.yaml"), str(ctx), check=False)
    assert p.returncode == 1
    assert f"frontend image {mockerfile_image}: Mockerfile.yaml:6:3: error:" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_buildkitd_builds_through_the_image(buildkitd, mockerfile_image, busybox_image, tmp_path):
    nonce = os.urandom(4).hex()
    ctx = _ctx(tmp_path, mockerfile_image, busybox_image.ref, nonce)
    out = tmp_path / "out"
    p = buildkitd.buildctl("build", "--progress=plain", "--frontend", "gateway.v0",
                           "--opt", f"source={mockerfile_image}", "--local", f"context={ctx}",
                           "--local", f"dockerfile={ctx}", "--output", f"type=local,dest={out}", timeout=900)
    assert (out / "app" / "greeting.txt").read_text() == f"hello {nonce}\n"
    assert (out / "out" / "greeting").read_text() == f"hello {nonce}\n"
    assert (out / "out" / "size").read_text().strip() == str(len(f"hello {nonce}\n"))
    assert b"mason.gateway.client" not in p.stdout  # nothing but gRPC went through the frontend's stdout
    # an image: BuildKit's exporter takes the config the frontend returned
    oci = tmp_path / "img.tar"
    buildkitd.buildctl("build", "--frontend", "gateway.v0", "--opt", f"source={mockerfile_image}",
                       "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                       "--output", f"type=oci,dest={oci}", timeout=900)
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(oci), "-C", str(layout)], check=True)
    cfg = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci:{layout}"], capture_output=True,
                                    text=True, check=True, timeout=120).stdout)
    assert cfg["config"].get("WorkingDir") == "/src"


def test_buildkitd_gets_the_images_located_error(buildkitd, mockerfile_image, busybox_image, tmp_path):
    ctx = write(tmp_path / "bad", {"Mockerfile.yaml": BAD.format(base=busybox_image.ref)})
    p = buildkitd.buildctl("build", "--frontend", "gateway.v0", "--opt", f"source={mockerfile_image}",
                           "--local", f"context={ctx}", "--local", f"dockerfile={ctx}", check=False, timeout=900)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0
    assert "Mockerfile.yaml:5:3: error:" in err, err[-3000:]


def test_plugin_as_an_image(mason_cli, python_base, registry, busybox_image, buildkitd, tmp_path):
    """A plugin (examples/steps, pip-installed outside mason's environment) packaged the same
    way: its distribution (and entry point) go into the image; mason builds a Stepfile through
    it with ``# syntax=``, buildkitd with ``--opt source=`` and ``--opt filename=Stepfile``."""
    from tests.integration.test_examples import _install

    env = _install("steps", tmp_path)
    ref = registry.ref("mason-test/steps-frontend:1")
    mp = dict(os.environ, MASON_ROOT=str(mason_cli.root), MASON_CONTAINERD_ADDRESS=mason_cli.address, **env)
    p = subprocess.run([sys.executable, "-m", "mason", "frontend-image", "steps", "--base", python_base, "-t", ref,
                        "--push", "--progress=plain"], capture_output=True, text=True, env=mp, timeout=900,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-4000:]
    ctx = write(tmp_path / "ctx", {
        "Stepfile": f"# syntax={ref}\nbase {busybox_image.ref}\ncopy greeting.txt /srv/\n"
                    "run cat /srv/greeting.txt > /srv/out\n",
        "greeting.txt": "through the steps image\n"})
    out = tmp_path / "out"
    # mason's own environment has no steps plugin: only the image knows the language
    mason_cli.cli("build", "-f", str(ctx / "Stepfile"), "-o", f"type=local,dest={out}", str(ctx))
    assert (out / "srv" / "out").read_text() == "through the steps image\n"
    out2 = tmp_path / "out-bk"
    buildkitd.buildctl("build", "--frontend", "gateway.v0", "--opt", f"source={ref}", "--opt", "filename=Stepfile",
                       "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                       "--output", f"type=local,dest={out2}", timeout=900)
    assert (out2 / "srv" / "out").read_text() == "through the steps image\n"


def test_base_without_python_is_one_error(mason_cli, busybox_image):
    """A base whose Python cannot run mason (busybox: none at all) fails the packaging at its
    --prepare step with one error naming the base; no image is tagged."""
    p = mason_cli.cli("frontend-image", "mockerfile", "--base", busybox_image.ref, "-t",
                      "localhost/mason-test/no-python-frontend:1", check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"packaging frontend mockerfile on {busybox_image.ref}:" in p.stderr, p.stderr
    assert "python3" in p.stderr
    images = mason_cli.cli("images").stdout
    assert "no-python-frontend" not in images
