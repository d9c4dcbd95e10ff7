"""Snapshots from layers and from files: the two ways a source becomes a committed snapshot.

* :func:`unpack_layers` — like containerd's unpacker: for each layer (already in the content
  store) ``Snapshots.Prepare(tmpkey, parentChainID) → Diff.Apply → Commit(chainID)``. A chain
  ID that already exists is reused without an apply; an ``AlreadyExists`` on commit (another
  build unpacked the same layer at the same time) is not an error. ``chain_id`` comes from
  ``containerd.layers``.
* :func:`write_snapshot` — a new parentless snapshot filled by a callback on its mounted
  directory, committed under a content-derived name (reused when it exists already).

Both add what they reuse to the client's lease, so a snapshot another build made cannot be
collected while this build uses it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from mason.backends.containerd.client import AlreadyExists, Client, ContainerdError, Descriptor, NotFound
from mason.backends.containerd.layers import chain_id
from mason.backends.sources.mount import mounted
from mason.backends.sources.result import Layer
from mason.ir.errors import MasonError

SNAPSHOT_RESOURCE = "snapshots/overlayfs"

__all__ = ["chain_id", "chain_ids", "hold", "reuse", "unpack_layers", "write_snapshot"]


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain ID of every prefix of ``diff_ids``."""
    out: list[str] = []
    for d in diff_ids:
        out.append(chain_id(out[-1] if out else None, d))
    return out


def hold(client: Client, resource: str, kind: str = SNAPSHOT_RESOURCE) -> None:
    """Put ``resource`` (a snapshot name or a blob digest with ``kind="content"``) into the
    client's lease, if it has one."""
    if client.lease_id:
        with contextlib.suppress(NotFound):
            client.add_lease_resource(client.lease_id, resource, kind)


def reuse(client: Client, name: str) -> bool:
    """Whether committed snapshot ``name`` exists; if so it is now held by the client's lease."""
    hold(client, name)  # first: a snapshot seen to exist must not vanish before we use it
    return client.snapshot_exists(name)


def unpack_layers(client: Client, layers: Iterable[Layer], *,
                  labels: Mapping[str, str] | None = None,
                  on_apply: Callable[[Layer, str], None] | None = None) -> str | None:
    """Unpack ``layers`` (blobs in the content store) into snapshots named by chain ID and
    return the top one (``None`` for no layers). ``on_apply(layer, chain_id)`` is called for
    each layer that really had to be applied."""
    parent: str | None = None
    for layer in layers:
        name = chain_id(parent, layer.diff_id)
        if not reuse(client, name):
            _apply_one(client, layer, parent, name, labels)
            if on_apply is not None:
                on_apply(layer, name)
        parent = name
    return parent


def _apply_one(client: Client, layer: Layer, parent: str | None, name: str,
               labels: Mapping[str, str] | None) -> None:
    key = f"mason-extract-{uuid.uuid4().hex[:16]} {name}"
    mounts = client.prepare(key, parent or "")
    try:
        applied = client.apply(Descriptor(layer.media_type, layer.digest, layer.size, dict(layer.annotations)),
                               mounts)
        if applied.digest != layer.diff_id:
            raise MasonError(f"layer {layer.digest} unpacks to {applied.digest}, but the image config "
                             f"says its diff ID is {layer.diff_id}")
        try:
            client.commit(name, key, labels)
        except AlreadyExists:  # another build committed the same chain ID first
            _remove(client, key)
        hold(client, name)
    except BaseException:
        _remove(client, key)
        raise


def _remove(client: Client, key: str) -> None:
    with contextlib.suppress(NotFound):
        client.remove_snapshot(key)


def write_snapshot(client: Client, fill: Callable[[Path], None], *, name: str | None = None,
                   labels: Mapping[str, str] | None = None) -> str:
    """A committed parentless snapshot holding what ``fill(root)`` writes into its mounted
    directory. With ``name`` (derive it from the content), an existing snapshot of that name is
    reused and ``fill`` is not called; without, a unique name is made up."""
    if name is not None and reuse(client, name):
        return name
    name = name or f"mason-src-{uuid.uuid4().hex}"
    key = f"mason-fill-{uuid.uuid4().hex[:16]} {name}"
    client.prepare(key, "")
    try:
        with mounted(client, key) as root:
            fill(root)
        try:
            client.commit(name, key, labels)
        except AlreadyExists:
            _remove(client, key)
        hold(client, name)
    except BaseException:
        with contextlib.suppress(ContainerdError):
            _remove(client, key)
        raise
    return name
