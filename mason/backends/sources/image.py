"""``docker-image://`` sources: an image's layers unpacked into committed snapshots.

Where the image comes from (``image.resolvemode``):

* ``default`` — mason's image store first (containerd's images service, namespace ``mason``:
  a record named by the normalized reference, e.g. ``docker.io/library/busybox:latest``, or,
  for a pinned reference, the manifest/index blob already in the content store), then the
  registry.
* ``pull`` — always the registry (blobs already in the content store are not fetched again).
* ``local`` — the image store only.

Importing an image (shared with ``oci-layout://``): walk index → platform manifest → config;
write missing blobs to the content store with containerd's labels (``containerd.io/uncompressed``
on layers, ``containerd.io/gc.ref.content.*`` on manifests and indexes so GC keeps their
children, ``containerd.io/gc.ref.snapshot.overlayfs`` on the config for the unpacked top
snapshot); then unpack layer by layer into snapshots named by chain ID (``unpack``), reusing
what exists.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from mason.backends import oci
from mason.backends.containerd.client import UNCOMPRESSED, Client, ContainerdError, NotFound
from mason.backends.containerd.layers import GC_REF_SNAPSHOT
from mason.backends.sources.result import Layer, SourceResult
from mason.ir.errors import MasonError
from mason.ir.reference import Reference, parse_reference
from mason.ir.resolver import PlatformSpec

PREFIX = "docker-image://"
RESOLVE_MODES = ("default", "pull", "local")
MAX_JSON = 16 << 20
GC_REF_CONTENT = "containerd.io/gc.ref.content"
DISTRIBUTION_SOURCE = "containerd.io/distribution.source"
_PARALLEL_FETCHES = 4

__all__ = ["BlobProvider", "choose_manifest", "import_image", "index_platforms", "load_image",
           "parse_image_identifier", "store_platform_miss"]


class BlobProvider(Protocol):
    """Where an image's blobs come from while importing it."""

    def describe(self) -> str: ...

    def read(self, desc: oci.Descriptor) -> bytes:
        """A small blob (manifest, index, config), verified."""

    def stream(self, desc: oci.Descriptor) -> Iterator[bytes]:
        """A layer blob in chunks (containerd verifies size and digest on commit)."""

    def labels(self) -> Mapping[str, str]:
        """Extra labels for blobs this provider writes."""


def parse_image_identifier(identifier: str) -> Reference:
    text = identifier[len(PREFIX):] if identifier.startswith(PREFIX) else identifier
    return parse_reference(text)


def load_image(client: Client, registry: Any, identifier: str, attrs: Mapping[str, str],
               platform: PlatformSpec | None = None, *,
               cancel: Callable[[], bool] | None = None) -> SourceResult:
    """Load ``docker-image://REF`` into snapshots. ``registry`` is a
    :class:`~mason.backends.sources.registry.RegistryClient`, or a function returning one (only
    used when the image store does not have the image, or with ``image.resolvemode=pull``: a
    build from loaded images never imports the registry client). ``cancel`` is polled while the
    registry is asked: once it returns true, the pull's connections are shut down and
    :class:`~mason.backends.solver.scheduler.Cancelled` is raised (a stalled registry does not
    hold a cancelled build until its timeout)."""
    ref = parse_image_identifier(identifier)
    mode = attrs.get("image.resolvemode", "default") or "default"
    if mode not in RESOLVE_MODES:
        raise MasonError(f"invalid image.resolvemode {mode!r} for {ref.familiar()}: "
                         f"expected one of {', '.join(RESOLVE_MODES)}")
    want = platform or PlatformSpec.default()
    other = ""  # the store has the image for other platforms only: how a message says so
    if mode != "pull":
        try:
            found = _from_store(client, ref, want, strict=mode == "local")
        except _NoPlatform as e:
            if mode == "local":
                raise MasonError(e.in_store()) from None
            found, other = None, e.in_store()
        if found is not None:
            return found
        if mode == "local":
            raise MasonError(f"image {ref.familiar()} is not in mason's image store "
                             f"(image.resolvemode=local does not pull)")
    if callable(registry):
        registry = registry()
    if registry is None:
        raise MasonError(other or f"image {ref.familiar()} is not in mason's image store and no registry client "
                         "is set up")
    try:
        if cancel is None:
            return _pull(client, registry, ref, want)
        from mason.backends.sources.cancel import Streams, run_cancellable

        streams = Streams()
        watched = registry.watched(streams)
        return run_cancellable(lambda: _pull(client, watched, ref, want), cancel, streams,
                               f"pull of {ref.familiar()}", "mason-pull")
    except MasonError as e:
        if not other:
            raise
        # as the build driver's resolver says it: the platforms the store has, then the registry's answer
        raise MasonError(f"{other}; the registry: {e.message}", e.loc) from None


def _pull(client: Client, registry: Any, ref: Reference, want: PlatformSpec) -> SourceResult:
    root = registry.get_manifest(ref)
    provider = _RegistryProvider(registry, ref, {root.digest: root.data})
    return import_image(client, provider, root.descriptor, want, name=ref.familiar())


# -- the image store ------------------------------------------------------------------------


class _StoreMissing(MasonError):
    pass


class _StoreProvider:
    """Blobs that must already be in containerd's content store."""

    def __init__(self, client: Client):
        self.client = client

    def describe(self) -> str:
        return "mason's image store"

    def read(self, desc: oci.Descriptor) -> bytes:
        try:
            data = self.client.read_blob(desc.digest)
        except NotFound:
            raise _StoreMissing(f"blob {desc.digest} is missing from the content store") from None
        if oci.sha256_digest(data) != desc.digest and desc.digest.startswith("sha256:"):
            raise MasonError(f"content store blob {desc.digest} is corrupt")
        return data

    def stream(self, desc: oci.Descriptor) -> Iterator[bytes]:
        raise _StoreMissing(f"layer blob {desc.digest} is missing from the content store")

    def labels(self) -> Mapping[str, str]:
        return {}


def _from_store(client: Client, ref: Reference, want: PlatformSpec, *, strict: bool) -> SourceResult | None:
    """The image from mason's image store, or None when it is not there (or, unless
    ``strict``, is there only in part or for another platform)."""
    target = None
    if ref.digest:
        try:
            info = client.content_info(ref.digest)
            data = client.read_blob(ref.digest)
            target = oci.Descriptor(oci.detect_manifest_type(json.loads(data)), ref.digest, info.size)
        except (NotFound, ValueError, MasonError):
            target = None
    else:
        try:
            img = client.get_image(str(ref))
            target = oci.Descriptor(img.target.media_type, img.target.digest, img.target.size)
        except NotFound:
            target = None
    if target is None:
        return None
    try:
        return import_image(client, _StoreProvider(client), target, want, name=ref.familiar())
    except _StoreMissing:
        if strict:
            raise
        return None
    except _NoPlatform:
        raise  # the image is there, for other platforms: the caller says so if the registry fails too


# -- the registry -----------------------------------------------------------------------------


class _RegistryProvider:
    def __init__(self, registry: Any, ref: Reference, known: Mapping[str, bytes]):
        self.registry, self.ref, self.known = registry, ref, dict(known)

    def describe(self) -> str:
        return f"registry {self.ref.domain}"

    def read(self, desc: oci.Descriptor) -> bytes:
        if desc.digest in self.known:
            return self.known[desc.digest]
        if oci.is_index(desc.media_type) or oci.is_manifest(desc.media_type):
            return self.registry.get_manifest(self.ref, desc.digest).data
        return self.registry.fetch_blob_bytes(self.ref, desc, MAX_JSON)

    def stream(self, desc: oci.Descriptor) -> Iterator[bytes]:
        return _pump(lambda write: self.registry.fetch_blob(self.ref, desc, write))

    def labels(self) -> Mapping[str, str]:
        return {f"{DISTRIBUTION_SOURCE}.{self.ref.domain}": self.ref.path}


class _Cancelled(Exception):
    pass


def _pump(produce: Callable[[Callable[[bytes], None]], Any]) -> Iterator[bytes]:
    """Turn a push-style producer (it calls ``write(chunk)``) into an iterator of chunks,
    running it on a thread with a bounded queue. An error in the producer is raised by the
    iterator; abandoning the iterator stops the producer."""
    q: queue.Queue[Any] = queue.Queue(maxsize=8)
    stop = threading.Event()
    done = object()

    def write(chunk: bytes) -> None:
        while True:
            if stop.is_set():
                raise _Cancelled()
            try:
                q.put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue

    def run() -> None:
        try:
            produce(write)
            item: Any = done
        except _Cancelled:
            return
        except BaseException as e:  # handed to the consumer
            item = e
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    t = threading.Thread(target=run, name="mason-blob-fetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


# -- importing --------------------------------------------------------------------------------


class _NoPlatform(MasonError):
    """The image has no manifest for the wanted platform: ``have`` names the platforms it has
    (an index's) or the one it is for (a bare manifest's, ``index`` false)."""

    def __init__(self, what: str, want: PlatformSpec, have: str, *, index: bool):
        self.what, self.want, self.have, self.index = what, want, have, index
        super().__init__(f"image {what} has no manifest for platform {want} (it has {have})" if index
                         else f"image {what} is for platform {have}, not {want}")

    def in_store(self) -> str:
        """The message for this miss in mason's image store."""
        return store_platform_miss(self.what, self.want, self.have, index=self.index)


def store_platform_miss(what: str, want: PlatformSpec, have: str, *, index: bool) -> str:
    """How a message says that mason's image store has image ``what``, but not for ``want``."""
    if index:
        return f"image {what} has no manifest for platform {want} in mason's image store (it has {have})"
    return f"image {what} in mason's image store is for platform {have}, not {want}"


@dataclass
class _Walk:
    chain: list[tuple[oci.Descriptor, bytes, dict[str, Any]]]  # root ... manifest
    config_desc: oci.Descriptor
    config_bytes: bytes
    config: dict[str, Any]


def _parse(data: bytes, desc: oci.Descriptor, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except ValueError:
        raise MasonError(f"{what}: {desc.digest} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise MasonError(f"{what}: {desc.digest} is not a JSON object")
    return obj


def _usable(index: Mapping[str, Any]) -> list[oci.Descriptor]:
    return oci.usable_manifests(oci.Descriptor.from_json(d) for d in index.get("manifests", []))


def index_platforms(index: Mapping[str, Any]) -> str:
    """The platforms an index has images for, sorted, as a message names them ("none": no
    entry names one)."""
    return ", ".join(sorted({str(d.platform) for d in _usable(index) if d.platform})) or "none"


def choose_manifest(index: Mapping[str, Any], want: PlatformSpec, what: str) -> oci.Descriptor:
    """The index entry for platform ``want`` (attestation manifests never; an entry without a
    platform only when none matches)."""
    chosen = oci.choose_manifest((oci.Descriptor.from_json(d) for d in index.get("manifests", [])), want)
    if chosen is not None:
        return chosen
    raise _NoPlatform(what, want, index_platforms(index), index=True)


def _walk(provider: BlobProvider, root: oci.Descriptor, want: PlatformSpec, what: str) -> _Walk:
    chain = []
    desc = root
    for _ in range(5):
        data = provider.read(desc)
        obj = _parse(data, desc, what)
        mt = desc.media_type or oci.detect_manifest_type(obj)
        desc = oci.Descriptor(mt, desc.digest, len(data), desc.platform, desc.annotations)
        chain.append((desc, data, obj))
        if oci.is_index(mt):
            desc = choose_manifest(obj, want, what)
            continue
        if not oci.is_manifest(mt):
            raise MasonError(f"image {what}: unsupported manifest media type {mt!r}")
        cdesc = oci.Descriptor.from_json(obj.get("config") or {})
        cbytes = provider.read(cdesc)
        cfg = _parse(cbytes, cdesc, f"image config of {what}")
        if len(chain) == 1:
            # a bare manifest: it names no platform, so check the config's
            have = PlatformSpec.from_json(cfg)
            if have.os and have.architecture and not want.matches(have):
                raise _NoPlatform(what, want, str(have), index=False)
        return _Walk(chain, cdesc, cbytes, cfg)
    raise MasonError(f"image {what}: indexes nested too deeply")


def _layers(w: _Walk, what: str) -> tuple[Layer, ...]:
    manifest = w.chain[-1][2]
    descs = [oci.Descriptor.from_json(d) for d in manifest.get("layers", [])]
    diff_ids = (w.config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(descs):
        raise MasonError(f"image {what}: the manifest has {len(descs)} layers but the config lists "
                         f"{len(diff_ids)} diff IDs")
    return tuple(Layer(d.media_type, d.digest, d.size, str(i), dict(d.annotations))
                 for d, i in zip(descs, diff_ids, strict=False))


def _ensure_blob(client: Client, provider: BlobProvider, layer: Layer) -> None:
    labels = {UNCOMPRESSED: layer.diff_id, **provider.labels()}
    from mason.backends.sources.unpack import hold  # (unpack: ctypes, mounts) only to import an image

    hold(client, layer.digest, "content")
    try:
        info = client.content_info(layer.digest)
        if info.labels.get(UNCOMPRESSED) != layer.diff_id:
            client.update_content_labels(layer.digest, {UNCOMPRESSED: layer.diff_id})
        return
    except NotFound:
        pass
    desc = oci.Descriptor(layer.media_type, layer.digest, layer.size)
    errors: list[BaseException] = []

    def chunks() -> Iterator[bytes]:
        try:
            yield from provider.stream(desc)
        except BaseException as e:
            errors.append(e)
            raise

    try:
        client.write_blob(chunks(), digest=layer.digest, size=layer.size, labels=labels)
    except ContainerdError:
        if errors:
            raise errors[0] from None
        raise
    if errors:
        raise errors[0]


def _put_json_blob(client: Client, digest: str, data: bytes, labels: Mapping[str, str]) -> None:
    from mason.backends.sources.unpack import hold

    hold(client, digest, "content")
    client.write_blob(data, digest=digest, size=len(data), labels=labels)


def import_image(client: Client, provider: BlobProvider, root: oci.Descriptor, platform: PlatformSpec,
                 *, name: str, on_apply: Callable[[Layer, str], None] | None = None) -> SourceResult:
    """Import the image ``root`` names (for ``platform``) from ``provider`` into the content
    store and snapshots. ``name`` is how messages call the image."""
    w = _walk(provider, root, platform, name)
    layers = _layers(w, name)
    if len(layers) > 1:
        with ThreadPoolExecutor(min(_PARALLEL_FETCHES, len(layers)), thread_name_prefix="mason-pull") as ex:
            for f in [ex.submit(_ensure_blob, client, provider, ly) for ly in layers]:
                f.result()
    else:
        for ly in layers:
            _ensure_blob(client, provider, ly)
    from mason.backends.sources.unpack import unpack_layers

    top = unpack_layers(client, layers, on_apply=on_apply)
    extra = provider.labels()
    cfg_labels = dict(extra)
    if top:
        cfg_labels[GC_REF_SNAPSHOT] = top
    _put_json_blob(client, w.config_desc.digest, w.config_bytes, cfg_labels)
    # manifest and indexes, children first, each naming its children for the GC
    for desc, data, obj in reversed(w.chain):
        labels = dict(extra)
        if oci.is_index(desc.media_type):
            for i, child in enumerate(obj.get("manifests", [])):
                labels[f"{GC_REF_CONTENT}.m.{i}"] = str(child.get("digest", ""))
        else:
            labels[f"{GC_REF_CONTENT}.config"] = w.config_desc.digest
            for i, ly in enumerate(layers):
                labels[f"{GC_REF_CONTENT}.l.{i}"] = ly.digest
        _put_json_blob(client, desc.digest, data, labels)
    return SourceResult(snapshot=top, layers=layers, config=w.config, digest=root.digest)


def top_chain_id(layers: tuple[Layer, ...]) -> str | None:
    from mason.backends.sources.unpack import chain_ids

    ids = chain_ids(ly.diff_id for ly in layers)
    return ids[-1] if ids else None
