"""SOURCE_DATE_EPOCH: the same inputs, written at different times, give the same digests."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time

import pytest

from mason.backends.exporters.image import export_image
from mason.backends.exporters.layer import KnownLayer, SnapshotDiff
from tests.backends.exporters.conftest import base_layer, commit_changes

pytestmark = pytest.mark.integration

EPOCH = 1_600_000_000


def _edit(root) -> None:
    (root / "app").mkdir()
    (root / "app" / "b.txt").write_text("b\n")
    (root / "app" / "a.txt").write_text("a\n")
    (root / "app" / "sub").mkdir()
    (root / "app" / "sub" / "c").symlink_to("../a.txt")
    (root / "etc" / "group").unlink()
    (root / "tmp" / "x").write_text("x\n")


def _export(env, lc, epoch):
    top = commit_changes(lc, env.busybox, _edit)
    chain = [KnownLayer(base_layer()), SnapshotDiff(env.busybox, top)]
    config = {"config": {"Cmd": ["/bin/sh"]}, "history": [{"created_by": "base"}, {"created_by": "RUN edit"}]}
    return export_image(lc, chain, config, source_date_epoch=epoch)


def test_same_epoch_same_digest_two_seconds_apart(containerd_env) -> None:
    c = containerd_env.client
    with c.lease(expire=600) as lc:
        first = _export(containerd_env, lc, EPOCH)
        time.sleep(2.1)
        second = _export(containerd_env, lc, EPOCH)
        assert second.manifest == first.manifest
        assert second.manifest_digest == first.manifest_digest
        assert first.config["created"] == "2020-09-13T12:26:40Z"
        assert {h["created"] for h in first.config["history"]} == {"2020-09-13T12:26:40Z"}

        layer = gzip.decompress(lc.read_blob(first.layers[1].digest))
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        assert names == ["app", "app/a.txt", "app/b.txt", "app/sub", "app/sub/c", "etc", "etc/.wh.group",
                         "tmp", "tmp/x"]  # (tarfile drops a directory's trailing slash when reading)
        assert [m.isdir() for m in members] == [True, False, False, True, False, True, False, True, False]
        assert {m.mtime for m in members} == {EPOCH}
        assert {(m.uname, m.gname) for m in members} == {("", "")}
        assert members[4].issym() and members[4].linkname == "../a.txt"
        assert oct(members[7].mode) == "0o1777"  # a parent keeps its mode

        # without the epoch, containerd's diff keeps the real (different) mtimes
        time.sleep(1.1)
        a, b = _export(containerd_env, lc, None), None
        time.sleep(1.1)
        b = _export(containerd_env, lc, None)
        assert a.layers[1].digest != b.layers[1].digest
        assert a.layers[0] == b.layers[0] == first.layers[0]  # base layer passes through
        assert json.loads(lc.read_blob(a.config_digest))["created"] != json.loads(lc.read_blob(b.config_digest))["created"]
