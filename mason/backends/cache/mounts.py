"""Cache mounts that travel (``--cache-to …,cache-mounts=true``): each ``RUN --mount=type=cache``
directory the build uses is exported as one layer (a tar of the directory, gzipped) named by its
cache id in the cache config's ``mason.mounts``; ``--cache-from`` restores it into a fresh state
root's cache directory the first time a step acquires that cache (see
:class:`mason.backends.solver.mounts.CacheMounts`), before the step runs.

* Size-capped: a cache whose content would take the export past ``cache-mounts-max-size`` (all
  of a build's mounts together) is left out with a warning.
* A cache the build did not use here (its step was a cache hit) but that an imported cache
  carries is exported again from that blob, so the content survives a chain of fresh machines.
* Restoring extracts the verified blob with :func:`tarfile.data_filter`'s checks (no absolute
  path, nothing outside the directory, no device) into a temporary directory that becomes the
  cache only when complete; owners and modes are kept. A bad blob is a warning: the step then
  starts from an empty (or seeded) cache, as it would without the import.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mason.backends import oci
from mason.backends.containerd.client import UNCOMPRESSED, Client
from mason.backends.fstree import remove_tree, walk
from mason.backends.sources.result import Layer
from mason.ir.errors import MasonError


def content_size(path: str) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    total = 0
    for top, _dirs, files in walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(top, name))
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def _tar_dir(path: str, out: Any, source_date_epoch: int | None) -> None:
    def clamp(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        if source_date_epoch is not None and ti.mtime > source_date_epoch:
            ti.mtime = source_date_epoch
        ti.uname = ti.gname = ""
        return ti

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        # tarfile's recursive add recurses in Python: the same order (depth first, names
        # sorted) from a stack of our own, so a tree of any depth goes in
        todo = sorted(os.listdir(path), reverse=True)
        while todo:
            arc = todo.pop()
            full = os.path.join(path, arc)
            tf.add(full, arcname=arc, recursive=False, filter=clamp)
            if stat.S_ISDIR(os.lstat(full).st_mode):
                todo.extend(f"{arc}/{n}" for n in sorted(os.listdir(full), reverse=True))


def layer_of_dir(client: Client, path: str, *, source_date_epoch: int | None = None) -> Layer:
    """The directory ``path`` as a gzip layer blob in ``client``'s content store (held by its
    lease)."""
    from mason.backends.exporters.difftar import file_chunks
    from mason.backends.exporters.fastgzip import gzip_chunks

    with tempfile.TemporaryDirectory(prefix="mason-cache-mount-") as tmp:
        tar_path, gz_path = os.path.join(tmp, "layer.tar"), os.path.join(tmp, "layer.tar.gz")
        with open(tar_path, "wb") as f:
            _tar_dir(path, f, source_date_epoch)
        with open(gz_path, "wb") as out:
            diff_id, digest, size = gzip_chunks(file_chunks(tar_path), out)
        client.write_blob(file_chunks(gz_path), digest=digest, size=size, labels={UNCOMPRESSED: diff_id})
    return Layer(oci.OCI_LAYER_GZIP, digest, size, diff_id)


def mount_layers(client: Client, ids: Iterable[str], path_of: Callable[[str], str], *, max_bytes: int,
                 warn: Callable[[str], None], remote: Any = None,
                 source_date_epoch: int | None = None) -> list[tuple[str, Layer]]:
    """(cache id, layer) of every cache mount in ``ids`` to export, within ``max_bytes`` in all.
    ``path_of(id)``: the cache's directory in this state root; ``remote``: the imported
    RemoteCache (its ``mount_blob(id)`` for a cache this build did not use)."""
    out: list[tuple[str, Layer]] = []
    budget = max_bytes
    for cid in dict.fromkeys(ids):
        path = path_of(cid)
        if os.path.isdir(path):
            n = content_size(path)
            if n > budget:
                warn(f"cache mount {cid!r}: {n} bytes would exceed cache-mounts-max-size "
                     f"({max_bytes} bytes for all cache mounts); not exported")
                continue
            budget -= n
            out.append((cid, layer_of_dir(client, path, source_date_epoch=source_date_epoch)))
            continue
        blob = remote.mount_blob(cid) if remote is not None else None
        if blob is None:
            continue
        if blob.blob.size > budget:
            warn(f"cache mount {cid!r}: its imported layer ({blob.blob.size} bytes) would exceed "
                 f"cache-mounts-max-size ({max_bytes} bytes); not exported")
            continue
        try:
            blob.fetch_into(client)
        except MasonError as e:
            warn(f"cache mount {cid!r}: {e.message}; not exported")
            continue
        budget -= blob.blob.size
        out.append((cid, blob.layer))
    return out


class ChunkReader:
    """A file-like reader over an iterator of byte chunks (for gzip/tarfile streaming)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._it = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


def decompressed(media_type: str, reader: ChunkReader) -> Any:
    raw: Any = reader  # file-like enough for gzip and zstandard (read(n))
    if "zstd" in media_type:
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw)
    if "gzip" in media_type:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def _member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    tarfile.data_filter(member, dest)  # raises for anything that would leave ``dest``
    return tarfile.tar_filter(member, dest)


def restore_dir(chunks: Iterator[bytes], media_type: str, dest: str) -> None:
    """Extract a cache mount layer (verified ``chunks``) into the new directory ``dest``; on any
    error nothing is left at ``dest`` and a MasonError says why."""
    os.mkdir(dest, 0o755)
    try:
        src = decompressed(media_type, ChunkReader(chunks))
        with tarfile.open(fileobj=src, mode="r|") as tf:
            for m in tf:
                if m.isdev():
                    continue
                tf.extract(m, dest, numeric_owner=True, filter=_member_filter)
    except MasonError:
        remove_tree(dest, ignore_errors=True)
        raise
    except Exception as e:  # a crafted or truncated archive: tarfile, gzip, zstd and OS errors
        remove_tree(dest, ignore_errors=True)
        raise MasonError(f"cannot unpack it: {e}") from None
    except BaseException:
        remove_tree(dest, ignore_errors=True)
        raise


__all__ = ["content_size", "layer_of_dir", "mount_layers", "restore_dir"]
