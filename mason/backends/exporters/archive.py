"""Writing deterministic tar archives of blobs (shared by the OCI and Docker archive writers).

Entries are written in the order given with fixed metadata (owner 0:0, no user/group names,
mode 0644 for files and 0755 for directories, mtime = ``SOURCE_DATE_EPOCH`` or 0), so the same
image always gives the same archive bytes. The archive is written to a temporary file beside
the destination and renamed into place: a failed export never leaves half an archive."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from mason.backends.containerd.client import Client, NotFound
from mason.ir.errors import MasonError


class _ChunkReader(io.RawIOBase):
    """A file-like object over an iterator of byte chunks (for ``tarfile.addfile``)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class ArchiveWriter:
    """Adds directories, byte strings and content-store blobs to a tar stream."""

    def __init__(self, out: BinaryIO, *, mtime: int = 0):
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.mtime = mtime
        self.dirs: set[str] = set()

    def _info(self, name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.size, ti.mtime = kind, size, self.mtime
        ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    def dir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i]) + "/"
            if d not in self.dirs:
                self.dirs.add(d)
                self.tar.addfile(self._info(d, tarfile.DIRTYPE))

    def bytes(self, name: str, data: bytes) -> None:
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self.tar.addfile(self._info(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))

    def blob(self, client: Client, name: str, digest: str, size: int) -> None:
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        try:
            client.content_info(digest)
        except NotFound:
            raise MasonError(f"blob {digest} is not in containerd's content store") from None
        reader = io.BufferedReader(_ChunkReader(iter(client.read_blob_chunks(digest))), 1 << 20)
        self.tar.addfile(self._info(name, tarfile.REGTYPE, size), reader)

    def close(self) -> None:
        self.tar.close()


def blob_path(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"blobs/{alg}/{hexpart}"


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike[str] | BinaryIO) -> Iterator[BinaryIO]:
    """A binary stream for ``dest``: a file object as is, a path through a temporary file
    renamed into place on success."""
    if not isinstance(dest, (str, os.PathLike)):
        yield dest
        return
    path = Path(dest)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.")
    except OSError as e:
        raise MasonError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_archive(dest: str | os.PathLike[str] | BinaryIO, fill: Callable[[ArchiveWriter], None], *,
                  mtime: int = 0) -> None:
    with atomic_output(dest) as out:
        w = ArchiveWriter(out, mtime=mtime)
        fill(w)
        w.close()


