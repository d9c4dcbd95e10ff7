"""Imported remote caches, as the solver sees them (``SolveOptions.remote_cache``).

:meth:`RemoteCache.lookup` answers a cache key from the imported records — no blob is fetched:
the hit is a :class:`~mason.backends.solver.results.Result` without a snapshot whose chain is the
cache's layers, each a ``KnownLayer`` with a :class:`RemoteBlob` locator (``Result.remote`` names
the cache). Only when a step needs the files (an exec or file op on top of it, a local / tar
export) does the solver call :meth:`RemoteCache.materialize`: the missing blobs are fetched
(verified) into containerd's content store and unpacked into snapshots named by chain ID. An
exporter that needs the bytes but not the files (the image store, an archive) fetches the blobs
through the locator; a push mounts them from the cache's repository (same registry) or streams
them — a fully cached build that is only pushed pulls no layer blob at all.

A blob that turns out corrupt (digest or size mismatch, a diff ID that does not match what it
unpacks to) or missing is reported once as a warning and every record that uses it is
dropped (:meth:`RemoteCache.mark_bad`); the solver then computes the vertex itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mason.backends.cache.format import BlobInfo, record_digest
from mason.backends.cache.sources import CacheSource, Loaded
from mason.backends.containerd.client import UNCOMPRESSED, Client, ContainerdError, NotFound
from mason.backends.exporters.layer import KnownLayer
from mason.backends.solver.results import Result
from mason.backends.sources.result import Layer
from mason.ir.errors import MasonError


class BadBlob(MasonError):
    """A remote cache blob that could not be used (corrupt, missing, unreadable)."""

    def __init__(self, message: str, digest: str):
        super().__init__(message)
        self.digest = digest


@dataclass(frozen=True, eq=False)
class RemoteBlob:
    """Where one layer blob of an imported cache is: the ``KnownLayer.source`` locator."""

    source: CacheSource
    blob: BlobInfo
    cache: "RemoteCache" = field(repr=False)

    @property
    def layer(self) -> Layer:
        return Layer(self.blob.media_type, self.blob.digest, self.blob.size, self.blob.diff_id)

    def stream(self) -> Iterator[bytes]:
        self.cache.count_fetch(self.blob.digest)
        return self.source.stream(self.blob)

    def mount_repos(self, domain: str) -> list[str]:
        return self.source.mount_repos(domain)

    def fetch_into(self, client: Client) -> None:
        """Make the blob exist in ``client``'s content store (held by its lease), verified."""
        b = self.blob
        if client.lease_id:
            with contextlib.suppress(NotFound):
                client.add_lease_resource(client.lease_id, b.digest, "content")
        try:
            client.content_info(b.digest)
            return
        except NotFound:
            pass
        errors: list[BaseException] = []

        def chunks() -> Iterator[bytes]:
            try:
                yield from self.stream()
            except BaseException as e:
                errors.append(e)
                raise

        try:
            client.write_blob(chunks(), digest=b.digest, size=b.size, labels={UNCOMPRESSED: b.diff_id})
        except (MasonError, ContainerdError) as e:
            why = errors[0] if errors else e
            msg = why.message if isinstance(why, MasonError) else str(why)
            raise BadBlob(f"cache {self.source.name}: blob {b.digest}: {msg}", b.digest) from None


@dataclass
class Imported:
    source: CacheSource
    loaded: Loaded
    chains: dict[str, list[int]]  # record digest -> layer indexes of its first result's chain
    buildkit: bool


class RemoteCache:
    """The imported caches of one build, consulted in the order given."""

    def __init__(self, imports: list[Imported], warn: Callable[[str], None] | None = None):
        self.imports = imports
        self._warn = warn or (lambda m: None)
        self._bad: set[str] = set()
        self._lock = threading.Lock()
        self.hits: dict[str, int] = {}  # cache name -> vertices answered
        self.fetched: list[str] = []  # blob digests streamed from a cache (for reports and tests)

    @classmethod
    def from_loaded(cls, items: list[tuple[CacheSource, Loaded]], warn: Callable[[str], None] | None = None
                    ) -> "RemoteCache":
        imports = []
        for src, loaded in items:
            cfg = loaded.config
            chains: dict[str, list[int]] = {}
            for rec in cfg.records:
                if rec.results and rec.digest not in chains:
                    top = rec.results[0]
                    idx: list[int] = []
                    i = top
                    while i >= 0:
                        idx.append(i)
                        i = cfg.layers[i].parent
                    idx.reverse()
                    chains[rec.digest] = idx
            imports.append(Imported(src, loaded, chains, buildkit=not cfg.mason))
        return cls(imports, warn)

    def __bool__(self) -> bool:
        return bool(self.imports)

    def names(self) -> list[str]:
        return [i.source.name for i in self.imports]

    def count_fetch(self, digest: str) -> None:
        with self._lock:
            self.fetched.append(digest)

    # -- lookup ---------------------------------------------------------------------------------

    def lookup(self, output_key: str) -> Result | None:
        """The imported result for mason output key ``output_key`` (not materialized), or None."""
        rd = record_digest(output_key)
        for imp in self.imports:
            idx = imp.chains.get(rd)
            if idx is None:
                continue
            cfg, blobs = imp.loaded.config, imp.loaded.blobs
            chain: list[KnownLayer] | None = []
            for i in idx:
                digest = cfg.layers[i].blob
                info = blobs.get(digest)
                if info is None or digest in self._bad:
                    chain = None
                    break
                assert chain is not None
                chain.append(KnownLayer(Layer(info.media_type, info.digest, info.size, info.diff_id),
                                        RemoteBlob(imp.source, info, self)))
            if chain is None:
                continue
            with self._lock:
                self.hits[imp.source.name] = self.hits.get(imp.source.name, 0) + 1
            return Result("", tuple(chain), remote=imp.source.name)
        return None

    def mark_bad(self, digest: str, message: str) -> None:
        """Drop every record using blob ``digest``, reporting it once."""
        with self._lock:
            if digest in self._bad:
                return
            self._bad.add(digest)
        self._warn(f"{message}; skipping the cache records that use it")

    # -- materialization ------------------------------------------------------------------------

    def materialize(self, client: Client, result: Result) -> Result:
        """Fetch ``result``'s missing blobs and unpack its layers: a result with a committed
        snapshot (named by chain ID) and the same chain. Raises :class:`BadBlob`."""
        from mason.backends.sources.unpack import unpack_layers

        layers = []
        for item in result.chain:
            assert isinstance(item, KnownLayer)
            if item.layer.digest in self._bad:
                raise BadBlob(f"cache blob {item.layer.digest} was found corrupt", item.layer.digest)
            if item.source is not None:
                item.source.fetch_into(client)
            layers.append(item.layer)
        try:
            top = unpack_layers(client, layers)
        except MasonError as e:
            bad = _blob_named(e.message, layers)
            if bad is None:
                raise
            raise BadBlob(f"cache {result.remote}: {e.message}", bad) from None
        return Result(top or "", tuple(KnownLayer(la) for la in layers))

    # -- cache mounts ---------------------------------------------------------------------------

    def mount_blob(self, cache_id: str) -> RemoteBlob | None:
        """The layer holding cache mount ``cache_id``'s contents, from the first cache that has it."""
        for imp in self.imports:
            cfg = imp.loaded.config
            for e in cfg.mounts:
                if e.id != cache_id:
                    continue
                digest = cfg.layers[e.layer].blob
                info = imp.loaded.blobs.get(digest)
                if info is not None and digest not in self._bad:
                    return RemoteBlob(imp.source, info, self)
        return None

    def restore_mount(self, cache_id: str, dest: str) -> bool:
        """Fill the new directory ``dest`` with cache mount ``cache_id``'s imported contents
        (``CacheMounts``' restore hook); False when no import has it or its blob is bad (a
        warning), and nothing is left at ``dest`` then."""
        from mason.backends.cache.mounts import restore_dir

        blob = self.mount_blob(cache_id)
        if blob is None:
            return False
        try:
            restore_dir(blob.stream(), blob.blob.media_type, dest)  # stream() is verified
        except MasonError as e:
            self.mark_bad(blob.blob.digest, f"cache {blob.source.name}: cache mount {cache_id!r}: {e.message}")
            return False
        return True

    def summary(self) -> list[str]:
        """One line per import: what it holds."""
        out = []
        for imp in self.imports:
            cfg = imp.loaded.config
            what = "BuildKit" if imp.buildkit else "mason"
            line = (f"cache {imp.source.name}: {len(cfg.records)} records, {len(cfg.layers)} layers "
                    f"({what} format, {imp.loaded.kind})")
            if imp.buildkit:
                line += ("; its keys are BuildKit's, which mason's never equal, so it gives no hits "
                         "(docs/remote-cache.md)")
            out.append(line)
        return out


def _blob_named(message: str, layers: list[Layer]) -> str | None:
    for la in layers:
        if la.digest in message:
            return la.digest
    return None


__all__ = ["BadBlob", "Imported", "RemoteBlob", "RemoteCache"]
