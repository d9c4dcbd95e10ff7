"""What a solved vertex is: a committed containerd snapshot plus the *chain* of layers that
builds it from scratch.

A chain element is either a layer that already exists as a blob (:class:`Layer`: an image's
base layers, a DiffOp's computed layer) or a snapshot difference still to be computed
(:class:`SnapDiff`: ``upper`` against ``lower``, None = empty). New layers are diffed lazily —
at export, or by a MergeOp that needs them — never on the critical path of the next step.
The exporter receives the chain (``to_export_chain``). Results serialize to JSON for the
cache store (``to_json`` / ``from_json``), so a cache hit restores the chain as well as the
snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer blob in the content store: its compressed descriptor and uncompressed digest."""

    media_type: str
    digest: str
    size: int
    diff_id: str
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": "layer", "mediaType": self.media_type, "digest": self.digest,
                             "size": self.size, "diffID": self.diff_id}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d


@dataclass(frozen=True, slots=True)
class SnapDiff:
    """The change from committed snapshot ``lower`` (None = empty) to committed ``upper``."""

    lower: str | None
    upper: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": "diff", "lower": self.lower, "upper": self.upper}


ChainItem = Union[Layer, SnapDiff]


def _item_from_json(d: dict[str, Any]) -> ChainItem:
    if d.get("kind") == "layer":
        return Layer(d["mediaType"], d["digest"], int(d["size"]), d["diffID"],
                     tuple(sorted((d.get("annotations") or {}).items())))
    if d.get("kind") == "diff":
        return SnapDiff(d.get("lower"), d["upper"])
    raise ValueError(f"unknown chain item {d!r}")


@dataclass(frozen=True, slots=True)
class Result:
    """A solved output. ``snapshot`` "" = the empty filesystem (scratch). ``image_config``
    is set by sources that bring one (docker-image, oci-layout)."""

    snapshot: str
    chain: tuple[ChainItem, ...] = ()
    image_config: dict | None = field(default=None, compare=False)

    @property
    def is_scratch(self) -> bool:
        return not self.snapshot

    def extend(self, new_snapshot: str) -> "Result":
        """The result of a step that turned this result into ``new_snapshot``."""
        return Result(new_snapshot, self.chain + (SnapDiff(self.snapshot or None, new_snapshot),))

    def to_json(self) -> str:
        d: dict[str, Any] = {"snapshot": self.snapshot, "chain": [c.to_json() for c in self.chain]}
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
            if isinstance(c, SnapDiff):
                out.add(c.upper)
                if c.lower:
                    out.add(c.lower)
        return out

    def blobs(self) -> set[str]:
        return {c.digest for c in self.chain if isinstance(c, Layer)}


SCRATCH = Result("")


def to_export_chain(result: Result) -> list[Any]:
    """The chain in the image writer's terms (``KnownLayer`` / ``SnapshotDiff`` of
    ``mason.backends.exporters.image``)."""
    from mason.backends.exporters import image as ex  # lazy: the exporter is optional here

    out: list[Any] = []
    for c in result.chain:
        if isinstance(c, Layer):
            out.append(ex.KnownLayer(_layer_for_exporter(ex, c)))
        else:
            out.append(ex.SnapshotDiff(c.lower, c.upper))
    return out


def _layer_for_exporter(ex: Any, layer: Layer) -> Any:
    """Adapt a :class:`Layer` to whatever layer value the exporter's ``KnownLayer`` takes."""
    make = getattr(ex, "layer_from_solver", None)
    if make is not None:
        return make(layer)
    return layer
