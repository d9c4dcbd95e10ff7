"""``http(s)://`` sources against a stdlib HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import stat
import threading
import uuid

import pytest

from mason.backends.containerd.client import Client
from mason.backends.sources.http import load_http, parse_http_attrs
from mason.backends.sources.mount import mounted_view
from mason.ir.errors import MasonError
from tests.fixtures.registry import free_port

BODY = b"#!/bin/sh\necho downloaded\n" * 100
SHA = "sha256:" + hashlib.sha256(BODY).hexdigest()
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"  # 1700000000


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        type(self).hits.append(self.path)
        if self.path.startswith("/missing"):
            self.send_error(404, "Not Found")
            return
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/files/after-redirect.sh")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Last-Modified", LAST_MODIFIED)
        if self.path.startswith("/download"):
            self.send_header("Content-Disposition", 'attachment; filename="tool.sh"')
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_parse_attrs() -> None:
    o = parse_http_attrs({"http.perm": "0755", "http.uid": "1000", "http.gid": "1001", "http.filename": "x"})
    assert (o.perm, o.uid, o.gid, o.filename, o.checksum) == (0o755, 1000, 1001, "x", None)
    assert parse_http_attrs({}).perm == 0o600
    with pytest.raises(MasonError, match=r"invalid http.filename '../etc/passwd': it must be a plain file name"):
        parse_http_attrs({"http.filename": "../etc/passwd"})
    with pytest.raises(MasonError, match=r"invalid http.perm attr '9x': expected an octal number"):
        parse_http_attrs({"http.perm": "9x"})
    with pytest.raises(MasonError, match=r"invalid digest"):
        parse_http_attrs({"http.checksum": "sha256:abc"})


pytestmark_integration = pytest.mark.integration


@pytest.fixture
def ns(containerd_env):
    base: Client = containerd_env.client.in_namespace(f"mason-t-{uuid.uuid4().hex[:10]}")
    base.ensure_namespace()
    lease = base.create_lease(expire=3600)
    try:
        yield base.with_lease(lease)
    finally:
        with contextlib.suppress(Exception):
            base.delete_lease(lease, sync=True)


def _file(c: Client, snap: str) -> dict[str, object]:
    with mounted_view(c, snap) as root:
        names = os.listdir(root)
        assert len(names) == 1
        st = os.lstat(root / names[0])
        return {"name": names[0], "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                "mtime": int(st.st_mtime), "data": (root / names[0]).read_bytes()}


@pytestmark_integration
def test_download_with_checksum_and_defaults(ns, server) -> None:
    res = load_http(ns, f"{server}/files/hello.sh?x=1", {"http.checksum": SHA})
    assert (res.digest, res.cache_key_extra, res.layers, res.config) == (SHA, SHA, (), None)
    assert _file(ns, res.snapshot) == {"name": "hello.sh", "mode": 0o600, "uid": 0, "gid": 0,
                                       "mtime": 1_700_000_000, "data": BODY}


@pytestmark_integration
def test_filename_perm_uid_gid(ns, server) -> None:
    attrs = {"http.filename": "run", "http.perm": "0755", "http.uid": "1000", "http.gid": "1001"}
    res = load_http(ns, f"{server}/files/hello.sh", attrs)
    f = _file(ns, res.snapshot)
    assert (f["name"], f["mode"], f["uid"], f["gid"]) == ("run", 0o755, 1000, 1001)


@pytestmark_integration
def test_names_from_content_disposition_redirect_and_root(ns, server) -> None:
    assert _file(ns, load_http(ns, f"{server}/download?id=7", {}).snapshot)["name"] == "tool.sh"
    assert _file(ns, load_http(ns, f"{server}/redirect", {}).snapshot)["name"] == "after-redirect.sh"
    assert _file(ns, load_http(ns, f"{server}/", {}).snapshot)["name"] == "index"


@pytestmark_integration
def test_checksum_mismatch_is_an_error(ns, server) -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(MasonError, match=rf"checksum mismatch: expected {wrong}, got {SHA}"):
        load_http(ns, f"{server}/files/hello.sh", {"http.checksum": wrong})
    assert not [s for s in ns.list_snapshots()]  # nothing committed, nothing left active


@pytestmark_integration
def test_pinned_download_is_reused_without_a_request(ns, server) -> None:
    attrs = {"http.checksum": SHA, "http.filename": "pinned.sh"}
    first = load_http(ns, f"{server}/files/pinned.sh", attrs)
    _Handler.hits.clear()
    assert load_http(ns, f"{server}/files/pinned.sh", attrs) == first
    assert _Handler.hits == []
    # the same body under the same name/mode is the same snapshot even unpinned
    assert load_http(ns, f"{server}/files/pinned.sh", {"http.filename": "pinned.sh"}).snapshot == first.snapshot


@pytestmark_integration
def test_http_errors(ns, server) -> None:
    with pytest.raises(MasonError, match=r"http source .*/missing.txt: the server answered 404 Not Found"):
        load_http(ns, f"{server}/missing.txt", {})
    dead = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(MasonError, match=rf"http source {dead}: download failed: .*[Cc]onnection refused"):
        load_http(ns, dead, {})
    with pytest.raises(MasonError, match=r"only http:// and https:// URLs"):
        load_http(ns, "file:///etc/passwd", {})
    with pytest.raises(MasonError, match=r"http source .*: invalid URL: "):  # was httpx's traceback
        load_http(ns, "http://127.0.0.1:x2/dated.txt", {})
