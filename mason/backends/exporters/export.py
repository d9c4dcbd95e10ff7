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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from mason.backends.containerd.client import Client
from mason.backends.exporters.docker_tar import write_docker_archive
from mason.backends.exporters.image import ExportedImage, export_image, store_image
from mason.backends.exporters.index import ExportedIndex, PlatformResult, export_index, platform_dir
from mason.backends.exporters.layer import LayerSource
from mason.backends.exporters.local import export_local
from mason.backends.exporters.oci_tar import write_oci_archive
from mason.backends.exporters.outputs import OutputSpec
from mason.backends.exporters.tar import export_tar, export_tars
from mason.ir.resolver import PlatformSpec

if TYPE_CHECKING:  # the registry client (httpx) is imported only when something is pushed
    from mason.backends.sources.registry import PushResult


@dataclass(frozen=True)
class OutputResult:
    spec: OutputSpec
    image: ExportedImage | ExportedIndex | None = None
    pushed: tuple[PushResult, ...] = ()


def run_outputs(client: Client, outputs: Sequence[OutputSpec], *, chain: Sequence[LayerSource],
                config: dict[str, Any], snapshot: str | None, history: list[dict[str, Any]] | None = None,
                source_date_epoch: int | None = None, platform: PlatformSpec | str | None = None,
                insecure_registries: Sequence[str] = (), stdout: BinaryIO | None = None) -> list[OutputResult]:
    """Write every output. ``chain`` and ``config`` describe the image; ``snapshot`` is the
    committed final filesystem (None: empty) for ``local``/``tar``."""

    def make() -> ExportedImage:
        return export_image(client, chain, config, history=history, source_date_epoch=source_date_epoch,
                            platform=platform)

    def files(o: OutputSpec, out: BinaryIO | str) -> None:
        if o.type == "local":
            export_local(client, snapshot, out)  # type: ignore[arg-type]
        else:
            export_tar(client, snapshot, out, source_date_epoch=source_date_epoch)

    return _run(client, outputs, make, files, source_date_epoch, insecure_registries, stdout)


def run_platform_outputs(client: Client, outputs: Sequence[OutputSpec], results: Sequence[PlatformResult], *,
                         source_date_epoch: int | None = None, insecure_registries: Sequence[str] = (),
                         stdout: BinaryIO | None = None) -> list[OutputResult]:
    """Write every output of a multi-platform build (``results``: one per platform, in order)."""

    def make() -> ExportedIndex:
        return export_index(client, results, source_date_epoch=source_date_epoch)

    def files(o: OutputSpec, out: BinaryIO | str) -> None:
        if o.type == "local":
            for r in results:
                export_local(client, r.snapshot, os.path.join(out, platform_dir(r.platform)))  # type: ignore[arg-type]
        else:
            export_tars(client, [(platform_dir(r.platform), r.snapshot) for r in results], out,
                        source_date_epoch=source_date_epoch)

    return _run(client, outputs, make, files, source_date_epoch, insecure_registries, stdout)


def _run(client: Client, outputs: Sequence[OutputSpec], make: Callable[[], ExportedImage | ExportedIndex],
         files: Callable[[OutputSpec, Any], None], source_date_epoch: int | None,
         insecure_registries: Sequence[str], stdout: BinaryIO | None) -> list[OutputResult]:
    image: ExportedImage | ExportedIndex | None = None
    results = []
    for o in outputs:
        if o.needs_image and image is None:
            image = make()
        out = stdout if stdout is not None else sys.stdout.buffer
        pushed: list[PushResult] = []
        if o.type == "image":
            for n in o.names:
                store_image(client, n, image.descriptor)  # type: ignore[union-attr]
        if o.pushes:
            insecure = tuple(insecure_registries) + tuple(n.split("/", 1)[0] for n in o.names if o.insecure)
            for n in o.names:
                from mason.backends.exporters.registry import push_image

                pushed.append(push_image(client, image, n, insecure_registries=insecure))  # type: ignore[arg-type]
        if o.type == "oci":
            write_oci_archive(client, image, out if o.dest == "-" else o.dest, names=o.names,  # type: ignore[arg-type]
                              source_date_epoch=source_date_epoch)
        elif o.type == "docker":
            write_docker_archive(client, image, out if o.dest == "-" else o.dest, names=o.names,  # type: ignore[arg-type]
                                 source_date_epoch=source_date_epoch)
        elif o.type in ("local", "tar"):
            files(o, out if o.dest == "-" else o.dest)
        results.append(OutputResult(o, image if o.needs_image else None, tuple(pushed)))
    return results
