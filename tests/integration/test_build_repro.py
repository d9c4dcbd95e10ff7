"""Reproducible builds (issue 7): with ``SOURCE_DATE_EPOCH`` (environment or build arg) the same
Dockerfile built twice from an empty cache, seconds apart, gives the same manifest digest —
checked on the OCI archives with skopeo; without it, the layers the RUNs made differ."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.fixtures.registry import skopeo
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

EPOCH = 1_700_000_000
EPOCH_TIME = "2023-11-14T22:13:20Z"

# The RUNs create files and directories (mtimes = when they ran) and print the time, which
# goes to the log, not the image: the two builds really ran at different times.
DOCKERFILE = """\
FROM {base}
RUN date +ran-at-%s && mkdir -p /data/dir/sub && echo one > /data/dir/a && touch /data/b \\
 && ln -s a /data/dir/link && chmod 0600 /data/b
WORKDIR /data/work
RUN date +ran-at-%s && echo two > /data/dir/sub/c && mkdir /data/empty && rm /data/b
ENV MODE=repro
CMD ["cat", "/data/dir/a"]
"""


def build_fresh(ctx: Path, out: Path, *args: str, environ: dict | None = None) -> tuple[str, int]:
    """Build into an OCI archive from a truly empty cache: a fresh state directory with its own
    private containerd (mason's embedded default; cached snapshots live in containerd, so a
    fresh ``--root`` on a shared daemon would not be empty). Returns the manifest digest and
    the time the RUNs printed."""
    from mason.backends.containerd.daemon import ManagedContainerd

    root = Path(tempfile.mkdtemp(prefix="mason-repro-"))
    e = dict(os.environ)
    e.update(environ or {})
    e.pop("MASON_CONTAINERD_ADDRESS", None)
    e["MASON_ROOT"] = str(root)
    try:
        p = subprocess.run([sys.executable, "-m", "mason", "build", "--progress=plain", "-o", f"type=oci,dest={out}",
                            *args, str(ctx)], capture_output=True, text=True, env=e, timeout=300,
                           stdin=subprocess.DEVNULL)
    finally:
        ManagedContainerd.at(root).stop()
        if not mounted_under(root):
            shutil.rmtree(root, ignore_errors=True)
    assert p.returncode == 0, p.stderr
    assert "CACHED" not in p.stderr  # every step ran
    ran = sorted({int(w.split("ran-at-")[1]) for w in p.stderr.split() if w.startswith("ran-at-")})
    assert len(ran) >= 1
    return p.stdout.split()[0], ran[0]


def mounted_under(root: Path) -> bool:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].startswith(prefix) for line in f)


def inspect(archive: Path) -> dict:
    return json.loads(skopeo("inspect", f"oci-archive:{archive}"))


def config(archive: Path) -> dict:
    return json.loads(skopeo("inspect", "--config", f"oci-archive:{archive}"))


def test_same_epoch_same_digest_from_empty_cache(build_env, busybox_image, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=env.base)})
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    # once with SOURCE_DATE_EPOCH from the environment, once as a build arg
    da, ta = build_fresh(ctx, a, environ={"SOURCE_DATE_EPOCH": str(EPOCH)})
    time.sleep(2.1)
    db, tb = build_fresh(ctx, b, "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}",
                         environ={"SOURCE_DATE_EPOCH": ""})
    assert tb - ta >= 2
    ia, ib = inspect(a), inspect(b)
    assert ia["Digest"] == da and ib["Digest"] == db
    assert da == db
    assert ia["Layers"] == ib["Layers"] and len(ia["Layers"]) == 4  # base, RUN, WORKDIR, RUN
    assert ia["Layers"][0] == busybox_image.info.layer_digests[0]  # the base layer passes through
    cfg = config(a)
    assert cfg["created"] == EPOCH_TIME
    assert all(h["created"] <= EPOCH_TIME for h in cfg["history"])
    assert cfg["config"]["Env"][-1] == "MODE=repro"


def test_without_epoch_layers_differ(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=env.base)})
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    da, ta = build_fresh(ctx, a, environ={"SOURCE_DATE_EPOCH": ""})
    time.sleep(2.1)
    db, tb = build_fresh(ctx, b, environ={"SOURCE_DATE_EPOCH": ""})
    assert tb - ta >= 2
    la, lb = inspect(a)["Layers"], inspect(b)["Layers"]
    assert da != db
    assert la[0] == lb[0]  # the base layer is the same blob
    assert la[1] != lb[1] and la[3] != lb[3]  # the RUNs' layers carry their files' mtimes
    assert config(a)["created"] != EPOCH_TIME


def test_bad_epoch_is_a_clear_error(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN true\n"})
    p = env.cli("build", str(ctx), env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert p.returncode == 1
    assert p.stderr.strip() == ("error: invalid SOURCE_DATE_EPOCH 'yesterday': expected seconds since 1970 "
                                "(a non-negative integer)")
