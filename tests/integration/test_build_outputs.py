"""``mason build --output`` end to end (issue 7), checked by tools other than mason: skopeo reads
the OCI and Docker archives and pulls what was pushed, umoci unpacks, ``ctr`` runs the stored
image, the local directory and rootfs tar are walked as files. Bad output specs fail before any
step runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.registry import skopeo
from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration

# /out/gone.txt and /out/gonedir are removed by the second RUN: the final rootfs lacks them, and
# a layer-by-layer export would carry whiteouts for them.
DOCKERFILE = """\
FROM {base}
RUN mkdir -p /out/sub && echo hello > /out/hello.txt && chmod 0640 /out/hello.txt \\
 && chown 1000:1000 /out/hello.txt && ln -s hello.txt /out/link && echo gone > /out/gone.txt \\
 && mkdir /out/gonedir && touch /out/gonedir/x && chmod 0700 /out/sub
RUN rm /out/gone.txt && rm -r /out/gonedir && echo second > /out/sub/second
CMD ["cat", "/out/hello.txt"]
"""


def ctr(env, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", env.address, "-n", "mason", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True,
                   capture_output=True, timeout=120)
    return bundle / "rootfs"


def check_final_rootfs(root: Path, owner: tuple[int, int] | None = (1000, 1000)) -> None:
    """What the Dockerfile above leaves in /out, as Docker's semantics give it (``owner``: of
    /out/hello.txt; None: the calling user's, as a ``type=local`` output has it)."""
    out = root / "out"
    s = os.lstat(out / "hello.txt")
    assert (s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode)) == (*(owner or (os.getuid(), os.getgid())), 0o640)
    assert (out / "hello.txt").read_bytes() == b"hello\n"
    assert os.readlink(out / "link") == "hello.txt"
    assert stat.S_IMODE(os.lstat(out / "sub").st_mode) == 0o700
    assert (out / "sub" / "second").read_bytes() == b"second\n"
    assert not os.path.lexists(out / "gone.txt") and not os.path.lexists(out / "gonedir")
    assert sorted(os.listdir(out)) == ["hello.txt", "link", "sub"]
    assert (root / "bin" / "busybox").is_file()  # the base image's files are there too
    assert not [p for p in root.rglob("*") if p.name.startswith(".wh.")]


def digest_of(stdout: str) -> str:
    return stdout.split()[0]


def test_every_file_output_in_one_build(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=env.base)})
    o = tmp_path / "o"
    o.mkdir()
    p = env.cli("build", "--progress=plain", "-t", "it-out:1", str(ctx),
                "--output", "type=image,name=it-out:1",
                "--output", f"type=oci,dest={o / 'oci.tar'}",
                "--output", f"type=docker,dest={o / 'docker.tar'}",
                "--output", f"type=local,dest={o / 'rootfs'}",
                "--output", f"type=tar,dest={o / 'rootfs.tar'}")
    assert p.returncode == 0, p.stderr
    digest = digest_of(p.stdout)
    assert p.stdout.split()[1:] == ["docker.io/library/it-out:1"]

    # OCI archive: skopeo reads it (same manifest), umoci unpacks the final filesystem
    info = json.loads(skopeo("inspect", f"oci-archive:{o / 'oci.tar'}"))
    assert info["Digest"] == digest and len(info["Layers"]) == 3
    skopeo("copy", f"oci-archive:{o / 'oci.tar'}", f"oci:{tmp_path / 'layout'}:t")
    rootfs = umoci_unpack(tmp_path / "layout", "t", tmp_path / "bundle")
    check_final_rootfs(rootfs)
    runtime = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert runtime["process"]["args"] == ["cat", "/out/hello.txt"]
    with tarfile.open(o / "oci.tar") as tar:
        index = json.load(tar.extractfile("index.json"))
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/it-out:1"

    # Docker archive: skopeo reads it, the config is the image's
    dinfo = json.loads(skopeo("inspect", "--config", f"docker-archive:{o / 'docker.tar'}"))
    assert dinfo["config"]["Cmd"] == ["cat", "/out/hello.txt"]
    assert len(dinfo["rootfs"]["diff_ids"]) == 3
    with tarfile.open(o / "docker.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["it-out:1"]

    # type=local: exactly the final rootfs, owned by the calling user; type=tar: the same as a tar
    check_final_rootfs(o / "rootfs", owner=None)
    with tarfile.open(o / "rootfs.tar") as tar:
        members = {m.name.lstrip("./").rstrip("/"): m for m in tar.getmembers()}
    assert members["out/hello.txt"].uid == 1000 and members["out/hello.txt"].mode & 0o7777 == 0o640
    assert members["out/link"].issym() and members["out/link"].linkname == "hello.txt"
    assert "out/gone.txt" not in members and "out/gonedir" not in members
    assert not [n for n in members if os.path.basename(n).startswith(".wh.")]

    # the image store has it, and containerd runs its CMD
    r = ctr(env, "run", "--rm", "docker.io/library/it-out:1", "mason-it-outputs-run")
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
    assert "exporting to image" in p.stderr
    assert clean(env.leftovers()), env.leftovers()


def test_dash_o_dir_is_local_and_tags_without_output_store(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=env.base)})
    p = env.cli("build", "-o", str(tmp_path / "dir"), str(ctx))
    assert p.returncode == 0, p.stderr
    check_final_rootfs(tmp_path / "dir", owner=None)
    assert p.stdout == ""  # no image was made: nothing to name
    # -t alone is type=image: the store names it
    p = env.cli("build", "-q", "-t", "it-tag-only", str(ctx))
    assert p.returncode == 0, p.stderr
    assert env.client.get_image("docker.io/library/it-tag-only:latest").target.digest == p.stdout.strip()


def test_tar_to_stdout(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN echo x > /x\n"})
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    p = subprocess.run([sys.executable, "-m", "mason", "build", "-q", "-o", "-", str(ctx)], capture_output=True,
                       env=e, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "stdout.tar"
    out.write_bytes(p.stdout)
    with tarfile.open(out) as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers()}
        assert tar.extractfile(next(m for m in tar.getmembers() if m.name.lstrip("./") == "x")).read() == b"x\n"
    assert "bin/busybox" in names


def test_push_to_registry_and_pull_back(build_env, registry, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=env.base)})
    ref = registry.ref("mason-it/pushed:1")
    p = env.cli("build", "-q", "--output", f"type=registry,name={ref}", str(ctx))
    assert p.returncode == 0, p.stderr
    digest = digest_of(p.stdout)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert info["Digest"] == digest
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", f"docker://{ref}", f"oci:{tmp_path / 'pulled'}:p")
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    check_final_rootfs(umoci_unpack(tmp_path / "pulled", "p", tmp_path / "bundle"))
    # type=registry does not name anything in the image store
    assert not [i for i in env.client.list_images() if i.name == ref]

    # -t NAME --push: stored and pushed, one digest
    ref2 = registry.ref("mason-it/pushed:2")
    p = env.cli("build", "-q", "-t", ref2, "--push", str(ctx))
    assert p.returncode == 0, p.stderr
    digest2 = digest_of(p.stdout)
    assert env.client.get_image(ref2).target.digest == digest2
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", f"docker://{ref2}", f"oci:{tmp_path / 'pulled2'}:p")
    index = json.loads((tmp_path / "pulled2" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest2
    assert clean(env.leftovers()), env.leftovers()


MARKER_DOCKERFILE = """\
FROM {base}
RUN --mount=type=cache,id=it-output-marker,target=/m sh -c 'echo ran >> /m/ran'
"""


@pytest.mark.parametrize("spec, message", [
    ("type=bogus,dest=x", "unknown output type 'bogus'"),
    ("type=oci", "output type=oci needs dest=PATH"),
    ("type=docker,dest={file}/x.tar", "output type=docker: cannot write {file}/x.tar: {file} is not a directory"),
    ("type=local,dest={file}", "output type=local: dest {file} is not a directory"),
    ("type=registry,name=127.0.0.1:9/x/y:z", "output type=registry: registry 127.0.0.1:9 is unreachable"),
    ("type=image,name=Bad..Name", "output type=image:"),
])
def test_bad_output_fails_before_any_step(build_env, tmp_path, spec, message):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": MARKER_DOCKERFILE.format(base=env.base)})
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    spec = spec.format(file=a_file)
    p = env.cli("build", "--progress=plain", "--output", spec, str(ctx))
    assert p.returncode == 1, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), p.stderr
    assert message.format(file=a_file) in errors[0]
    assert "#1 " not in p.stderr  # no step started: not even the base image was loaded
    # the RUN never ran: a later build that reads the cache mount finds no marker
    reader = write(tmp_path / "reader", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN --mount=type=cache,id=it-output-marker,target=/m sh -c 'ls /m > /seen'\n")})
    p = env.cli("build", "-o", str(tmp_path / "seen"), str(reader))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "seen" / "seen").read_text() == ""
    assert not (env.root / "history").exists() or len(list((env.root / "history").iterdir())) == 1


def test_push_flag_needs_a_name(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": MARKER_DOCKERFILE.format(base=env.base)})
    p = env.cli("build", "--push", str(ctx))
    assert p.returncode == 1 and p.stderr.strip() == "error: --push needs a name: give -t NAME (or --output type=registry,name=NAME)"
    p = env.cli("build", "--push", "-t", "x", "-o", str(tmp_path / "d"), str(ctx))
    assert p.returncode == 1 and "--push and an output of type=local cannot be used together" in p.stderr
