"""``--cache-to type=registry`` / ``--cache-from`` (issue 18) against the fixture registry,
through a counting proxy that records every request.

* The cache pushed by one build makes a build on a *fresh machine* (a new state root with its
  own containerd: empty content store, no snapshots) run no step and give the same image digest.
* Lazy import: that build, pushing its image to the same registry, fetches the cache's config
  and no layer blob at all (the layers are mounted across repositories).
* ``type=inline``: an image pushed with its cache in its config is a ``--cache-from`` by itself.
* A missing ref, wrong credentials and a corrupt blob are warnings; the build goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.fixtures.counting_proxy import CountingProxy
from tests.fixtures.registry import skopeo
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DF = """\
FROM {base} AS build
RUN echo "$(echo MARK)-A" && echo built-{nonce} > /a
FROM {base}
COPY --from=build /a /a
COPY f.txt /f.txt
RUN echo "$(echo MARK)-B" && cat /f.txt /a > /b
"""
EPOCH = "SOURCE_DATE_EPOCH=1700000000"


@pytest.fixture
def proxy(registry):
    p = CountingProxy(registry.host).start()
    yield p
    p.stop()


def ctx(tmp_path: Path, base: str) -> Path:
    # a nonce: this test's layers are its own in the shared registry and containerd (f.txt's too:
    # the corrupt-blob test damages its blobs in the registry's storage, shared by every repository)
    nonce = uuid.uuid4().hex
    return write(tmp_path / "ctx", {"Dockerfile": DF.format(base=base, nonce=nonce), "f.txt": f"one {nonce}\n"})


def marks(p) -> set[str]:
    return {w.split("-", 1)[1] for w in p.stderr.split() if w.startswith("MARK-")}


def run(env, root: Path, *args: str, fresh: bool = False, extra_env: dict | None = None):
    """``mason build`` on state root ``root``; ``fresh``: with its own containerd (a new machine)."""
    e = dict(os.environ, MASON_ROOT=str(root), **(extra_env or {}))
    if fresh:
        e.pop("MASON_CONTAINERD_ADDRESS", None)
    else:
        e["MASON_CONTAINERD_ADDRESS"] = env.address
    p = subprocess.run([sys.executable, "-m", "mason", "build", "--progress=plain", "--build-arg", EPOCH, *args],
                       capture_output=True, text=True, env=e, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def fresh_root(tmp_path_factory):
    """A state root for a build with its own containerd, stopped (by its PID file) afterwards."""
    import shutil
    import tempfile

    from mason.backends.containerd.daemon import ManagedContainerd

    root = Path(tempfile.mkdtemp(prefix="mason-rc-"))
    yield root
    ManagedContainerd.at(root).stop()
    subprocess.run(["umount", "-R", str(root)], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def test_registry_cache_on_a_fresh_machine_pulls_no_layer(build_env, proxy, fresh_root, tmp_path):
    c = ctx(tmp_path, build_env.base)
    cache = proxy.ref("cache/app:main")
    first = run(build_env, tmp_path / "r1", "--cache-to", f"type=registry,ref={cache},mode=max",
                "-o", f"type=registry,name={proxy.ref('app/one:1')}", str(c))
    assert marks(first) == {"A", "B"}
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{cache}"))
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert raw["config"]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    cache_layers = {la["digest"] for la in raw["layers"]}

    proxy.clear()
    second = run(build_env, fresh_root, "--cache-from", cache, "--explain", "-o",
                 f"type=registry,name={proxy.ref('app/two:1')}", str(c), fresh=True)
    assert marks(second) == set(), second.stderr
    assert f"remote cache hit ({cache})" in second.stderr
    assert second.stdout.split()[0] == first.stdout.split()[0]  # the same image
    # lazy: the cache's config is the only blob read from the cache repository, and no layer
    # blob was fetched from anywhere through the proxy
    assert set(proxy.blob_gets("cache/app")) == {raw["config"]["digest"]}
    assert not set(proxy.blob_gets()) & cache_layers
    mounts = [p for m, p, s in proxy.requests if m == "POST" and "mount=" in p and "from=cache/app" in p]
    assert mounts  # the layers went across repositories, registry-side
    # the pushed image is complete: skopeo copies it out and it has the same layers
    pushed = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{proxy.ref('app/two:1')}"))
    skopeo("copy", "--src-tls-verify=false", f"docker://{proxy.ref('app/two:1')}", f"oci:{tmp_path / 'out'}:x")
    assert set(pushed["Layers"]) <= cache_layers


def test_content_edit_reruns_only_its_dependents(build_env, proxy, tmp_path):
    c = ctx(tmp_path, build_env.base)
    cache = proxy.ref("cache/edit:main")
    run(build_env, tmp_path / "r1", "--cache-to", f"type=registry,ref={cache},mode=max,image-manifest=false", str(c))
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{cache}"))
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"  # image-manifest=false
    (c / "f.txt").write_text("two\n")
    p = run(build_env, tmp_path / "r2", "--cache-from", f"type=registry,ref={cache}", str(c))
    assert marks(p) == {"B"}


def test_docker_media_types_round_trip_on_a_fresh_machine(build_env, proxy, fresh_root, tmp_path):
    """``oci-mediatypes=false``: the cache is a Docker manifest list (the index shape: an image
    manifest needs OCI media types) with Docker layer media types, and still gives the same
    image on a fresh machine."""
    c = ctx(tmp_path, build_env.base)
    cache = proxy.ref("cache/docker:main")
    first = run(build_env, tmp_path / "r1", "--cache-to", f"type=registry,ref={cache},oci-mediatypes=false",
                "-o", f"type=oci,dest={tmp_path / 'one.tar'}", str(c))
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{cache}"))
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    types = {m["mediaType"] for m in raw["manifests"]}
    assert types == {"application/vnd.buildkit.cacheconfig.v0", "application/vnd.docker.image.rootfs.diff.tar.gzip"}
    second = run(build_env, fresh_root, "--cache-from", cache, "-o", f"type=oci,dest={tmp_path / 'two.tar'}",
                 str(c), fresh=True)
    assert marks(second) == set(), second.stderr
    assert second.stdout.split()[0] == first.stdout.split()[0]


@pytest.mark.parametrize("compression", ["zstd", "uncompressed"])
def test_compressed_cache_round_trip_on_a_fresh_machine(build_env, proxy, registry, fresh_root, tmp_path,
                                                        compression):
    """``compression=zstd|uncompressed``: every layer blob of the cache is converted (its bytes
    decompress to its diff ID), a second export writes the very same cache, and a fresh
    machine unpacks those blobs (containerd's Apply) to rerun only the edited step's dependents."""
    import hashlib

    import zstandard

    c = ctx(tmp_path, build_env.base)
    cache, again = proxy.ref(f"cache/{compression}:main"), proxy.ref(f"cache/{compression}:again")
    want = {"zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
            "uncompressed": "application/vnd.oci.image.layer.v1.tar"}[compression]
    first = run(build_env, tmp_path / "r1", "--cache-to", f"type=registry,ref={cache},mode=max,compression={compression}",
                str(c))
    assert f"compression={compression}" in first.stderr
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{cache}"))
    assert raw["layers"] and {la["mediaType"] for la in raw["layers"]} == {want}
    for la in raw["layers"]:
        d = la["digest"]
        data = (registry.root / "docker/registry/v2/blobs/sha256" / d[7:9] / d[7:] / "data").read_bytes()
        if compression == "zstd":
            data = zstandard.ZstdDecompressor().stream_reader(data).read()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == la["annotations"]["containerd.io/uncompressed"]
    run(build_env, tmp_path / "r1", "--cache-to", f"type=registry,ref={again},mode=max,compression={compression}",
        str(c))
    assert json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{again}")) == raw

    (c / "f.txt").write_text("two\n")
    second = run(build_env, fresh_root, "--cache-from", cache, "-o", f"type=oci,dest={tmp_path / 'two.tar'}",
                 str(c), fresh=True)
    assert marks(second) == {"B"}, second.stderr  # RUN B ran on /a unpacked from the converted blobs


def test_inline_cache_round_trip(build_env, proxy, fresh_root, tmp_path):
    c = ctx(tmp_path, build_env.base)
    image = proxy.ref("app/inline:1")
    first = run(build_env, tmp_path / "r1", "--cache-to", "type=inline", "-o", f"type=registry,name={image}", str(c))
    cfg = json.loads(skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{image}"))
    assert "moby.buildkit.cache.v0" in cfg, first.stderr
    # the same build again from it: nothing runs, and with its inline cache the same records,
    # so the very same image
    second = run(build_env, fresh_root, "--cache-from", image, "--cache-to", "type=inline", "-o",
                 f"type=registry,name={proxy.ref('app/inl2:1')}", str(c), fresh=True)
    assert marks(second) == set(), second.stderr
    assert second.stdout.split()[0] == first.stdout.split()[0]


def test_missing_ref_wrong_credentials_and_a_corrupt_blob_are_warnings(build_env, proxy, registry, auth_registry,
                                                                       tmp_path):
    c = ctx(tmp_path, build_env.base)
    p = run(build_env, tmp_path / "r1", "--cache-from", proxy.ref("cache/none:nope"), str(c))
    assert marks(p) == {"A", "B"} and "building without it" in p.stderr

    docker_config = tmp_path / "docker"
    write(docker_config, {"config.json": json.dumps({"auths": {auth_registry.host: {
        "auth": __import__("base64").b64encode(b"mason:wrong").decode()}}})})
    p = run(build_env, tmp_path / "r2", "--cache-from", auth_registry.ref("cache/app:x"), str(c),
            extra_env={"DOCKER_CONFIG": str(docker_config)})
    assert "building without it" in p.stderr and "Traceback" not in p.stderr

    cache = proxy.ref("cache/corrupt:main")
    run(build_env, tmp_path / "r3", "--cache-to", f"type=registry,ref={cache},mode=max", str(c))
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{cache}"))
    base_layers = set(json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{build_env.base}"))["Layers"])
    own = [la["digest"] for la in raw["layers"] if la["digest"] not in base_layers]
    assert own
    for d in own:  # corrupt the blob in the registry's storage, and drop it from containerd's store
        data = registry.root / "docker/registry/v2/blobs/sha256" / d[7:9] / d[7:] / "data"
        b = bytearray(data.read_bytes())
        b[len(b) // 2] ^= 0xFF
        data.write_bytes(bytes(b))
        build_env.client.delete_content(d)
    (c / "f.txt").write_text("edited\n")
    p = run(build_env, tmp_path / "r4", "--cache-from", cache, str(c))
    assert "digest mismatch" in p.stderr
    assert marks(p) == {"A", "B"}


def test_a_push_failure_with_ignore_error_is_a_warning(build_env, tmp_path):
    c = ctx(tmp_path, build_env.base)
    # nothing listens on port 9 of loopback
    p = run(build_env, tmp_path / "r1", "--cache-to", "type=registry,ref=127.0.0.1:9/cache/x:1,ignore-error=true",
            str(c))
    assert "ignored: ignore-error=true" in p.stderr
    e = dict(os.environ, MASON_ROOT=str(tmp_path / "r2"), MASON_CONTAINERD_ADDRESS=build_env.address)
    q = subprocess.run([sys.executable, "-m", "mason", "build", "--cache-to", "type=registry,ref=127.0.0.1:9/cache/x:1",
                        str(c)], capture_output=True, text=True, env=e, timeout=300, stdin=subprocess.DEVNULL)
    assert q.returncode == 1 and "--cache-to 127.0.0.1:9/cache/x:1" in q.stderr and "Traceback" not in q.stderr


# -- multi-platform: the arm64 steps run under QEMU; the marks say which machine ran them ------

MULTI = """\
FROM {base} AS build
RUN echo "$(echo MARK)-A-$(uname -m)" && echo built-{nonce} > /a
FROM {base}
COPY --from=build /a /a
COPY f.txt /f.txt
RUN echo "$(echo MARK)-B-$(uname -m)" && cat /f.txt /a > /b
"""
TWO = "linux/amd64,linux/arm64"


@pytest.fixture(scope="module")
def multi_base(registry, foreign_busybox, tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox for amd64 (the host's) and arm64 (its own binary) under one index, pushed."""
    from tests.fixtures.images import build_busybox_index_layout
    from tests.fixtures.registry import skopeo_copy_layout

    info = build_busybox_index_layout(tmp_path_factory.mktemp("busybox-multi"), ("linux/amd64", "linux/arm64"),
                                      binaries={"linux/arm64": foreign_busybox["arm64"]})
    ref = registry.ref("library/busybox-multi-cache:latest")
    skopeo_copy_layout(info.layout, info.tag, ref, all_images=True)
    return ref


def multi_ctx(tmp_path: Path, base: str) -> Path:
    nonce = uuid.uuid4().hex
    return write(tmp_path / "ctx", {"Dockerfile": MULTI.format(base=base, nonce=nonce), "f.txt": f"one {nonce}\n"})


def test_multi_platform_inline_cache_on_a_fresh_machine(build_env, proxy, multi_base, fresh_root, tmp_path):
    """``--platform a,b --cache-to type=inline``: each platform's image config carries the cache
    of its own layers; the index alone is a ``--cache-from`` for both platforms."""
    c = multi_ctx(tmp_path, multi_base)
    image = proxy.ref("app/multi-inline:1")
    first = run(build_env, tmp_path / "r1", "--platform", TWO, "--cache-to", "type=inline",
                "-o", f"type=registry,name={image}", str(c))
    assert marks(first) == {"A-x86_64", "A-aarch64", "B-x86_64", "B-aarch64"}
    for arch in ("amd64", "arm64"):
        cfg = json.loads(skopeo("--override-arch", arch, "inspect", "--config", "--raw", "--tls-verify=false",
                                f"docker://{image}"))
        assert cfg["architecture"] == arch and "moby.buildkit.cache.v0" in cfg
    second = run(build_env, fresh_root, "--platform", TWO, "--cache-from", image, "--cache-to", "type=inline",
                 "-o", f"type=registry,name={proxy.ref('app/multi-inline2:1')}", str(c), fresh=True)
    assert marks(second) == set(), second.stderr
    assert second.stdout.split()[0] == first.stdout.split()[0]  # the same index


def test_a_two_platform_cache_gives_hits_per_platform_on_an_empty_root(build_env, proxy, multi_base, fresh_root,
                                                                       tmp_path):
    c = multi_ctx(tmp_path, multi_base)
    cache = proxy.ref("cache/multi:main")
    run(build_env, tmp_path / "r1", "--platform", TWO, "--cache-to", f"type=registry,ref={cache},mode=max", str(c))
    (c / "f.txt").write_text("two\n")
    # a fresh machine: each platform's builder stage and COPY --from come from the cache, only
    # the steps after the edit run, once per platform
    p = run(build_env, fresh_root, "--platform", TWO, "--cache-from", cache, str(c), fresh=True)
    assert marks(p) == {"B-x86_64", "B-aarch64"}, p.stderr
    # one platform of the two: its records alone answer
    q = run(build_env, tmp_path / "r2", "--platform", "linux/arm64", "--cache-from", cache, "--target", "build",
            str(c))
    assert marks(q) == set(), q.stderr
