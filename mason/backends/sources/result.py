"""What every source loader hands the solver: a committed snapshot plus what is known about it.

Loaders (``image.load_image``, ``ocilayout.load_oci_layout``, ``local.load_local``,
``http.load_http``, ``git.load_git``) take a containerd ``Client`` already bound to the build's
lease, so everything they create stays alive for the build, and return a :class:`SourceResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Layer:
    """A base-image layer as the image names it: the compressed blob (``digest``, ``size``,
    ``media_type``, ``annotations``, passed through to exported images byte for byte) and the
    digest of its uncompressed tar (``diff_id``, from the config's ``rootfs.diff_ids``)."""

    media_type: str
    digest: str
    size: int
    diff_id: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The OCI descriptor of the blob (as a manifest's ``layers`` entry)."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True, slots=True)
class SourceResult:
    """A loaded source.

    * ``snapshot`` — the committed containerd snapshot holding the source's filesystem
      (``None``: an empty filesystem, e.g. an image without layers).
    * ``layers`` — for images, the base layers in order (they pass through to exports); empty
      for other sources (the exporter diffs the snapshot).
    * ``config`` — the image config JSON (images only).
    * ``digest`` — what was pinned: the image's root manifest/index digest, the http body's
      ``sha256:…``, the git commit, the local selection's checksum.
    * ``cache_key_extra`` — a content checksum to fold into cache keys: the selected content of
      a local source, the http body, the git commit sha; ``None`` for images (their ``digest``
      already pins them).
    """

    snapshot: str | None
    layers: tuple[Layer, ...] = ()
    config: dict[str, Any] | None = None
    digest: str | None = None
    cache_key_extra: str | None = None
