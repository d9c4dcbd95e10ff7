"""``type=local`` cache exports and imports, and ``oci-layout://`` build contexts, through the
client's session content store.

buildctl serves each ``--export-cache type=local,dest=DIR`` and ``--import-cache
type=local,src=DIR`` directory as a containerd ``Content`` service inside the session, chosen by
the ``buildkit-attachable-store-id: local:DIR`` header; it resolves an import's tag to
``digest=`` itself and, after the Solve, tags the descriptor the daemon answers in
``ExporterResponse["cache.manifest"]`` in the export directory's ``index.json``.

An ``oci-layout://STORE@DIGEST`` build context (buildctl ``--oci-layout STORE=DIR``, buildx
``--build-context NAME=oci-layout://DIR``) is the store ``oci:STORE``, fetched the same way.

mason's remote cache reads and writes OCI layouts, so the daemon stages each one in the build's
work directory: an import fetches the manifest and everything it references into a layout
first; an export writes a layout and then copies its blobs the client lacks into the store.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc

from mason.ir.errors import MasonError
from mason.server.session import Session, _rpc_message

STORE_HEADER = "buildkit-attachable-store-id"
SERVICE = "/containerd.services.content.v1.Content/"
CHUNK = 1 << 20
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                   "application/vnd.docker.distribution.manifest.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"


def _pb() -> Any:
    from mason.backends.containerd import _protos

    return _protos.load().content


class ClientStore:
    """One of the client's content stores through its session: ``local:DIR`` (a cache
    directory) or ``oci:NAME`` (an OCI layout buildctl's ``--oci-layout NAME=DIR`` serves)."""

    def __init__(self, session: Session, directory: str, *, store_id: str | None = None,
                 methods: tuple[str, ...] = ("Info", "Read", "Write")):
        self.session, self.id = session, store_id or f"local:{directory}"
        for m in methods:
            if not session.supports(SERVICE + m):
                raise MasonError(f"the client does not offer its content store for {directory} "
                                 f"(no {SERVICE + m} in its session)")
        self._md = [(STORE_HEADER, self.id)]

    def _call(self, kind: str, name: str, req: Any, resp: Any) -> Any:
        ch = self.session.channel
        f = getattr(ch, kind)
        return f(SERVICE + name, request_serializer=req.SerializeToString, response_deserializer=resp.FromString)

    def has(self, digest: str) -> bool:
        pb = _pb()
        try:
            self._call("unary_unary", "Info", pb.InfoRequest, pb.InfoResponse)(pb.InfoRequest(digest=digest),
                                                                                metadata=self._md)
            return True
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise MasonError(f"the client's cache store {self.id}: {_rpc_message(e)}") from None

    def read(self, digest: str) -> bytes:
        pb = _pb()
        call = self._call("unary_stream", "Read", pb.ReadContentRequest, pb.ReadContentResponse)
        try:
            data = b"".join(r.data for r in call(pb.ReadContentRequest(digest=digest), metadata=self._md))
        except grpc.RpcError as e:
            raise MasonError(f"reading {digest} from the client's cache store {self.id}: {_rpc_message(e)}") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise MasonError(f"the client's cache store {self.id}: {digest} does not hold its digest's content")
        return data

    def write(self, digest: str, path: Path) -> None:
        pb = _pb()
        size = path.stat().st_size
        ref = f"mason-cache-{digest.split(':', 1)[-1][:32]}-{os.urandom(4).hex()}"

        def requests() -> Iterator[Any]:
            yield pb.WriteContentRequest(action=pb.STAT, ref=ref)
            offset = 0
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield pb.WriteContentRequest(action=pb.WRITE, ref=ref, offset=offset, data=chunk, total=size,
                                                 expected=digest)
                    offset += len(chunk)
            yield pb.WriteContentRequest(action=pb.COMMIT, ref=ref, offset=offset, total=size, expected=digest)

        call = self._call("stream_stream", "Write", pb.WriteContentRequest, pb.WriteContentResponse)
        try:
            for _ in call(requests(), metadata=self._md):
                pass
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.ALREADY_EXISTS:
                return
            raise MasonError(f"writing {digest} to the client's cache store {self.id}: {_rpc_message(e)}") from None


def _children(media_type: str, data: bytes) -> list[Mapping[str, Any]]:
    doc = json.loads(data)
    if not isinstance(doc, dict):
        return []
    mt = doc.get("mediaType", media_type)
    if mt in _INDEX_TYPES or "manifests" in doc:
        return [d for d in doc.get("manifests", []) if isinstance(d, dict)]
    if mt in _MANIFEST_TYPES or "layers" in doc:
        out = [doc["config"]] if isinstance(doc.get("config"), dict) else []
        return out + [d for d in doc.get("layers", []) if isinstance(d, dict)]
    return []


def fetch_layout(store: ClientStore, digest: str, dest: Path) -> None:
    """Make ``dest`` an OCI layout holding the client's manifest ``digest`` (tagged ``latest``) and
    every blob it references."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    top = store.read(digest)
    try:
        top_type = json.loads(top).get("mediaType", _MANIFEST_TYPES[0])
    except (ValueError, AttributeError):
        raise MasonError(f"the client's cache store {store.id}: {digest} is not a manifest") from None
    todo: list[tuple[str, str, bytes | None]] = [(digest, top_type, top)]
    seen: set[str] = set()
    while todo:
        d, mt, data = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        if not d.startswith("sha256:") or len(d) != 71:
            raise MasonError(f"the client's cache store {store.id}: unsupported digest {d!r}")
        if data is None:
            data = store.read(d)
        (blobs / d[7:]).write_bytes(data)
        if mt.endswith("+json") and ("manifest" in mt or "index" in mt):
            for c in _children(mt, data):
                cd = str(c.get("digest", ""))
                cmt = str(c.get("mediaType", ""))
                todo.append((cd, cmt, None))
    index = {"schemaVersion": 2, "mediaType": _INDEX_TYPES[0], "manifests": [
        {"mediaType": top_type, "digest": digest, "size": len(top), "annotations": {REF_NAME: "latest"}}]}
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


def send_layout(store: ClientStore, layout: Path, tag: str) -> str:
    """Copy the blobs of the layout mason exported into the client's store (those it lacks);
    the descriptor (JSON) of the cache manifest tagged ``tag``, for ``cache.manifest``."""
    index = json.loads((layout / "index.json").read_text())
    desc = next((m for m in index.get("manifests", []) if m.get("annotations", {}).get(REF_NAME) == tag), None)
    if desc is None:
        raise MasonError(f"the cache export wrote no manifest tagged {tag!r}")
    for p in sorted((layout / "blobs" / "sha256").iterdir()):
        d = f"sha256:{p.name}"
        if not store.has(d):
            store.write(d, p)
    out = {k: v for k, v in desc.items() if k != "annotations"}
    return json.dumps(out)
