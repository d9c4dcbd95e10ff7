"""What a ``mason build`` process imports (issue 17): start-up is most of a rebuild's cost, so a
build that needs no registry — its base loaded with ``mason load``, every step cached — must not
load the registry client (httpx, a TLS context). Checked on a real process: the build runs in a
child that reports, after the CLI returned, which of the watched modules it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.images import build_busybox_layout
from tests.fixtures.registry import free_port, skopeo
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

WATCHED = ("httpx", "mason.backends.sources.registry", "mason.backends.sources.transport",
           # a Dockerfile build without --cache-from/--cache-to: no other frontend's reader or
           # lowering, no remote cache machinery, no importlib.resources reader (zipfile)
           "mason.frontends.mockerfile.lower", "mason.frontends.buildpacks.lower", "yaml", "tomllib",
           "mason.backends.cache.api", "mason.backends.cache.spec", "zipfile")

CHILD = """
import json, sys
from mason.cli.main import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "imported": [m for m in %r if m in sys.modules]}))
""" % (WATCHED,)


def _build(env, *args: str, child: str = CHILD) -> dict:
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    p = subprocess.run([sys.executable, "-c", child, "build", *args], capture_output=True, text=True, env=e,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]) | {"stderr": p.stderr}


def test_build_from_a_loaded_image_never_loads_the_registry_client(build_env, tmp_path):
    env = build_env
    layout = tmp_path / "layout"
    build_busybox_layout(layout, tag="base")
    name = f"127.0.0.1:{free_port()}/startup/base:1"  # nothing listens there
    archive = tmp_path / "base.tar"
    skopeo("copy", f"oci:{layout}:base", f"oci-archive:{archive}:{name}")
    assert env.cli("load", "-i", str(archive)).returncode == 0

    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {name}\nRUN echo hi > /hi\n"})
    cold = _build(env, "--progress=plain", "-t", "startup-imports", str(ctx))
    assert cold["rc"] == 0, cold["stderr"]
    assert cold["imported"] == [], cold
    again = _build(env, "--progress=plain", "-t", "startup-imports", str(ctx))
    assert again["rc"] == 0 and "CACHED" in again["stderr"], again["stderr"]
    assert again["imported"] == [], again


def test_a_base_not_in_the_store_still_goes_to_the_registry(build_env, tmp_path):
    """The other side of the same switch: a base the store lacks is resolved from its registry."""
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN echo hi > /hi\n"})
    got = _build(env, "--progress=plain", str(ctx))
    assert got["rc"] == 0, got["stderr"]
    assert "httpx" in got["imported"], got


def test_an_unchanged_rebuild_takes_its_lowering_from_the_cache(build_env, tmp_path):
    """The lowering cache through ``mason build``: the second build of an unchanged Dockerfile
    loads no parser and no lowering (lark, the syntax, instructions and lowering layers, the
    passes), nothing that runs a step or writes a layer, and gives the same image; an edit lowers
    again; ``prune --all`` empties the cache."""
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN echo hi > /hi\nEXPOSE 80\n"})
    child = CHILD.replace(repr(WATCHED), repr(LOWERING + NOOP))
    first = _build(env, "--progress=plain", "-t", "lowering-cache", str(ctx), child=child)
    assert first["rc"] == 0 and set(first["imported"]) >= set(LOWERING), first
    entries = list((env.root / "lowering").glob("*.llb"))
    assert len(entries) == 1
    again = _build(env, "--progress=plain", "-t", "lowering-cache", str(ctx), child=child)
    assert again["rc"] == 0 and again["imported"] == [], again
    assert _digest(again) == _digest(first)
    (ctx / "Dockerfile").write_text(f"FROM {env.base}\nRUN echo hi > /hi\nEXPOSE 81\n")
    edited = _build(env, "--progress=plain", "-t", "lowering-cache", str(ctx), child=child)
    assert edited["rc"] == 0 and "mason.frontends.dockerfile.lower" in edited["imported"], edited
    assert len(list((env.root / "lowering").glob("*.llb"))) == 2
    assert env.cli("prune", "--all", "--force").returncode == 0
    assert not list((env.root / "lowering").glob("*.llb"))


LOWERING = ("lark", "mason.frontends.dockerfile.syntax", "mason.frontends.dockerfile.lower", "mason.passes")
# nor, with every step cached and the image already named, what runs a step or writes a layer,
# nor grpc (its calls go over mason.backends.containerd.h2rpc)
NOOP = ("tarfile", "mason.backends.exporters.difftar", "mason.backends.sources.unpack",
        "mason.backends.containerd._stubs.api.services.tasks.v1.tasks_pb2", "grpc")


def _digest(got: dict) -> str:
    import re

    m = re.search(r"image (sha256:[0-9a-f]{64})", got["stderr"])
    assert m, got["stderr"]
    return m.group(1)
