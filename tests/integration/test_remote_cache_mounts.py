"""Cache mounts travel (issue 18): ``--cache-to …,cache-mounts=true`` exports each
``RUN --mount=type=cache`` directory as a layer of the cache; ``--cache-from`` restores it on an
*empty* state root before the first step that uses it. The step below keeps a counter in its
cache mount and prints it, so the count says whether the content came along; without
``cache-mounts=true`` (or past ``cache-mounts-max-size``) it starts from nothing again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mason.backends import oci
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

# $(echo COUNT) keeps the word out of the echoed command line; V changes the step's key
DF = """\
FROM {base}
ARG V=1
RUN --mount=type=cache,id=counter,target=/c sh -c \
  'n=$(cat /c/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /c/n; mkdir -p /c/sub; echo x > /c/sub/f; \
   echo "$(echo COUNT)=$n"; echo $V > /v'
"""


def build(env, tmp_path: Path, root: str, *args: str, v: str = "1"):
    c = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=env.base)})
    p = env.cli("build", "--progress=plain", "--root", str(tmp_path / root), "--build-arg", f"V={v}",
                *args, str(c))
    assert p.returncode == 0, p.stderr
    return p


def count(p) -> int | None:
    found = re.findall(r"COUNT=(\d+)", p.stderr)
    return int(found[-1]) if found else None


def test_a_cache_mount_survives_into_a_build_on_an_empty_root(build_env, tmp_path):
    with_mounts, without = tmp_path / "with", tmp_path / "without"
    first = build(build_env, tmp_path, "r1", "--cache-to", f"type=local,dest={with_mounts},cache-mounts=true",
                  "--cache-to", f"type=local,dest={without}")
    assert count(first) == 1
    # the cache config names the mount by id, and its layer is in the layout
    lay = oci.OciLayout(with_mounts)
    cfg = lay.read_json(lay.read_json(lay.find("latest").digest)["config"]["digest"])
    (entry,) = cfg["mason"]["mounts"]
    assert entry["id"] == "/counter"  # BuildKit's frontend: the id under the (empty) cache namespace
    lay.read_blob(cfg["layers"][entry["layer"]]["blob"])
    assert "mounts" not in cfg_of(without).get("mason", {})

    # an empty root, the step's key changed: it runs, on the restored counter
    second = build(build_env, tmp_path, "r2", "--cache-from", f"type=local,src={with_mounts}", v="2")
    assert count(second) == 2, second.stderr
    control = build(build_env, tmp_path, "r3", "--cache-from", f"type=local,src={without}", v="2")
    assert count(control) == 1


def cfg_of(layout: Path) -> dict:
    lay = oci.OciLayout(layout)
    return lay.read_json(lay.read_json(lay.find("latest").digest)["config"]["digest"])


def test_a_cached_step_carries_the_imported_mount_on(build_env, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build(build_env, tmp_path, "r1", "--cache-to", f"type=local,dest={a},cache-mounts=true")
    # a hit: the step does not run, its cache directory is never made here — the export still
    # carries the imported content on
    hit = build(build_env, tmp_path, "r2", "--cache-from", f"type=local,src={a}", "--cache-to",
                f"type=local,dest={b},cache-mounts=true")
    assert count(hit) is None
    third = build(build_env, tmp_path, "r3", "--cache-from", f"type=local,src={b}", v="3")
    assert count(third) == 2, third.stderr


def test_the_size_cap_leaves_a_mount_out_with_a_warning(build_env, tmp_path):
    small = tmp_path / "small"
    first = build(build_env, tmp_path, "r1", "--cache-to",
                  f"type=local,dest={small},cache-mounts=true,cache-mounts-max-size=1")
    assert "cache mount '/counter'" in first.stderr and "cache-mounts-max-size" in first.stderr
    assert "mounts" not in cfg_of(small).get("mason", {})
    again = build(build_env, tmp_path, "r2", "--cache-from", f"type=local,src={small}", v="2")
    assert count(again) == 1


def test_a_corrupt_mount_blob_is_a_warning_and_the_step_starts_empty(build_env, tmp_path):
    cache = tmp_path / "cache"
    build(build_env, tmp_path, "r1", "--cache-to", f"type=local,dest={cache},cache-mounts=true")
    cfg = cfg_of(cache)
    blob = oci.OciLayout(cache).blob_path(cfg["layers"][cfg["mason"]["mounts"][0]["layer"]]["blob"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    p = build(build_env, tmp_path, "r2", "--cache-from", f"type=local,src={cache}", v="2")
    assert count(p) == 1
    assert "cache mount '/counter'" in p.stderr and "digest mismatch" in p.stderr
