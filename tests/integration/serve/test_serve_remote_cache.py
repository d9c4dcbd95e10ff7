"""``--export-cache``/``--import-cache`` on ``mason serve``, driven by BuildKit v0.32.2's
``buildctl`` (and ``mason build --host --cache-to/--cache-from``), against the fixture registry:
the cache one daemon exports makes a second daemon on an empty state root with its own
containerd (a new machine) run no step and give the same image digest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.fixtures.registry import skopeo
from tests.integration.conftest import write
from tests.integration.serve.conftest import BUILDCTL, _connectable, stop_serve

pytestmark = pytest.mark.integration

DF = """\
FROM {base} AS build
RUN echo "$(echo MARK)-A" && echo built-{nonce} > /a
FROM {base}
COPY --from=build /a /a
COPY f.txt /f.txt
RUN echo "$(echo MARK)-B" && cat /f.txt /a > /b
"""
EPOCH = "build-arg:SOURCE_DATE_EPOCH=1700000000"


def marks(text: str) -> set[str]:
    return {w.split("-", 1)[1] for w in text.split() if w.startswith("MARK-")}


def ctx(tmp_path: Path, base: str) -> Path:
    nonce = uuid.uuid4().hex
    return write(tmp_path / "ctx", {"Dockerfile": DF.format(base=base, nonce=nonce), "f.txt": f"one {nonce}\n"})


@pytest.fixture
def fresh_serve():
    """A ``mason serve`` on an empty state root with its own containerd (a new machine); yields
    its address. Stopped by SIGTERM, its containerd by its PID file, afterwards."""
    from mason.backends.containerd.daemon import ManagedContainerd

    root = Path(tempfile.mkdtemp(prefix="mason-rcs-"))
    sock, log = root / "mason.sock", root / "serve.log"
    e = dict(os.environ, MASON_ROOT=str(root / "state"))
    e.pop("MASON_CONTAINERD_ADDRESS", None)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mason", "serve", "--addr", f"unix://{sock}"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=e)
    try:
        import time

        deadline = time.monotonic() + 120
        while not _connectable(sock):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)  # polling for the socket
        yield f"unix://{sock}"
    finally:
        rc = stop_serve(proc)
        ManagedContainerd.at(root / "state").stop()
        subprocess.run(["umount", "-R", str(root / "state")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        assert rc == 0, log.read_text()


def buildctl(addr: str, c: Path, *extra: str, meta: Path) -> subprocess.CompletedProcess:
    p = subprocess.run([str(BUILDCTL), "--addr", addr, "build", "--frontend", "dockerfile.v0", "--local",
                        f"context={c}", "--local", f"dockerfile={c}", "--progress=plain", "--opt", EPOCH,
                        "--metadata-file", str(meta), *extra],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return p


def digest(meta: Path) -> str:
    return json.loads(meta.read_text())["containerimage.digest"]


def test_registry_cache_from_one_daemon_to_a_new_machine(served, fresh_serve, registry, tmp_path):
    c = ctx(tmp_path, served.env.base)
    cache = registry.ref(f"serve-cache/app:{uuid.uuid4().hex[:8]}")
    first = buildctl(served.addr, c, "--export-cache", f"type=registry,ref={cache},mode=max",
                     "--output", f"type=image,name={registry.ref('serve-cache/one:1')}", meta=tmp_path / "1.json")
    assert marks(first.stderr) == {"A", "B"}
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{cache}"))
    assert raw["config"]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    second = buildctl(fresh_serve, c, "--import-cache", f"type=registry,ref={cache}", "--output",
                      f"type=image,name={registry.ref('serve-cache/two:1')}", meta=tmp_path / "2.json")
    assert marks(second.stderr) == set(), second.stderr  # no step ran: mode=max held the build stage too
    assert digest(tmp_path / "2.json") == digest(tmp_path / "1.json")
    # an edit: only the steps after it run on the new machine
    (c / "f.txt").write_text("two\n")
    third = buildctl(fresh_serve, c, "--import-cache", f"type=registry,ref={cache}", "--output",
                     f"type=image,name={registry.ref('serve-cache/two:2')}", meta=tmp_path / "3.json")
    assert marks(third.stderr) == {"B"}, third.stderr


def test_inline_cache_is_imported_from_the_pushed_image(served, fresh_serve, registry, tmp_path):
    c = ctx(tmp_path, served.env.base)
    image = registry.ref(f"serve-cache/inline:{uuid.uuid4().hex[:8]}")
    buildctl(served.addr, c, "--export-cache", "type=inline", "--output", f"type=image,name={image},push=true",
             meta=tmp_path / "1.json")
    # the image's config holds the cache: the second build exports it too, for the same digest
    second = buildctl(fresh_serve, c, "--import-cache", f"type=registry,ref={image}", "--export-cache",
                      "type=inline", "--output", f"type=image,name={registry.ref('serve-cache/inline-two:1')}",
                      meta=tmp_path / "2.json")
    # an inline cache holds the final stage's layers only (mode=min): its last step is a hit
    assert "B" not in marks(second.stderr), second.stderr
    assert digest(tmp_path / "2.json") == digest(tmp_path / "1.json")


def test_mason_build_host_cache_to_and_from(build_env, served, fresh_serve, registry, tmp_path):
    c = ctx(tmp_path, build_env.base)
    cache = registry.ref(f"serve-cache/host:{uuid.uuid4().hex[:8]}")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    first = build_env.cli("build", "--host", served.addr, "--progress=plain", "--cache-to",
                          f"type=registry,ref={cache},mode=max", "-o", f"type=oci,dest={tmp_path / 'one.tar'}", c,
                          env=env)
    assert first.returncode == 0, first.stderr
    assert marks(first.stderr) == {"A", "B"}
    second = build_env.cli("build", "--host", fresh_serve, "--progress=plain", "--cache-from", cache, "-o",
                           f"type=oci,dest={tmp_path / 'two.tar'}", c, env=env)
    assert second.returncode == 0, second.stderr
    assert marks(second.stderr) == set(), second.stderr
    assert first.stdout.split()[0] == second.stdout.split()[0]
    local = build_env.cli("build", "--host", served.addr, "--cache-to", f"type=local,dest={tmp_path / 'lc'}", c)
    assert local.returncode == 1 and "type=local cannot be used with --host yet" in local.stderr, local.stderr
    assert "Traceback" not in local.stderr and not (tmp_path / "lc").exists()


def test_local_cache_crosses_the_session_both_ways(served, fresh_serve, tmp_path):
    """``type=local`` directories are the client's: the daemon writes the export into buildctl's
    content store (buildctl tags it in index.json) and reads the import from it."""
    c = ctx(tmp_path, served.env.base)
    cache = tmp_path / "client-cache"
    first = buildctl(served.addr, c, "--export-cache", f"type=local,dest={cache},mode=max,tag=main", "--output",
                     f"type=oci,dest={tmp_path / 'one.tar'}", meta=tmp_path / "1.json")
    assert marks(first.stderr) == {"A", "B"}
    index = json.loads((cache / "index.json").read_text())
    [desc] = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "main"]
    manifest = json.loads((cache / "blobs" / "sha256" / desc["digest"][7:]).read_bytes())
    assert manifest["config"]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    for d in [manifest["config"], *manifest["layers"]]:  # every blob the manifest names reached the client
        assert (cache / "blobs" / "sha256" / d["digest"][7:]).stat().st_size == d["size"]
    second = buildctl(fresh_serve, c, "--import-cache", f"type=local,src={cache},tag=main", "--output",
                      f"type=oci,dest={tmp_path / 'two.tar'}", meta=tmp_path / "2.json")
    assert marks(second.stderr) == set(), second.stderr
    assert digest(tmp_path / "2.json") == digest(tmp_path / "1.json")
    # a directory without the tag: buildctl skips the import (a warning) and the build runs
    third = buildctl(fresh_serve, c, "--import-cache", f"type=local,src={cache},tag=nope", "--output",
                     f"type=oci,dest={tmp_path / 'three.tar'}", "--opt", "no-cache=", meta=tmp_path / "3.json")
    assert marks(third.stderr) == {"A", "B"}


def test_buildkitd_accepts_the_local_cache_mason_serve_sent(served, buildkitd, tmp_path):
    c = ctx(tmp_path, served.env.base)
    cache = tmp_path / "client-cache"
    buildctl(served.addr, c, "--export-cache", f"type=local,dest={cache},mode=max", "--output",
             f"type=oci,dest={tmp_path / 'one.tar'}", meta=tmp_path / "1.json")
    p = buildkitd.build_dockerfile(c, f"type=oci,dest={tmp_path / 'bk.tar'}",
                                   extra=["--import-cache", f"type=local,src={cache}"])
    out = p.stderr.decode()
    assert "importing cache manifest from local:" in out
    assert "ERROR" not in out, out  # accepted (no hits: mason's record digests are not BuildKit's keys)


def test_cache_mistakes_are_one_error_before_any_step(served, tmp_path):
    c = ctx(tmp_path, served.env.base)
    for spec, needle in ((["--export-cache", "type=registry,ref=x/y,compression=brotli"], "compression must be one of"),
                         (["--export-cache", "type=registry,ref=x/y,mode=most"], "mode must be min or max"),
                         (["--import-cache", "type=nope,ref=x/y"], "unknown cache type")):
        p = subprocess.run([str(BUILDCTL), "--addr", served.addr, "build", "--frontend", "dockerfile.v0", "--local",
                            f"context={c}", "--local", f"dockerfile={c}", "--progress=plain", *spec],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert p.returncode != 0 and needle in p.stderr, p.stderr
        assert not marks(p.stderr), p.stderr
