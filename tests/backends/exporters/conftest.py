"""A hand-built build result for the exporter tests: the fixture's busybox snapshot (a known
base layer) plus one snapshot made here by preparing from it, writing files, deleting one and
committing — the chain the solver would hand to the image writer."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mason.backends import oci
from mason.backends.exporters._mount import mounted
from mason.backends.exporters.layer import KnownLayer, Layer, SnapshotDiff
from tests.fixtures.containerd import busybox_layer_tar

CMD = ["/bin/cat", "/hello.txt"]
HELLO = b"hello from mason\n"


@dataclass(frozen=True)
class Chain:
    base: Layer
    base_snapshot: str
    top: str  # committed snapshot: busybox + /hello.txt, /data/, no /etc/group
    lease: str

    @property
    def sources(self):
        return [KnownLayer(self.base), SnapshotDiff(self.base_snapshot, self.top)]

    def config(self) -> dict:
        return {"config": {"Env": ["PATH=/bin:/usr/bin"], "Cmd": list(CMD), "WorkingDir": "/",
                           "Labels": {"org.example": "mason"}, "ExposedPorts": {"8080/tcp": {}}},
                "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "busybox base"},
                            {"created_by": "ENV PATH=/bin:/usr/bin", "empty_layer": True},
                            {"created_by": "RUN write hello"}]}


def base_layer() -> Layer:
    tar = busybox_layer_tar()
    d = "sha256:" + hashlib.sha256(tar).hexdigest()
    return Layer(oci.OCI_LAYER, d, len(tar), d)


def commit_changes(client, parent: str, change) -> str:
    """Prepare an active snapshot on ``parent``, let ``change(root)`` edit it, commit it."""
    name = f"mason-test-{uuid.uuid4().hex[:12]}"
    key = name + "-active"
    mounts = client.prepare(key, parent)
    with mounted(mounts, readonly=False) as root:
        change(Path(root))
    client.commit(name, key)
    return name


def _edit(root: Path) -> None:
    (root / "hello.txt").write_bytes(HELLO)
    os.chmod(root / "hello.txt", 0o640)
    (root / "data").mkdir(mode=0o750)
    (root / "data" / "n.txt").write_text("n\n")
    os.chown(root / "data" / "n.txt", 1000, 1000)
    os.symlink("../hello.txt", root / "data" / "link")
    (root / "etc" / "group").unlink()


@pytest.fixture(scope="module")
def chain(containerd_env) -> Iterator[Chain]:
    c = containerd_env.client
    lease = c.create_lease(expire=3600)
    lc = c.with_lease(lease)
    top = commit_changes(lc, containerd_env.busybox, _edit)
    try:
        yield Chain(base_layer(), containerd_env.busybox, top, lease)
    finally:
        c.delete_lease(lease)
