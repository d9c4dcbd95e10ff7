"""``--cache-to type=local`` / ``--cache-from type=local`` (issue 18): a cache exported to a
directory makes a build on an *empty* state root run no step (counted by the steps' own
output) and give the same image digest (``SOURCE_DATE_EPOCH``); a content edit reruns only its
dependents; ``mode=min`` leaves out a builder stage that ``mode=max`` keeps; two concurrent
exporters into one directory leave a valid OCI layout (checked with skopeo); a missing or
corrupt cache is a warning and the build goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from mason.backends import oci
from tests.fixtures.registry import skopeo
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

# the steps print MARK-<name> only when they run ($(echo …) keeps it out of the command line)
DF = """\
FROM {base} AS build
RUN echo "$(echo MARK)-A" && echo built > /a
FROM {base}
COPY --from=build /a /a
COPY f.txt /f.txt
RUN echo "$(echo MARK)-B" && cat /f.txt /a > /b
"""
EPOCH = "SOURCE_DATE_EPOCH=1700000000"


def ctx(tmp_path: Path, base: str, content: str = "one\n") -> Path:
    return write(tmp_path / "ctx", {"Dockerfile": DF.format(base=base), "f.txt": content})


def build(env, tmp_path: Path, context: Path, root: str, *args: str, target: str | None = None):
    out = tmp_path / f"{root}.tar"
    extra = ("--target", target) if target else ()
    p = env.cli("build", "--progress=plain", "--root", str(tmp_path / root), "--build-arg", EPOCH,
                "-o", f"type=oci,dest={out}", *extra, *args, str(context))
    assert p.returncode == 0, p.stderr
    return p


def marks(p) -> set[str]:
    return {w.split("-", 1)[1] for w in p.stderr.split() if w.startswith("MARK-")}


def digest(p) -> str:
    return p.stdout.split()[0]


def cache_config(layout: Path, tag: str = "latest") -> dict:
    lay = oci.OciLayout(layout)
    manifest = lay.read_json(lay.find(tag).digest)
    return lay.read_json(manifest["config"]["digest"])


def test_local_cache_round_trip_on_an_empty_root(build_env, tmp_path):
    c = ctx(tmp_path, build_env.base)
    cache = tmp_path / "cache"
    first = build(build_env, tmp_path, c, "r1", "--cache-to", f"type=local,dest={cache},mode=max")
    assert marks(first) == {"A", "B"}
    assert "exported cache to local:" in first.stderr
    # an independent reader: the cache is an OCI layout whose manifest skopeo can read
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{cache}:latest"))
    assert raw["config"]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    assert len(cache_config(cache)["records"]) >= 4  # RUN A, COPY --from, COPY, RUN B

    second = build(build_env, tmp_path, c, "r2", "--cache-from", f"type=local,src={cache}", "--explain")
    assert marks(second) == set(), second.stderr
    assert f"remote cache hit (local:{cache})" in second.stderr
    assert digest(second) == digest(first)

    (c / "f.txt").write_text("two\n")
    third = build(build_env, tmp_path, c, "r3", "--cache-from", f"type=local,src={cache}")
    assert marks(third) == {"B"}  # the builder stage still comes from the cache
    assert digest(third) != digest(first)


def test_index_shaped_local_cache_round_trip(build_env, tmp_path):
    """``image-manifest=false``: the layout's entry is an OCI index of the blobs and the config
    (BuildKit's older shape); it imports as well as the manifest shape."""
    c = ctx(tmp_path, build_env.base)
    cache = tmp_path / "cache"
    first = build(build_env, tmp_path, c, "r1", "--cache-to", f"type=local,dest={cache},image-manifest=false")
    lay = oci.OciLayout(cache)
    entry = lay.find("latest")
    assert entry.media_type == oci.OCI_INDEX
    index = lay.read_json(entry.digest)
    assert index["manifests"][-1]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    second = build(build_env, tmp_path, c, "r2", "--cache-from", f"type=local,src={cache}")
    assert marks(second) == set(), second.stderr
    assert digest(second) == digest(first)


def test_min_mode_keeps_only_what_the_final_image_needs(build_env, tmp_path):
    c = ctx(tmp_path, build_env.base)
    lo, hi = tmp_path / "min", tmp_path / "max"
    build(build_env, tmp_path, c, "r1", "--cache-to", f"type=local,dest={lo}", "--cache-to",
          f"type=local,dest={hi},mode=max")
    # records with a result (the others are the input roots BuildKit's format needs)
    n_min, n_max = ([r for r in cache_config(x)["records"] if r.get("layers")] for x in (lo, hi))
    n_min, n_max = len(n_min), len(n_max)
    assert n_min < n_max
    # the builder stage alone: from max it is a hit, from min it runs again
    from_max = build(build_env, tmp_path, c, "r2", "--cache-from", f"type=local,src={hi}", target="build")
    assert marks(from_max) == set()
    from_min = build(build_env, tmp_path, c, "r3", "--cache-from", f"type=local,src={lo}", target="build")
    assert marks(from_min) == {"A"}
    # the whole image from min: nothing runs
    whole = build(build_env, tmp_path, c, "r4", "--cache-from", f"type=local,src={lo}")
    assert marks(whole) == set()


def test_missing_and_corrupt_local_caches_are_warnings(build_env, tmp_path):
    c = ctx(tmp_path, build_env.base)
    missing = build(build_env, tmp_path, c, "r1", "--cache-from", f"type=local,src={tmp_path / 'nope'}")
    assert marks(missing) == {"A", "B"}
    assert "warning" in missing.stderr.lower() and "building without it" in missing.stderr

    # layers of this test's own (a nonce in the builder stage), so dropping them from the shared
    # containerd's content store below touches no other test's
    write(c, {"Dockerfile": DF.format(base=build_env.base).replace("built", f"built-{uuid.uuid4().hex}")})
    cache = tmp_path / "cache"
    build(build_env, tmp_path, c, "r2", "--cache-to", f"type=local,dest={cache},mode=max")
    lay = oci.OciLayout(cache)
    manifest = lay.read_json(lay.find("latest").digest)
    base_layers = set(json.loads(skopeo("inspect", f"docker://{build_env.base}", "--tls-verify=false"))["Layers"])
    own = [la["digest"] for la in manifest["layers"] if la["digest"] not in base_layers]
    assert own
    for d in own:  # corrupt them in the cache (same size, other bytes); the import must fetch them
        p = lay.blob_path(d)
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
        build_env.client.delete_content(d)
    # the COPY f.txt edit needs the cached COPY --from result's files: its blob is the bad one
    (c / "f.txt").write_text("edited\n")
    bad = build(build_env, tmp_path, c, "r3", "--cache-from", f"type=local,src={cache}")
    assert "digest mismatch" in bad.stderr and "skipping the cache records that use it" in bad.stderr
    assert marks(bad) == {"A", "B"}  # the builder stage's record used the bad blob too: it ran here


def test_concurrent_exporters_leave_a_valid_layout(build_env, tmp_path):
    c = ctx(tmp_path, build_env.base)
    cache = tmp_path / "shared"
    build(build_env, tmp_path, c, "warm")  # both exporters below then run nothing but the export
    results: list[subprocess.CompletedProcess] = []

    def run(tag: str) -> None:
        results.append(build_env.cli("build", "--progress=plain", "--root", str(tmp_path / "warm"),
                                     "--build-arg", EPOCH, "--cache-to",
                                     f"type=local,dest={cache},tag={tag},mode=max", str(c)))

    threads = [threading.Thread(target=run, args=(t,)) for t in ("a", "b", "c", "a")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(p.returncode == 0 for p in results), [p.stderr for p in results]
    index = json.loads((cache / "index.json").read_text())
    tags = sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"])
    assert tags == ["a", "b", "c"]
    for tag in tags:  # every blob each manifest names is there and verifies
        raw = json.loads(skopeo("inspect", "--raw", f"oci:{cache}:{tag}"))
        lay = oci.OciLayout(cache)
        for d in [raw["config"]] + raw["layers"]:
            lay.read_blob(d["digest"])
    assert not [p for p in (cache / "blobs" / "sha256").iterdir() if p.name.startswith(".tmp-")]


def test_bad_cache_specs_fail_before_the_build(build_env, tmp_path):
    c = ctx(tmp_path, build_env.base)
    p = build_env.cli("build", "--cache-to", "type=local", str(c))
    assert p.returncode == 1 and "needs dest=DIR" in p.stderr and "Traceback" not in p.stderr
    assert sys.executable  # the CLI ran as a process
