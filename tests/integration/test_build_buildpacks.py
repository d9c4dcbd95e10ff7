"""Buildpacks builds for real (``mason build -f project.toml``): the lifecycle's detect, build and
export steps run on the session busybox (the builder), the image is the run image plus the app
and launch layers; containerd's ``ctr run`` runs its default process, skopeo and umoci read it.

The project has three buildpacks from the context (``uri``): ``never`` fails detection (it is
optional, so the group passes without it and its build never runs), ``launch`` writes a launch
layer with a tool and a ``launch.toml`` default process (plus a ``build`` layer that only later
buildpacks see), ``cached`` keeps a counter in a ``cache`` layer: a second build after an app
change finds the first build's layer (restored from the cache mount) and counts 2."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from mason.backends.oci import OciLayout
from mason.ir.resolver import PlatformSpec
from tests.fixtures.images import APPLETS, _busybox_layer, _tarinfo, busybox_config, gzip_bytes, write_image
from tests.fixtures.registry import skopeo, skopeo_copy_layout
from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration


def ctr(env, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", env.address, "-n", "mason", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True,
                   capture_output=True, timeout=120)
    return bundle / "rootfs"


def _marker_layer(text: str) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    data = text.encode()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo("etc/", tarfile.DIRTYPE, 0o755))
        tar.addfile(_tarinfo("etc/run-image", tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))
    return buf.getvalue()


def push_run_image(registry, tmp: Path, name: str, marker: str) -> str:
    """A run image: the session busybox layer plus ``/etc/run-image`` holding ``marker``,
    pushed to the session registry as ``library/NAME:latest``."""
    import hashlib

    plat = PlatformSpec.default()
    bb, bb_diff = _busybox_layer(APPLETS)
    tar = _marker_layer(marker)
    cfg = busybox_config(plat, bb_diff)
    cfg["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
    cfg["history"].append({"created": cfg["created"], "created_by": f"run image marker {marker}"})
    layout = OciLayout.create(tmp / f"{name}-oci")
    write_image(layout, cfg, [bb, gzip_bytes(tar)], "latest", plat)
    ref = registry.ref(f"library/{name}:latest")
    skopeo_copy_layout(layout.root, "latest", ref)
    return ref


NEVER_DETECT = "#!/bin/sh\n# this app is never for me\nexit 100\n"
NEVER_BUILD = "#!/bin/sh\necho never > /workspace/never-ran\nexit 1\n"
LAUNCH_DETECT = "#!/bin/sh\n[ -f app.sh ] || exit 100\nexit 0\n"
LAUNCH_BUILD = """\
#!/bin/sh
set -eu
layers=$1
greeting=$(cat "$2/env/GREETING")
mkdir -p "$layers/tools/bin" "$layers/buildtool/bin"
printf '#!/bin/sh\\necho "greet %s"\\n' "$greeting" > "$layers/tools/bin/greet"
chmod 755 "$layers/tools/bin/greet"
printf '[types]\\nlaunch = true\\n' > "$layers/tools.toml"
printf '#!/bin/sh\\necho helper-ran\\n' > "$layers/buildtool/bin/helper"
chmod 755 "$layers/buildtool/bin/helper"
printf '[types]\\nbuild = true\\n' > "$layers/buildtool.toml"
cat > "$layers/launch.toml" <<EOF
[[processes]]
type = "web"
command = ["/workspace/app.sh"]
default = true

[[processes]]
type = "hello"
command = ["echo"]
args = ["hello", "process"]
EOF
echo "launch buildpack done"
"""
CACHED_DETECT = "#!/bin/sh\nexit 0\n"
CACHED_BUILD = """\
#!/bin/sh
set -eu
layers=$1
mkdir -p "$layers/deps"
n=$(cat "$layers/deps/count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$layers/deps/count"
printf '[types]\\ncache = true\\n' > "$layers/deps.toml"
echo "$n" > /workspace/build-count
helper > /workspace/helper-out
echo "cached buildpack: build $n"
"""
APP = """\
#!/bin/sh
echo "app $(cat /workspace/version) $(greet) build $(cat /workspace/build-count) $(cat /etc/run-image)"
"""

PROJECT = """\
[_]
schema-version = "0.2"
id = "it.three-{nonce}"
name = "Three"
version = "1.0"

[io.buildpacks]
builder = "{builder}"
run-image = "{run}"
{filter}

[[io.buildpacks.group]]
uri = "bp/never"
optional = true

[[io.buildpacks.group]]
uri = "bp/launch"

[[io.buildpacks.group]]
uri = "bp/cached"

[[io.buildpacks.build.env]]
name = "GREETING"
value = "hi-{nonce}"
"""

EXCLUDE = 'exclude = ["secret.txt", "bp", "notes/*.tmp"]'
INCLUDE = 'include = ["app.sh", "version", "notes/"]'


def project_context(tmp: Path, text: str, version: str) -> Path:
    x = 0o755
    return write(tmp, {
        "project.toml": text, "app.sh": APP, "version": version, "secret.txt": "do not ship\n",
        "notes/a.txt": "a\n", "notes/b.tmp": "tmp\n", "other/keep.txt": "other\n",
        "bp/never/buildpack.toml": 'api = "0.10"\n[buildpack]\nid = "it/never"\nversion = "1"\n',
        "bp/never/bin/detect": NEVER_DETECT, "bp/never/bin/build": NEVER_BUILD,
        "bp/launch/buildpack.toml": 'api = "0.10"\n[buildpack]\nid = "it/launch"\nversion = "1"\n',
        "bp/launch/bin/detect": LAUNCH_DETECT, "bp/launch/bin/build": LAUNCH_BUILD,
        "bp/cached/buildpack.toml": 'api = "0.10"\n[buildpack]\nid = "it/cached"\nversion = "1"\n',
        "bp/cached/bin/detect": CACHED_DETECT, "bp/cached/bin/build": CACHED_BUILD,
    }, modes={"app.sh": x, **{f"bp/{b}/bin/{s}": x for b in ("never", "launch", "cached")
                              for s in ("detect", "build")}})


def workspace(root: Path) -> set[str]:
    ws = root / "workspace"
    return {str(p.relative_to(ws)) for p in ws.rglob("*")}


@pytest.fixture(scope="module")
def run_images(registry, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cnb-run-images")
    return push_run_image(registry, tmp, "cnb-run-one", "run-one\n"), push_run_image(registry, tmp, "cnb-run-two",
                                                                                      "run-two\n")


def test_buildpacks_build_runs_cache_and_filters(build_env, tmp_path, run_images):
    env = build_env
    nonce = uuid.uuid4().hex[:12]
    run_one, _ = run_images
    text = PROJECT.format(nonce=nonce, builder=env.base, run=run_one, filter=EXCLUDE)
    ctx = project_context(tmp_path / "ctx", text, "v1")
    tag = f"it-cnb-{nonce}:1"
    p = env.cli("build", "--progress=plain", "-f", str(ctx / "project.toml"), "-t", tag, str(ctx))
    assert p.returncode == 0, p.stderr
    log = p.stderr
    # detection: never fails (optional, dropped), launch and cached pass; never's build is skipped
    assert "fail: bp/never (optional)" in log and "pass: bp/launch" in log and "pass: bp/cached" in log
    assert "skip: bp/never (not in the detected group)" in log
    assert "cached buildpack: build 1" in log and "restored cache layer" not in log

    # containerd runs the default process (web: /workspace/app.sh) through the launcher: the
    # launch layer's tool is on the PATH, the platform env reached the buildpack
    r = ctr(env, "run", "--rm", f"docker.io/library/{tag}", f"mason-it-cnb-{nonce}")
    assert (r.returncode, r.stdout) == (0, f"app v1 greet hi-{nonce} build 1 run-one\n"), r.stderr
    # another process by its type, as the launcher's first argument (ctr's arguments replace the
    # entrypoint too)
    r = ctr(env, "run", "--rm", f"docker.io/library/{tag}", f"mason-it-cnb-{nonce}-hello",
            "/cnb/lifecycle/launcher", "hello")
    assert (r.returncode, r.stdout) == (0, "hello process\n"), r.stderr

    # the image as other tools see it: an OCI archive read by skopeo, unpacked by umoci
    oci_tar = tmp_path / "img.tar"
    p = env.cli("build", "-f", str(ctx / "project.toml"), str(ctx), "--output", f"type=oci,dest={oci_tar}")
    assert p.returncode == 0, p.stderr
    cfg = json.loads(skopeo("inspect", "--config", f"oci-archive:{oci_tar}"))
    assert cfg["config"]["Entrypoint"] == ["/cnb/lifecycle/launcher"] and cfg["config"].get("Cmd") is None
    assert cfg["config"]["WorkingDir"] == "/workspace"
    labels = cfg["config"]["Labels"]
    assert json.loads(labels["io.buildpacks.project.metadata"])["id"] == f"it.three-{nonce}"
    lifecycle = json.loads(labels["io.buildpacks.lifecycle.metadata"])
    assert lifecycle["runImage"]["image"] == run_one
    assert [b["uri"] for b in json.loads(labels["io.buildpacks.build.metadata"])["buildpacks"]] == [
        "bp/never", "bp/launch", "bp/cached"]
    run_cfg = json.loads(skopeo("inspect", "--config", "--tls-verify=false", f"docker://{run_one}"))
    # the run image's layers first, unchanged, then the app, launcher, launch and process layers
    assert cfg["rootfs"]["diff_ids"][:2] == run_cfg["rootfs"]["diff_ids"]
    assert len(cfg["rootfs"]["diff_ids"]) > 2
    skopeo("copy", f"oci-archive:{oci_tar}", f"oci:{tmp_path / 'layout'}:t")
    root = umoci_unpack(tmp_path / "layout", "t", tmp_path / "bundle")
    assert (root / "etc/run-image").read_text() == "run-one\n"
    # exclude: no secret.txt, no buildpack sources, no notes/*.tmp; the build's outputs are there
    assert workspace(root) == {"project.toml", "app.sh", "version", "notes", "notes/a.txt", "other",
                               "other/keep.txt", "build-count", "helper-out"}
    assert (root / "workspace/helper-out").read_text() == "helper-ran\n"  # a build layer, seen by a later buildpack
    layers = {str(p.relative_to(root / "layers")) for p in (root / "layers").rglob("*")}
    assert "bp1/tools.toml" in layers and "bp1/tools/bin/greet" in layers
    assert not any("buildtool" in x for x in layers)  # build layers are not launched
    assert not any("deps" in x for x in layers)  # nor cache layers
    assert (root / "cnb/process/web").is_file() and (root / "cnb/process/default").is_file()

    # second build after an app change: the cache layer comes back from the cache mount
    (ctx / "version").write_text("v2")
    p = env.cli("build", "--progress=plain", "-f", str(ctx / "project.toml"), "-t", tag, str(ctx))
    assert p.returncode == 0, p.stderr
    assert "restored cache layer deps" in p.stderr and "cached buildpack: build 2" in p.stderr
    r = ctr(env, "run", "--rm", f"docker.io/library/{tag}", f"mason-it-cnb-{nonce}-2")
    assert (r.returncode, r.stdout) == (0, f"app v2 greet hi-{nonce} build 2 run-one\n"), r.stderr
    assert clean(env.leftovers()), env.leftovers()


def test_buildpacks_include_picks_the_workspace(build_env, tmp_path, run_images):
    env = build_env
    nonce = uuid.uuid4().hex[:12]
    text = PROJECT.format(nonce=nonce, builder=env.base, run=run_images[0], filter=INCLUDE)
    ctx = project_context(tmp_path / "ctx", text, "v1")
    out = tmp_path / "rootfs"
    p = env.cli("build", "-f", str(ctx / "project.toml"), str(ctx), "--output", f"type=local,dest={out}")
    assert p.returncode == 0, p.stderr
    # include: only what it names (plus what the buildpacks wrote), not project.toml or other/
    assert workspace(out) == {"app.sh", "version", "notes", "notes/a.txt", "notes/b.tmp", "build-count",
                              "helper-out"}


def test_buildpacks_detect_error_and_no_group(build_env, tmp_path, run_images):
    env = build_env
    nonce = uuid.uuid4().hex[:12]
    text = PROJECT.format(nonce=nonce, builder=env.base, run=run_images[0], filter="")
    ctx = project_context(tmp_path / "ctx", text, "v1")
    # a non-optional buildpack failing detection: no group passes
    (ctx / "project.toml").write_text(text.replace("optional = true\n", ""))
    p = env.cli("build", "--progress=plain", "-f", str(ctx / "project.toml"), str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "no buildpack group passed detection" in p.stderr
    # detect exiting with another code than 0/100 is an error naming the buildpack and the code
    (ctx / "bp/never/bin/detect").write_text("#!/bin/sh\nexit 3\n")
    (ctx / "project.toml").write_text(text)
    p = env.cli("build", "--progress=plain", "-f", str(ctx / "project.toml"), str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "detect of buildpack bp/never exited with code 3" in p.stderr


CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus" / "buildpacks"
SAMPLE_APP = '#!/usr/bin/env bash\necho "hello from the bash-script app on $(. /etc/os-release; echo "$ID")"\n'


def test_buildpacks_corpus_bash_script_sample_on_debian(build_env, debian_image, tmp_path):
    """The samples repository's bash-script app as it is (project.toml and its buildpack from
    the corpus; its bash scripts need the Debian base as builder and run image)."""
    env = build_env
    ctx = tmp_path / "app"
    files = {"project.toml": "samples__apps_bash-script_project.toml",
             "bash-script-buildpack/buildpack.toml": "samples__apps_bash-script_bash-script-buildpack_buildpack.toml",
             "bash-script-buildpack/bin/build": "samples__apps_bash-script_bash-script-buildpack_bin_build",
             "bash-script-buildpack/bin/detect": "samples__apps_bash-script_bash-script-buildpack_bin_detect"}
    write(ctx, {dst: (CORPUS / src).read_bytes() for dst, src in files.items()}
          | {"app.sh": SAMPLE_APP, "README.md": "# the sample\n"},
          modes={"app.sh": 0o755, "bash-script-buildpack/bin/build": 0o755, "bash-script-buildpack/bin/detect": 0o755})
    tag = f"it-cnb-sample-{uuid.uuid4().hex[:10]}:1"
    p = env.cli("build", "--progress=plain", "--frontend", "buildpacks", "-f", str(ctx / "project.toml"),
                "--build-arg", f"BUILDER={debian_image.ref}", "-t", tag, str(ctx))
    assert p.returncode == 0, p.stderr[-4000:]
    assert "---> Hello Bash Script buildpack" in p.stderr and "---> Bash Script buildpack" in p.stderr
    assert "pass: bash-script-buildpack/" in p.stderr
    r = ctr(env, "run", "--rm", f"docker.io/library/{tag}", f"mason-it-cnb-sample-{uuid.uuid4().hex[:8]}")
    assert (r.returncode, r.stdout) == (0, "hello from the bash-script app on debian\n"), r.stderr
    out = tmp_path / "rootfs"
    p = env.cli("build", "-f", str(ctx / "project.toml"), "--build-arg", f"BUILDER={debian_image.ref}", str(ctx),
                "--output", f"type=local,dest={out}")
    assert p.returncode == 0, p.stderr[-4000:]
    # the sample's exclude list: no README.md, no buildpack sources in the app
    assert workspace(out) == {"project.toml", "app.sh"}
    assert (out / "cnb/process/web").is_file() and (out / "cnb/process/default").is_file()
    assert (out / "usr/bin/bash").is_file()  # the run image is the builder (Debian)


IMG_DETECT = "#!/bin/sh\nexit 0\n"
IMG_BUILD = """\
#!/bin/sh
set -eu
mkdir -p "$1/tool/bin"
printf '#!/bin/sh\\necho "imgtool foo=$(cat /workspace/inline-foo) layers=$(cat /workspace/inline-layers)"\\n' \\
  > "$1/tool/bin/imgtool"
chmod 755 "$1/tool/bin/imgtool"
printf '[types]\\nlaunch = true\\n' > "$1/tool.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["imgtool"]\\n' > "$1/launch.toml"
"""
INLINE = ('test -d "$CNB_LAYERS_DIR" && test -f "$CNB_BUILD_PLAN_PATH" && test -f "$CNB_BP_PLAN_PATH" '
          '&& cat "$CNB_PLATFORM_DIR/env/FOO" > /workspace/inline-foo && echo "$CNB_LAYERS_DIR" > /workspace/inline-layers')
SOURCES = """\
[_]
schema-version = "0.2"
id = "it.sources-{nonce}"

[io.buildpacks]
builder = "{builder}"
run-image = "{run}"

[[io.buildpacks.pre.group]]
id = "it/inline"
  [io.buildpacks.pre.group.script]
  api = "0.10"
  inline = '{inline}'

[[io.buildpacks.group]]
id = "it/img"
version = "1"
uri = "docker://{bpimage}"

[[io.buildpacks.build.env]]
name = "FOO"
value = "bar-{nonce}"
"""


def push_buildpack_image(registry, tmp: Path, name: str) -> str:
    """busybox plus ``/cnb/buildpacks/it_img/1`` (buildpack ``it/img`` version 1), as a builder
    or buildpack image carries it."""
    import hashlib
    import io
    import tarfile

    plat = PlatformSpec.default()
    bb, bb_diff = _busybox_layer(APPLETS)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("cnb/", "cnb/buildpacks/", "cnb/buildpacks/it_img/", "cnb/buildpacks/it_img/1/",
                  "cnb/buildpacks/it_img/1/bin/"):
            tar.addfile(_tarinfo(d, tarfile.DIRTYPE, 0o755))
        for f, data, mode in (("buildpack.toml", 'api = "0.10"\n[buildpack]\nid = "it/img"\nversion = "1"\n', 0o644),
                              ("bin/detect", IMG_DETECT, 0o755), ("bin/build", IMG_BUILD, 0o755)):
            b = data.encode()
            tar.addfile(_tarinfo(f"cnb/buildpacks/it_img/1/{f}", tarfile.REGTYPE, mode, size=len(b)), io.BytesIO(b))
    tar_bytes = buf.getvalue()
    cfg = busybox_config(plat, bb_diff)
    cfg["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
    cfg["history"].append({"created": cfg["created"], "created_by": "buildpack it/img 1"})
    layout = OciLayout.create(tmp / f"{name}-oci")
    write_image(layout, cfg, [bb, gzip_bytes(tar_bytes)], "1", plat)
    ref = registry.ref(f"library/{name}:1")
    skopeo_copy_layout(layout.root, "1", ref)
    return ref


def test_buildpacks_from_an_inline_script_and_an_image(build_env, registry, tmp_path, run_images):
    """An inline ``script`` buildpack (which sees the CNB_* paths and the platform env) and one
    from ``/cnb/buildpacks/<id>/<version>`` of an image (``uri = "docker://…"``), whose launch
    layer's tool is the default (``web``) process."""
    env = build_env
    nonce = uuid.uuid4().hex[:12]
    bpimage = push_buildpack_image(registry, tmp_path, f"cnb-bp-img-{nonce}")
    text = SOURCES.format(nonce=nonce, builder=env.base, run=run_images[0], inline=INLINE, bpimage=bpimage)
    ctx = write(tmp_path / "ctx", {"project.toml": text, "app.txt": "app\n"})
    tag = f"it-cnb-sources-{nonce}:1"
    p = env.cli("build", "--progress=plain", "-f", str(ctx / "project.toml"), "-t", tag, str(ctx))
    assert p.returncode == 0, p.stderr[-4000:]
    assert "pass: it/inline" in p.stderr and "pass: it/img@1" in p.stderr
    r = ctr(env, "run", "--rm", f"docker.io/library/{tag}", f"mason-it-cnb-sources-{nonce}")
    assert (r.returncode, r.stdout) == (0, f"imgtool foo=bar-{nonce} layers=/layers/bp0\n"), r.stderr
