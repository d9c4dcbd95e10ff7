"""What a solved vertex is: a committed containerd snapshot plus the *chain* of layers that
builds it from scratch.

A chain element is the image writer's own layer source: a layer that already exists as a
blob (``KnownLayer``: an image's base layers, a DiffOp's computed layer) or a snapshot
difference still to be computed (``SnapshotDiff``: ``upper`` against ``lower``, None = empty).
New layers are diffed lazily — at export, or by a MergeOp that needs them — never on the critical path of the next step.
The exporter receives the chain (``to_export_chain``). Results serialize to JSON for the
cache store (``to_json`` / ``from_json``), so a cache hit restores the chain as well as the
snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Union

from mason.backends.exporters.layer import KnownLayer, SnapshotDiff
from mason.backends.sources.result import Layer

ChainItem = Union[KnownLayer, SnapshotDiff]


def _item_to_json(c: ChainItem) -> dict[str, Any]:
    if isinstance(c, KnownLayer):
        la = c.layer
        d: dict[str, Any] = {"kind": "layer", "mediaType": la.media_type, "digest": la.digest,
                             "size": la.size, "diffID": la.diff_id}
        if la.annotations:
            d["annotations"] = dict(la.annotations)
        return d
    return {"kind": "diff", "lower": c.lower, "upper": c.upper}


def _item_from_json(d: dict[str, Any]) -> ChainItem:
    if d.get("kind") == "layer":
        return KnownLayer(Layer(d["mediaType"], d["digest"], int(d["size"]), d["diffID"],
                                dict(d.get("annotations") or {})))
    if d.get("kind") == "diff":
        return SnapshotDiff(d.get("lower"), d["upper"])
    raise ValueError(f"unknown chain item {d!r}")


@dataclass(frozen=True, slots=True)
class Result:
    """A solved output. ``snapshot`` "" = the empty filesystem (scratch). ``image_config``
    is set by sources that bring one (docker-image, oci-layout). ``remote`` (the cache's name)
    marks a hit in an imported remote cache that is not materialized yet: its chain is the
    cache's layers (``KnownLayer`` with a ``source`` to fetch them from) and it has no snapshot
    until the solver materializes it (never stored as such: a record needs its snapshot)."""

    snapshot: str
    chain: tuple[ChainItem, ...] = ()
    image_config: dict | None = field(default=None, compare=False)
    remote: str = field(default="", compare=False)

    @property
    def is_scratch(self) -> bool:
        return not self.snapshot

    def extend(self, new_snapshot: str) -> "Result":
        """The result of a step that turned this result into ``new_snapshot``."""
        return Result(new_snapshot, self.chain + (SnapshotDiff(self.snapshot or None, new_snapshot),))

    def to_json(self) -> str:
        d: dict[str, Any] = {"snapshot": self.snapshot, "chain": [_item_to_json(c) for c in self.chain]}
        if self.image_config is not None:
            d["imageConfig"] = self.image_config
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> "Result":
        d = json.loads(text)
        return Result(d["snapshot"], tuple(_item_from_json(c) for c in d.get("chain") or ()),
                      d.get("imageConfig"))

    def snapshots(self) -> set[str]:
        """Every snapshot this result's chain still needs (for GC protection)."""
        out = {self.snapshot} if self.snapshot else set()
        for c in self.chain:
            if isinstance(c, SnapshotDiff):
                out.add(c.upper)
                if c.lower:
                    out.add(c.lower)
        return out

    def blobs(self) -> set[str]:
        return {c.layer.digest for c in self.chain if isinstance(c, KnownLayer)}


SCRATCH = Result("")


def to_export_chain(result: Result) -> list[ChainItem]:
    """The chain in the image writer's terms (already its ``KnownLayer`` / ``SnapshotDiff``)."""
    return list(result.chain)
