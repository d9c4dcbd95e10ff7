"""``compression=gzip|zstd|uncompressed`` for an exported cache: a layer blob of another
compression is converted into the content store (decompressed, its diff ID checked, compressed
again), so the cache's records name the converted blobs. Reading one back needs nothing here:
containerd's Apply and the cache-mount restore read every one of these media types.

* The output is deterministic (zstd at a fixed level, one thread; the uncompressed tar is the
  diff itself, its digest the diff ID), so exporting the same build twice writes the same cache.
* A zstd conversion is remembered by a label on the source blob (``mason.cache.zstd``), and an
  uncompressed one is found by its diff ID, so a re-export converts nothing again.
* A layer already in the wanted compression is taken as it is; so is any layer whose media type
  is none of the three (nothing to convert it with).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from mason.backends import oci
from mason.backends.cache.mounts import ChunkReader, decompressed
from mason.backends.containerd.client import UNCOMPRESSED, Client, ContainerdError, NotFound
from mason.ir.errors import MasonError

MEDIA_TYPES = {"gzip": oci.OCI_LAYER_GZIP, "zstd": oci.OCI_LAYER_ZSTD, "uncompressed": oci.OCI_LAYER}
ZSTD_LEVEL = 3
ZSTD_LABEL = "mason.cache.zstd"
_CHUNK = 1 << 20


def compression_of(media_type: str) -> str | None:
    """``gzip``, ``zstd``, ``uncompressed`` or None (a media type none of these)."""
    if media_type.endswith(("+gzip", ".tar.gzip")) or media_type == oci.DOCKER_LAYER_GZIP:
        return "gzip"
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type in (oci.OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar"):
        return "uncompressed"
    return None


def _file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def convert(client: Client, media_type: str, digest: str, size: int, diff_id: str,
            read: Callable[[], Iterator[bytes]], target: str) -> tuple[str, str, int]:
    """(media type, digest, size) of the blob ``digest`` (``media_type``, its bytes from
    ``read()``) in compression ``target``, written to ``client``'s content store (held by its
    lease) unless it is there already. The input is the layer unchanged when it is in ``target``
    already or its compression is unknown."""
    have = compression_of(media_type)
    if have is None or have == target:
        return media_type, digest, size
    want = MEDIA_TYPES[target]
    known = _known(client, digest, diff_id, target)
    if known is not None:
        return want, known[0], known[1]
    with tempfile.TemporaryDirectory(prefix="mason-cache-compress-") as tmp:
        out = os.path.join(tmp, "blob")
        h_tar, h_out, size = hashlib.sha256(), hashlib.sha256(), 0  # size: of the new blob
        try:
            src = decompressed(media_type, ChunkReader(read()))
            with open(out, "wb") as f:
                writer: Any = f
                zw: Any = None
                if target == "zstd":
                    import zstandard

                    zw = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0).stream_writer(f, closefd=False)
                    writer = zw
                while chunk := src.read(_CHUNK):
                    h_tar.update(chunk)
                    writer.write(chunk)
                if zw is not None:
                    zw.close()
        except (OSError, EOFError, ValueError) as e:
            raise MasonError(f"cannot convert layer {digest} to {target}: {e}") from None
        except Exception as e:  # zstandard.ZstdError and the like: a blob that does not decompress
            raise MasonError(f"cannot convert layer {digest} to {target}: {e}") from None
        if "sha256:" + h_tar.hexdigest() != diff_id:
            raise MasonError(f"layer {digest} decompresses to sha256:{h_tar.hexdigest()}, not its diff ID {diff_id}")
        for chunk in _file_chunks(out):
            h_out.update(chunk)
            size += len(chunk)
        new = "sha256:" + h_out.hexdigest()
        client.write_blob(_file_chunks(out), digest=new, size=size, labels={UNCOMPRESSED: diff_id})
    if target == "zstd":
        try:
            client.update_content_labels(digest, {ZSTD_LABEL: new})
        except ContainerdError:
            pass  # the source is a remote blob, not in this content store: nothing to remember it on
    return want, new, size


def _known(client: Client, digest: str, diff_id: str, target: str) -> tuple[str, int] | None:
    """(digest, size) of an earlier conversion still in the content store, or None."""
    try:
        if target == "uncompressed":
            return diff_id, client.content_info(diff_id).size
        prior = client.content_info(digest).labels.get(ZSTD_LABEL)
        if prior:
            return prior, client.content_info(prior).size
    except NotFound:
        pass
    return None


__all__ = ["MEDIA_TYPES", "compression_of", "convert"]
