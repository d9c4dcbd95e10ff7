"""The root filesystem and image config of an OCI image archive, for comparing images built by
mason and by BuildKit (tests/conformance/test_same_image.py).

:func:`read_image` unpacks nothing: it reads the archive's index, manifest, config and layer
tars, applies the layers in order (whiteouts ``.wh.NAME`` and opaque directories
``.wh..wh..opq`` as the OCI image spec defines them) and returns every path's
:class:`Entry` — type, permission bits, owner, content digest, symlink target, device numbers.
Times are not kept: two builders never agree on them. :func:`diff_trees` and
:func:`diff_configs` list the differences as one line each.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Entry", "Image", "read_image", "diff_trees", "diff_configs"]

_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
          tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "file"}


@dataclass(frozen=True)
class Entry:
    type: str
    mode: int  # permission bits, setuid/setgid/sticky included
    uid: int
    gid: int
    digest: str = ""  # sha256 of a regular file's content
    target: str = ""  # a symlink's target; "hardlink to PATH" for a hardlink in the same layer
    device: tuple[int, int] = (0, 0)

    def __str__(self) -> str:
        extra = {"file": f" {self.digest[:12]}", "symlink": f" -> {self.target}",
                 "char": f" {self.device}", "block": f" {self.device}"}.get(self.type, "")
        return f"{self.type} {self.mode:04o} {self.uid}:{self.gid}{extra}"


@dataclass
class Image:
    tree: dict[str, Entry]  # "/path" -> entry; "/" is the root directory when a layer has it
    config: dict[str, Any]
    layers: int


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    algo, hexd = digest.split(":", 1)
    f = tar.extractfile(f"blobs/{algo}/{hexd}")
    assert f is not None, digest
    return f.read()


def _path(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def _below(tree: dict[str, Entry], path: str) -> list[str]:
    prefix = path.rstrip("/") + "/"
    return [p for p in tree if p.startswith(prefix)]


Normalize = Callable[[bytes], bytes]


def _apply(tree: dict[str, Entry], layer: bytes, normalize: Normalize | None) -> None:
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:*") as tf:
        members = tf.getmembers()
        # whiteouts remove what lower layers have, before this layer's own entries land
        for m in members:
            path = _path(m.name)
            parent, _, base = path.rpartition("/")
            if base == ".wh..wh..opq":
                for p in _below(tree, parent or "/"):
                    del tree[p]
            elif base.startswith(".wh."):
                gone = (parent or "") + "/" + base[4:]
                tree.pop(gone, None)
                for p in _below(tree, gone):
                    del tree[p]
        for m in members:
            path = _path(m.name)
            base = path.rpartition("/")[2]
            if base.startswith(".wh."):
                continue
            if m.islnk():  # a hardlink: the same content as its target (already in this layer)
                t = tree.get(_path(m.linkname))
                assert t is not None, f"hardlink {path} to missing {m.linkname}"
                tree[path] = Entry("file", m.mode & 0o7777, m.uid, m.gid, t.digest, f"hardlink to {_path(m.linkname)}")
                continue
            kind = _TYPES.get(m.type, f"type-{m.type!r}")
            if kind != "dir":
                for p in _below(tree, path):  # a non-directory replaces a directory
                    del tree[p]
            digest = ""
            if kind == "file":
                f = tf.extractfile(m)
                data = f.read() if f is not None else b""
                digest = hashlib.sha256(normalize(data) if normalize is not None else data).hexdigest()
            tree[path] = Entry(kind, m.mode & 0o7777, m.uid, m.gid, digest,
                               m.linkname if kind == "symlink" else "",
                               (m.devmajor, m.devminor) if kind in ("char", "block") else (0, 0))


def read_image(archive: Path | str, normalize: Normalize | None = None) -> Image:
    """The (single-platform) image in OCI archive ``archive``: its root filesystem and config
    (``normalize``: applied to each regular file's content before it is hashed)."""
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        desc = index["manifests"][0]
        manifest = json.loads(_blob(tar, desc["digest"]))
        if "manifests" in manifest:  # an index inside: take its only image
            assert len(manifest["manifests"]) == 1, manifest
            manifest = json.loads(_blob(tar, manifest["manifests"][0]["digest"]))
        config = json.loads(_blob(tar, manifest["config"]["digest"]))
        tree: dict[str, Entry] = {}
        for layer in manifest["layers"]:
            _apply(tree, _blob(tar, layer["digest"]), normalize)
    return Image(tree, config, len(manifest["layers"]))


def diff_trees(mine: dict[str, Entry], theirs: dict[str, Entry]) -> list[str]:
    """``PATH: mason X, buildkit Y`` for every path whose entries differ (``-`` where missing)."""
    out = []
    for p in sorted(set(mine) | set(theirs)):
        a, b = mine.get(p), theirs.get(p)
        if a != b:
            out.append(f"{p}: mason {a or '-'}, buildkit {b or '-'}")
    return out


_CONFIG_IGNORED = ("created",)  # a time: the builders never agree


def _history(config: dict[str, Any]) -> list[tuple]:
    return [(h.get("created_by", ""), bool(h.get("empty_layer", False)), h.get("comment", ""))
            for h in config.get("history", [])]


def diff_configs(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The image config fields that differ: the container config field by field, platform
    fields, history (without times) and the number of layers."""
    out = []
    a, b = mine.get("config") or {}, theirs.get("config") or {}
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append(f"config.{k}: mason {a.get(k)!r}, buildkit {b.get(k)!r}")
    for k in sorted((set(mine) | set(theirs)) - {"config", "history", "rootfs", *_CONFIG_IGNORED}):
        if mine.get(k) != theirs.get(k):
            out.append(f"{k}: mason {mine.get(k)!r}, buildkit {theirs.get(k)!r}")
    ha, hb = _history(mine), _history(theirs)
    if ha != hb:
        for i in range(max(len(ha), len(hb))):
            x = ha[i] if i < len(ha) else None
            y = hb[i] if i < len(hb) else None
            if x != y:
                out.append(f"history[{i}]: mason {x!r}, buildkit {y!r}")
    la, lb = len(mine.get("rootfs", {}).get("diff_ids", [])), len(theirs.get("rootfs", {}).get("diff_ids", []))
    if la != lb:
        out.append(f"rootfs.diff_ids: mason {la} layers, buildkit {lb}")
    return out
