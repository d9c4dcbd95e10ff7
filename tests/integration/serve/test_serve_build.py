"""``buildctl build --frontend dockerfile.v0`` (BuildKit v0.32.2's client) against ``mason
serve``: the context and Dockerfile cross the session, the progress buildctl prints is mason's
steps and logs, and the outputs land where buildctl asked (mason's image store, a local
directory, an OCI archive on the client side)."""

from __future__ import annotations

import json
import tarfile

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def dockerfile_build(served, ctx, *extra: str, check: bool = True, meta=None, env=None):
    args = ["build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
            "--progress=plain", *extra]
    if meta is not None:
        args += ["--metadata-file", str(meta)]
    return served.buildctl(*args, check=check, env=env)


def test_image_output_with_progress(served, tmp_path):
    env = served.env
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {env.base}\nARG X=0\nCOPY hello.txt /hello.txt\n"
                      "RUN echo \"arg is $X\" && cat /hello.txt\n",
        "hello.txt": "hello from the client\n",
    })
    meta = tmp_path / "meta.json"
    p = dockerfile_build(served, ctx, "--opt", "build-arg:X=1", "--output", "type=image,name=served/app:1",
                         meta=meta)
    log = p.stderr
    assert "COPY hello.txt /hello.txt" in log, log
    assert "arg is 1" in log and "hello from the client" in log, log
    assert "DONE" in log
    md = json.loads(meta.read_text())
    digest = md["containerimage.digest"]
    assert digest.startswith("sha256:")
    imgs = {i.name: i for i in env.client.list_images()}
    assert "docker.io/served/app:1" in imgs, sorted(imgs)
    assert imgs["docker.io/served/app:1"].target.digest == digest


def test_target_and_errors(served, tmp_path):
    env = served.env
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {env.base} AS one\nRUN echo stage-one\nFROM {env.base} AS two\nRUN exit 3\n",
    })
    ok = dockerfile_build(served, ctx, "--opt", "target=one", "--output", "type=image,name=served/one")
    assert "stage-one" in ok.stderr
    bad = dockerfile_build(served, ctx, "--output", "type=image,name=served/two", check=False)
    assert bad.returncode != 0
    assert "exit code: 3" in bad.stderr or "exit code 3" in bad.stderr, bad.stderr
    missing = dockerfile_build(served, ctx, "--opt", "filename=Nope", check=False)
    assert missing.returncode != 0 and "Nope" in missing.stderr


def test_local_and_oci_outputs(served, tmp_path):
    env = served.env
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {env.base}\nRUN mkdir /out && echo made > /out/made.txt && ln -s made.txt /out/link\n",
    })
    dest = tmp_path / "dest"
    dockerfile_build(served, ctx, "--output", f"type=local,dest={dest}")
    assert (dest / "out" / "made.txt").read_text() == "made\n"
    assert (dest / "out" / "link").is_symlink()
    assert (dest / "bin" / "busybox").exists() or (dest / "bin").exists()

    oci = tmp_path / "img.tar"
    dockerfile_build(served, ctx, "--output", f"type=oci,dest={oci}")
    with tarfile.open(oci) as t:
        names = t.getnames()
        assert "index.json" in names and "oci-layout" in names
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["mediaType"].startswith("application/vnd.oci.image")


def test_context_edit_sends_only_the_changed_file(served, tmp_path):
    env = served.env
    files = {f"f{i}.bin": bytes([i]) * 10000 for i in range(30)}
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nCOPY . /ctx/\nRUN ls /ctx | wc -l\n", **files})
    transfers = served.env.root / "serve" / "transfers.log"

    def context_transfers():
        lines = [json.loads(x) for x in transfers.read_text().splitlines()] if transfers.exists() else []
        return [x for x in lines if x["name"] == "context" and x["entries"] > 1]

    dockerfile_build(served, ctx, "--output", "type=image,name=served/ctx")
    first = context_transfers()
    assert first and first[-1]["files"] >= 31 and first[-1]["bytes"] >= 300000, first
    (ctx / "f7.bin").write_bytes(b"edited")
    p = dockerfile_build(served, ctx, "--output", "type=image,name=served/ctx")
    edit = context_transfers()[len(first):]
    assert [(x["files"], x["bytes"]) for x in edit] == [(1, len(b"edited"))], edit
    assert "COPY . /ctx/" in p.stderr


def test_tar_and_docker_outputs(served, tmp_path):
    """buildctl --output type=tar (the root filesystem as one tar stream) and type=docker (a
    docker-archive image that skopeo reads), written on the client side through FileSend."""
    import subprocess

    env = served.env
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {env.base}\nRUN mkdir /out && echo made > /out/made.txt && ln -s made.txt /out/link\n"
                      "CMD [\"cat\", \"/out/made.txt\"]\n",
    })
    tar = tmp_path / "fs.tar"
    dockerfile_build(served, ctx, "--output", f"type=tar,dest={tar}")
    with tarfile.open(tar) as t:
        made = t.getmember("out/made.txt")
        assert t.extractfile(made).read() == b"made\n"  # type: ignore[union-attr]
        assert t.getmember("out/link").issym() and t.getmember("out/link").linkname == "made.txt"
        assert "bin/busybox" in t.getnames()
    docker = tmp_path / "img.docker.tar"
    dockerfile_build(served, ctx, "--output", f"type=docker,name=served/docker:1,dest={docker}")
    with tarfile.open(docker) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["served/docker:1"], manifest
    p = subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{docker}"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["config"]["Cmd"] == ["cat", "/out/made.txt"]
