"""The image writer and mason's image store (containerd's image service, namespace ``mason``).

:func:`export_image` turns a build result — the chain of layer sources of its final state and
its image config — into an OCI image in containerd's content store: the layers (computed lazily,
:mod:`.layer`), the image config (``rootfs.diff_ids``, ``history`` reconciled with the layers the
way BuildKit's image writer does, ``created``), and an OCI manifest whose blob carries the GC
labels that keep its config and layers (``containerd.io/gc.ref.content.config``,
``…l.<i>``). Each name given is recorded in the image store (normalized like Docker's:
``hello`` → ``docker.io/library/hello:latest``) with the manifest as its target, so
``ctr -n mason run IMAGE`` runs it and ``FROM IMAGE`` resolves locally.

``SOURCE_DATE_EPOCH`` clamps: layer file mtimes (:mod:`.difftar`), the config's ``created`` (set
to the epoch) and every history ``created`` later than the epoch (base-image entries that are
older stay as they are). Base layers pass through byte for byte.

Image store operations: :func:`list_images`, :func:`get_image`, :func:`remove_image`;
archives come in through :mod:`.load`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mason.backends import oci
from mason.backends.containerd.client import Client, Image, NotFound
from mason.backends.containerd.client import Descriptor as CDescriptor
from mason.backends.exporters.layer import Layer, LayerSource, resolve_chain_at
from mason.ir.errors import MasonError
from mason.ir.reference import normalize, parse_reference
from mason.ir.resolver import PlatformSpec
from mason.ir.urls import redact_text

__all__ = ["ExportedImage", "ImageSummary", "export_image", "write_image", "store_image", "normalize_history",
           "list_images", "get_image", "remove_image", "image_size", "GC_REF_CONFIG", "gc_layer_label",
           "format_time", "format_time_ns", "OCI_EQUIVALENT"]

GC_REF_CONTENT = "containerd.io/gc.ref.content"
GC_REF_CONFIG = f"{GC_REF_CONTENT}.config"
EXPORTER_COMMENT = "mason.exporter.image.v0"

# A Docker layer media type and its OCI twin (the same bytes).
OCI_EQUIVALENT = {
    oci.DOCKER_LAYER_GZIP: oci.OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": oci.OCI_LAYER,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


def gc_layer_label(i: int) -> str:
    return f"{GC_REF_CONTENT}.l.{i}"


@dataclass(frozen=True)
class ExportedImage:
    """What :func:`export_image` wrote. ``size`` is the manifest's size in bytes (its
    descriptor's); ``names`` the normalized names recorded in the image store."""

    manifest_digest: str
    config_digest: str
    manifest: dict[str, Any]
    size: int
    config: dict[str, Any] = field(default_factory=dict, compare=False)
    manifest_bytes: bytes = field(default=b"", repr=False, compare=False)
    config_bytes: bytes = field(default=b"", repr=False, compare=False)
    layers: tuple[Layer, ...] = field(default=(), compare=False)
    names: tuple[str, ...] = ()

    @property
    def descriptor(self) -> oci.Descriptor:
        return oci.Descriptor(oci.OCI_MANIFEST, self.manifest_digest, self.size)


# -- time ----------------------------------------------------------------------------------

_TIME_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def format_time(t: float | int) -> str:
    """RFC 3339 in UTC; whole seconds without a fraction (``1970-01-01T00:00:00Z``)."""
    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    if d.microsecond:
        return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_time_ns(ns: int) -> str:
    """RFC 3339 in UTC to the nanosecond, trailing zeros of the fraction dropped (Go's
    RFC3339Nano, as BuildKit writes history times)."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(sec, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}".rstrip("0") + "Z" if frac else base + "Z"


def parse_time(s: Any) -> float | None:
    if not isinstance(s, str):
        return None
    m = _TIME_RE.match(s.strip())
    if not m:
        return None
    base, frac, tz = m.groups()
    d = _dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    tzinfo = _dt.timezone.utc if tz == "Z" else _dt.timezone(
        (1 if tz[0] == "+" else -1) * _dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    return d.replace(tzinfo=tzinfo).timestamp() + (float(frac) if frac else 0.0)


def _now() -> float:
    return _dt.datetime.now(_dt.timezone.utc).timestamp()


# -- config and manifest -------------------------------------------------------------------

def normalize_history(history: Sequence[dict[str, Any]], layer_count: int, *, created: str,
                      source_date_epoch: int | None = None,
                      layer_times: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
    """History whose non-empty entries match ``layer_count`` layers, like BuildKit's image
    writer: extra non-empty entries (beyond the layers) become ``empty_layer``; missing ones are
    appended for the top layers. Times, as BuildKit gives them: an entry for a layer without
    ``created`` gets that layer's time (``layer_times``, when it was made); every other entry
    without one gets the time of the first dated entry after the first undated one, and after
    that the time of the dated entry before it (a metadata instruction before the first new
    layer takes that layer's time, not the base image's); ``created`` when nothing has a time.
    With an epoch, every ``created`` later than it is clamped to it."""
    out: list[dict[str, Any]] = []
    seen = 0
    for h in history:
        h = dict(h)
        if not h.get("empty_layer"):
            if seen >= layer_count:
                h["empty_layer"] = True
            else:
                seen += 1
                h.pop("empty_layer", None)
        out.append(h)
    for _ in range(layer_count - seen):
        out.append({"created_by": "mason: layer", "comment": EXPORTER_COMMENT})
    if layer_times is not None:
        i = 0
        for h in out:
            if not h.get("empty_layer"):
                if not h.get("created") and i < len(layer_times) and layer_times[i]:
                    h["created"] = layer_times[i]
                i += 1
    fill, gap = None, False
    for h in out:
        if h.get("created"):
            fill = h["created"]
            if gap:
                break
        else:
            gap = True
    fill, gap = fill or created, False
    for h in out:
        if isinstance(h.get("created_by"), str):  # ADD https://user:token@… (GHSA-gc89-7gcr-jxqc)
            h["created_by"] = redact_text(h["created_by"])
        if h.get("created"):
            if gap:
                fill = h["created"]
        else:
            gap = True
            h["created"] = fill
        if source_date_epoch is not None:
            t = parse_time(h["created"])
            if t is None or t > source_date_epoch:
                h["created"] = format_time(source_date_epoch)
    return out


def _image_config(config: dict[str, Any], layers: Sequence[Layer], history: Sequence[dict[str, Any]] | None,
                  platform: PlatformSpec | None, source_date_epoch: int | None,
                  layer_times: Sequence[int | None] | None = None) -> dict[str, Any]:
    cfg = copy.deepcopy(config)
    if platform is not None:
        cfg.update(platform.to_json())
        if not platform.variant:
            cfg.pop("variant", None)
    elif not cfg.get("architecture") or not cfg.get("os"):
        host = PlatformSpec.default()
        cfg.setdefault("architecture", host.architecture)
        cfg.setdefault("os", host.os)
    created = format_time(source_date_epoch if source_date_epoch is not None else _now())
    hist = list(history if history is not None else cfg.get("history") or ())
    times = None if layer_times is None else [format_time_ns(t) if t else None for t in layer_times]
    cfg["history"] = normalize_history(hist, len(layers), created=created, source_date_epoch=source_date_epoch,
                                       layer_times=times)
    cfg["rootfs"] = {"type": "layers", "diff_ids": [la.diff_id for la in layers]}
    # BuildKit: the epoch, else the last history entry's time — so a rebuild from the same
    # cached layers is the same image (the same digest, nothing new to write)
    if source_date_epoch is None and cfg["history"]:
        created = cfg["history"][-1]["created"]
    cfg["created"] = created
    if not isinstance(cfg.get("config"), dict):
        cfg["config"] = {}
    return cfg


def _manifest(config_desc: oci.Descriptor, layers: Sequence[Layer]) -> dict[str, Any]:
    ls = []
    for la in layers:
        d: dict[str, Any] = {"mediaType": OCI_EQUIVALENT.get(la.media_type, la.media_type), "digest": la.digest,
                             "size": la.size}
        if la.annotations:
            d["annotations"] = dict(la.annotations)
        ls.append(d)
    return {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": config_desc.to_json(), "layers": ls}


@contextlib.contextmanager
def leased(client: Client) -> Iterator[Client]:
    """``client`` when it is bound to a lease already, else a client in a short lease of its own."""
    if client.lease_id:
        yield client
    else:
        with client.lease(expire=3600) as lc:
            yield lc


def image_names(name: str | Sequence[str] | None) -> list[str]:
    """Image names normalized, each once (a bad name is a MasonError)."""
    if name is None:
        return []
    raw = [name] if isinstance(name, str) else list(name)
    out: list[str] = []
    for n in raw:
        norm = normalize(n)
        if norm not in out:
            out.append(norm)
    return out


def write_image(client: Client, layers: Sequence[Layer], config: dict[str, Any], *,
                history: list[dict[str, Any]] | None = None, source_date_epoch: int | None = None,
                platform: PlatformSpec | str | None = None,
                layer_times: Sequence[int | None] | None = None) -> ExportedImage:
    """Write config and manifest for resolved ``layers`` to the content store (no image record).
    ``layer_times``: when each layer was made (ns since 1970, None: unknown), for history."""
    plat = PlatformSpec.parse(platform) if isinstance(platform, str) else platform
    cfg = _image_config(config, layers, history, plat, source_date_epoch, layer_times)
    config_bytes = oci.canonical_json(cfg)
    client.write_blob(config_bytes)
    config_desc = oci.Descriptor.of(oci.OCI_CONFIG, config_bytes)
    manifest = _manifest(config_desc, layers)
    manifest_bytes = oci.canonical_json(manifest)
    labels = {GC_REF_CONFIG: config_desc.digest}
    labels.update({gc_layer_label(i): la.digest for i, la in enumerate(layers)})
    info = client.write_blob(manifest_bytes, labels=labels)
    return ExportedImage(info.digest, config_desc.digest, manifest, len(manifest_bytes), cfg, manifest_bytes,
                         config_bytes, tuple(layers))


def store_image(client: Client, name: str, target: oci.Descriptor | CDescriptor) -> str:
    """Point image ``name`` (normalized) at ``target`` in the image store (no write when it
    points there already); returns the name."""
    norm = normalize(name)
    want = CDescriptor(target.media_type, target.digest, target.size)
    try:
        have = client.get_image(norm)
    except NotFound:
        have = None
    if have is None or have.target != want:
        client.put_image(Image(norm, want))
    return norm


def export_image(client: Client, chain: Sequence[LayerSource], config: dict[str, Any], *,
                 name: str | Sequence[str] | None = None, history: list[dict[str, Any]] | None = None,
                 source_date_epoch: int | None = None,
                 platform: PlatformSpec | str | None = None, fetch_remote: bool = True,
                 config_hook: Callable[[Sequence[Layer]], Mapping[str, Any]] | None = None) -> ExportedImage:
    """Export the build result whose filesystem is ``chain`` (bottom layer first) with image
    config ``config`` (its ``history``, unless ``history`` is given, is reconciled with the
    layers; ``rootfs`` and ``created`` are set here). Records the image under every ``name``.
    Runs inside the client's lease, or a short one of its own. ``fetch_remote=False`` leaves a
    remote cache's layers where they are (the image is only pushed); ``config_hook(layers)``
    returns keys to add to the config once the layers are known (the inline cache)."""
    names = image_names(name)  # bad names fail before any work
    with leased(client) as lc:
        resolved = resolve_chain_at(lc, chain, source_date_epoch=source_date_epoch, fetch_remote=fetch_remote)
        layers = [la for la, _ in resolved]
        if config_hook is not None:
            config = {**config, **config_hook(layers)}
        img = write_image(lc, layers, config, history=history, source_date_epoch=source_date_epoch,
                          platform=platform, layer_times=[t for _, t in resolved])
        for n in names:
            store_image(lc, n, img.descriptor)
    return ExportedImage(img.manifest_digest, img.config_digest, img.manifest, img.size, img.config,
                         img.manifest_bytes, img.config_bytes, img.layers, tuple(names))


# -- image store -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageSummary:
    name: str
    digest: str  # the target's (manifest or index)
    media_type: str
    size: int  # bytes of every blob the image references that is in the content store


def image_size(client: Client, target: oci.Descriptor | CDescriptor) -> int:
    """The total size of the blobs reachable from ``target`` (as ``ctr images ls`` shows)."""
    import json

    seen: set[str] = set()
    total = 0
    todo = [(target.media_type, target.digest, target.size)]
    while todo:
        mt, digest, size = todo.pop()
        if digest in seen:
            continue
        seen.add(digest)
        total += size
        if oci.is_index(mt) or oci.is_manifest(mt):
            try:
                obj = json.loads(client.read_blob(digest))
            except NotFound:
                continue
            if oci.is_index(mt):
                for d in obj.get("manifests") or ():
                    if client.content_exists(d["digest"]):
                        todo.append((d.get("mediaType", ""), d["digest"], int(d["size"])))
            else:
                for d in [obj.get("config")] + list(obj.get("layers") or ()):
                    if d:
                        todo.append((d.get("mediaType", ""), d["digest"], int(d["size"])))
    return total


def list_images(client: Client) -> list[ImageSummary]:
    out = []
    for im in sorted(client.list_images(), key=lambda i: i.name):
        out.append(ImageSummary(im.name, im.target.digest, im.target.media_type, image_size(client, im.target)))
    return out


def _lookup_name(name: str) -> str:
    try:
        return normalize(name)
    except MasonError:
        raise MasonError(f"invalid image name {name!r}") from None


def get_image(client: Client, name: str) -> Image:
    """The image record for ``name`` (normalized); a MasonError if there is none."""
    norm = _lookup_name(name)
    try:
        return client.get_image(norm)
    except NotFound:
        raise MasonError(f"no such image: {parse_reference(norm).familiar()}") from None


def remove_image(client: Client, name: str) -> str:
    """Delete image record ``name``; its blobs go with containerd's next GC when nothing else
    holds them. Returns the normalized name."""
    norm = _lookup_name(name)
    try:
        client.delete_image(norm, sync=False)
    except NotFound:
        raise MasonError(f"no such image: {parse_reference(norm).familiar()}") from None
    return norm
