"""Interop with BuildKit v0.32.2's remote cache (issue 18), against the real buildkitd from
``../shared/tools``, for the same Dockerfile:

* mason reads the cache buildkitd exports (``type=local`` and ``type=registry``, image-manifest
  shape): every record and layer of its ``cacheconfig.v0``, as the config itself lists them — and
  says in one warning that it gives no hits, because BuildKit's record digests are its own
  CacheMap digests (see docs/remote-cache.md), which no mason key equals. The build runs every
  step and succeeds.
* buildkitd reads the cache mason exports: ``--import-cache`` of it is accepted and the build
  succeeds (it gives BuildKit no hits either: mason's record digests are its own).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from mason.backends import oci
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DF = """\
FROM {base}
RUN echo "$(echo MARK)-A" && echo {nonce} > /a
COPY f.txt /f.txt
RUN echo "$(echo MARK)-B" && cat /f.txt /a > /b
"""


def marks(text: str) -> set[str]:
    return {w.split("-", 1)[1] for w in text.split() if w.startswith("MARK-")}


def config_counts(layout: Path) -> tuple[int, int]:
    lay = oci.OciLayout(layout)
    manifest = lay.read_json(lay.find("latest").digest)
    cfg = lay.read_json(manifest["config"]["digest"])
    return len(cfg["records"]), len(cfg["layers"])


def test_mason_reads_buildkits_cache_and_says_why_it_gives_no_hits(build_env, buildkitd, registry, tmp_path):
    c = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=build_env.base, nonce=uuid.uuid4().hex), "f.txt": "one\n"})
    bk_local = tmp_path / "bk-cache"
    bk_ref = f"{registry.host}/interop/bk-cache:latest"
    p = buildkitd.build_dockerfile(c, f"type=oci,dest={tmp_path / 'bk.tar'}", extra=[
        "--export-cache", f"type=local,dest={bk_local},mode=max",
        "--export-cache", f"type=registry,ref={bk_ref},mode=max,image-manifest=true,oci-mediatypes=true"])
    assert marks(p.stderr.decode()) == {"A", "B"}
    records, layers = config_counts(bk_local)
    assert records >= 4 and layers >= 3

    for spec in (f"type=local,src={bk_local}", f"type=registry,ref={bk_ref}"):
        root = tmp_path / f"root-{len(spec)}"
        m = build_env.cli("build", "--progress=plain", "--root", str(root), "--cache-from", spec, "--explain",
                          "-o", f"type=oci,dest={root}.tar", str(c))
        assert m.returncode == 0, m.stderr
        assert marks(m.stderr) == {"A", "B"}  # no hit
        assert "remote cache hit" not in m.stderr
        line = next(x for x in m.stderr.splitlines() if "BuildKit format" in x)
        # the whole config was read: the counts are the config's own
        got = re.search(r"(\d+) records, (\d+) layers", line)
        assert got is not None and (int(got[1]), int(got[2])) == (records, layers), line
        assert "docs/remote-cache.md" in line and "warning" in line.lower()


def test_buildkitd_accepts_masons_cache(build_env, buildkitd, tmp_path):
    c = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=build_env.base, nonce=uuid.uuid4().hex), "f.txt": "two\n"})
    mason_cache = tmp_path / "mason-cache"
    m = build_env.cli("build", "--progress=plain", "--root", str(tmp_path / "r"), "--cache-to",
                      f"type=local,dest={mason_cache},mode=max", "-o", f"type=oci,dest={tmp_path / 'm.tar'}", str(c))
    assert m.returncode == 0, m.stderr
    lay = oci.OciLayout(mason_cache)
    cfg = lay.read_json(lay.read_json(lay.find("latest").digest)["config"]["digest"])
    assert "mason" in cfg and cfg["records"]
    p = buildkitd.build_dockerfile(c, f"type=oci,dest={tmp_path / 'bk.tar'}",
                                   extra=["--import-cache", f"type=local,src={mason_cache}"])
    out = p.stderr.decode()
    assert "importing cache manifest from local:" in out
    assert not re.search(r"^#\d+ ERROR", out, re.M), out  # the import was accepted
    assert marks(out) == {"A", "B"}, out  # no hits: mason's record digests are not BuildKit's keys
