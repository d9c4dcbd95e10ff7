"""Run a build's outputs: one image (written once) feeds ``image``, ``registry``, ``oci`` and
``docker`` outputs; ``local`` and ``tar`` copy the final snapshot. The driver calls
:func:`run_outputs` after the solve, with specs from :func:`~.outputs.parse_outputs` that
:func:`~.outputs.check_outputs` accepted before it.

A multi-platform build goes through :func:`run_platform_outputs`: the image outputs get one
image per platform under an image index (:mod:`.index`), and ``local``/``tar`` one directory per
platform named as buildx names them (``linux_arm64/…``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from mason.backends.containerd.client import Client
from mason.backends.exporters.image import ExportedImage, export_image, store_image
from mason.backends.exporters.layer import KnownLayer, Layer, LayerSource
from mason.backends.exporters.outputs import OutputSpec
from mason.ir.resolver import PlatformSpec

# the archive, directory and multi-platform writers load when an output needs them (tarfile and
# the diff writer are no part of a rebuild that names an image already there: issue 17)

if TYPE_CHECKING:  # the registry client (httpx) is imported only when something is pushed
    from mason.backends.exporters.index import ExportedIndex, PlatformResult
    from mason.backends.sources.registry import PushResult


@dataclass(frozen=True)
class OutputResult:
    spec: OutputSpec
    image: ExportedImage | ExportedIndex | None = None
    pushed: tuple[PushResult, ...] = ()


def run_outputs(client: Client, outputs: Sequence[OutputSpec], *, chain: Sequence[LayerSource],
                config: dict[str, Any], snapshot: str | None, history: list[dict[str, Any]] | None = None,
                source_date_epoch: int | None = None, platform: PlatformSpec | str | None = None,
                insecure_registries: Sequence[str] = (), stdout: BinaryIO | None = None,
                config_hook: Callable[[Sequence[Layer]], Mapping[str, Any]] | None = None) -> list[OutputResult]:
    """Write every output. ``chain`` and ``config`` describe the image; ``snapshot`` is the
    committed final filesystem (None: empty) for ``local``/``tar``. Layers of an imported remote
    cache (``KnownLayer.source``) are fetched only when an output needs their bytes here (the
    image store, an archive); a push mounts them from the cache's repository when it is on the
    same registry, and streams them from the cache otherwise. ``config_hook``: see
    :func:`~.image.export_image`."""

    def make(fetch: bool) -> ExportedImage:
        return export_image(client, chain, config, history=history, source_date_epoch=source_date_epoch,
                            platform=platform, fetch_remote=fetch, config_hook=config_hook)

    def files(o: OutputSpec, out: BinaryIO | str) -> None:
        if o.type == "local":
            from mason.backends.exporters.local import export_local

            export_local(client, snapshot, out, preserve_owner=o.preserve_owner)  # type: ignore[arg-type]
        else:
            from mason.backends.exporters.tar import export_tar

            export_tar(client, snapshot, out, source_date_epoch=source_date_epoch)

    return _run(client, outputs, make, files, _remote_blobs(chain), source_date_epoch, insecure_registries, stdout)


def run_platform_outputs(client: Client, outputs: Sequence[OutputSpec], results: Sequence[PlatformResult], *,
                         source_date_epoch: int | None = None, insecure_registries: Sequence[str] = (),
                         stdout: BinaryIO | None = None) -> list[OutputResult]:
    """Write every output of a multi-platform build (``results``: one per platform, in order);
    remote cache layers are handled as in :func:`run_outputs`."""

    from mason.backends.exporters.index import export_index, platform_dir

    def make(fetch: bool) -> ExportedIndex:
        return export_index(client, results, source_date_epoch=source_date_epoch, fetch_remote=fetch)

    def files(o: OutputSpec, out: BinaryIO | str) -> None:
        if o.type == "local":
            from mason.backends.exporters.local import export_local

            for r in results:
                export_local(client, r.snapshot, os.path.join(out, platform_dir(r.platform)),  # type: ignore[arg-type]
                             preserve_owner=o.preserve_owner)
        else:
            from mason.backends.exporters.tar import export_tars

            export_tars(client, [(platform_dir(r.platform), r.snapshot) for r in results], out,
                        source_date_epoch=source_date_epoch)

    remote: dict[str, Any] = {}
    for r in results:
        remote.update(_remote_blobs(r.chain))
    return _run(client, outputs, make, files, remote, source_date_epoch, insecure_registries, stdout)


def _remote_blobs(chain: Sequence[LayerSource]) -> dict[str, Any]:
    """Per layer digest, the remote cache blob locator of the chain's imported layers."""
    return {c.layer.digest: c.source for c in chain if isinstance(c, KnownLayer) and c.source is not None}


def _run(client: Client, outputs: Sequence[OutputSpec], make: Callable[[bool], ExportedImage | ExportedIndex],
         files: Callable[[OutputSpec, Any], None], remote: Mapping[str, Any], source_date_epoch: int | None,
         insecure_registries: Sequence[str], stdout: BinaryIO | None) -> list[OutputResult]:
    image: ExportedImage | ExportedIndex | None = None
    results = []
    fetch = any(o.needs_image and o.type != "registry" for o in outputs)
    for o in outputs:
        if o.needs_image and image is None:
            image = make(fetch)
        out = stdout if stdout is not None else sys.stdout.buffer
        pushed: list[PushResult] = []
        if o.type == "image":
            for n in o.names:
                store_image(client, n, image.descriptor)  # type: ignore[union-attr]
        if o.pushes:
            insecure = tuple(insecure_registries) + tuple(n.split("/", 1)[0] for n in o.names if o.insecure)
            for n in o.names:
                from mason.backends.exporters.registry import push_image

                pushed.append(push_image(client, image, n, insecure_registries=insecure,  # type: ignore[arg-type]
                                         remote=remote))
        if o.type == "oci":
            from mason.backends.exporters.oci_tar import write_oci_archive

            write_oci_archive(client, image, out if o.dest == "-" else o.dest, names=o.names,  # type: ignore[arg-type]
                              source_date_epoch=source_date_epoch)
        elif o.type == "docker":
            from mason.backends.exporters.docker_tar import write_docker_archive

            write_docker_archive(client, image, out if o.dest == "-" else o.dest, names=o.names,  # type: ignore[arg-type]
                                 source_date_epoch=source_date_epoch)
        elif o.type in ("local", "tar"):
            files(o, out if o.dest == "-" else o.dest)
        results.append(OutputResult(o, image if o.needs_image else None, tuple(pushed)))
    return results
