"""Multi-platform images: one image per platform under an OCI image index.

:func:`export_index` writes each platform's image (:func:`~.image.export_image`: its own layers,
config with that platform's ``architecture``/``os``/``variant``, its own ``history`` and
``created``) and then the index naming them, in the order the platforms were asked for, each
entry with its ``platform``. The index blob carries ``containerd.io/gc.ref.content.m.<i>`` labels
so containerd's GC keeps every manifest it names; each name given is recorded in the image store
with the index as its target, so ``FROM NAME`` (and the puller) picks the right manifest.

:func:`platform_dir` is the directory name ``type=local`` and ``type=tar`` use per platform,
as buildx does: ``linux/arm/v7`` → ``linux_arm_v7``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mason.backends import oci
from mason.backends.containerd.client import Client
from mason.backends.exporters.image import (
    GC_REF_CONTENT,
    ExportedImage,
    export_image,
    image_names,
    leased,
    store_image,
)
from mason.backends.exporters.layer import LayerSource
from mason.ir.resolver import PlatformSpec

__all__ = ["PlatformResult", "ExportedIndex", "export_index", "index_object", "platform_dir"]


@dataclass(frozen=True)
class PlatformResult:
    """One platform's build result, as the exporters need it: its layer chain, image config and
    committed final snapshot (None: empty)."""

    platform: PlatformSpec
    chain: Sequence[LayerSource]
    config: dict[str, Any]
    snapshot: str | None = None
    config_hook: Callable[[Sequence[Any]], Mapping[str, Any]] | None = None  # as export_image's


@dataclass(frozen=True)
class ExportedIndex:
    """What :func:`export_index` wrote: the index (digest, bytes) and each platform's image."""

    digest: str
    size: int
    index: dict[str, Any]
    index_bytes: bytes = field(repr=False)
    images: tuple[tuple[PlatformSpec, ExportedImage], ...]
    names: tuple[str, ...] = ()

    @property
    def manifest_digest(self) -> str:
        """The digest that names the image (as for a single-platform :class:`ExportedImage`):
        the index's."""
        return self.digest

    @property
    def media_type(self) -> str:
        return oci.OCI_INDEX

    @property
    def descriptor(self) -> oci.Descriptor:
        return oci.Descriptor(oci.OCI_INDEX, self.digest, self.size)


def index_object(entries: Sequence[tuple[PlatformSpec, oci.Descriptor]],
                 media_type: str = oci.OCI_INDEX) -> dict[str, Any]:
    """An image index (or Docker manifest list) naming each platform's manifest."""
    manifests = [oci.Descriptor(d.media_type, d.digest, d.size, platform=p).to_json() for p, d in entries]
    return {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}


def platform_dir(p: PlatformSpec) -> str:
    return str(p).replace("/", "_")


def export_index(client: Client, results: Sequence[PlatformResult], *, name: str | Sequence[str] | None = None,
                 source_date_epoch: int | None = None, fetch_remote: bool = True) -> ExportedIndex:
    """Export every platform's image, then the index naming them; record it under ``name``.
    ``fetch_remote``: as for :func:`~.image.export_image`."""
    names = image_names(name)  # bad names fail before any work
    with leased(client) as lc:
        images = tuple((r.platform, export_image(lc, r.chain, r.config, source_date_epoch=source_date_epoch,
                                                 platform=r.platform, fetch_remote=fetch_remote,
                                                 config_hook=r.config_hook))
                       for r in results)
        index = index_object([(p, img.descriptor) for p, img in images])
        data = oci.canonical_json(index)
        labels = {f"{GC_REF_CONTENT}.m.{i}": img.manifest_digest for i, (_, img) in enumerate(images)}
        info = lc.write_blob(data, labels=labels)
        out = ExportedIndex(info.digest, len(data), index, data, images, tuple(names))
        for n in names:
            store_image(lc, n, out.descriptor)
    return out
