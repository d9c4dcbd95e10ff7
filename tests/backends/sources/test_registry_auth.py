"""The registry client against a small stdlib registry: the Bearer token and Basic flows,
Docker config credentials, lying servers (digest mismatches) and network errors."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from mason.backends import oci
from mason.backends.oci import Descriptor
from mason.backends.sources.auth import Credentials, CredentialStore, parse_challenges
from mason.backends.sources.registry import RegistryClient, is_loopback
from mason.ir.errors import MasonError
from mason.ir.resolver import PlatformSpec
from tests.fixtures.registry import free_port

USER, PASSWORD = "alice", "wonderland"
LAYER = b"not really a tar, but bytes with a digest" * 100
CONFIG = oci.canonical_json({"architecture": "amd64", "os": "linux",
                             "config": {"Env": ["A=1"], "Cmd": ["/bin/true"]},
                             "rootfs": {"type": "layers", "diff_ids": []}})
MANIFEST = oci.canonical_json({
    "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
    "config": Descriptor.of(oci.OCI_CONFIG, CONFIG).to_json(),
    "layers": [Descriptor.of(oci.OCI_LAYER_GZIP, LAYER).to_json()],
})
MANIFEST_DIGEST = oci.sha256_digest(MANIFEST)


@dataclass
class FakeRegistry:
    """Serves ``test/app:v1``. ``auth``: none | basic | bearer | bearer-creds (token server
    wants the credentials). ``lie``: header (wrong Docker-Content-Digest) | body (manifest
    bytes changed) | blob (layer bytes changed)."""

    auth: str = "none"
    lie: str = ""
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, authorization)
    token_requests: list[dict] = field(default_factory=list)
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def _handler(fake: FakeRegistry):
    good_basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # quiet
            pass

        def send(self, code, body=b"", headers=None):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def challenge(self, scope=None):
            if fake.auth == "basic":
                h = 'Basic realm="fake"'
            else:
                h = f'Bearer realm="http://{fake.host}/token",service="fake-registry"'
                if scope:
                    h += f',scope="{scope}"'
            err = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
            self.send(401, err.encode(), {"WWW-Authenticate": h, "Content-Type": "application/json"})

        def authorized(self, path):
            a = self.headers.get("Authorization", "")
            if fake.auth == "none":
                return True
            if fake.auth == "basic":
                return a == good_basic
            if not a.startswith("Bearer tok:"):
                return False
            scopes = a[len("Bearer tok:"):].split("|")
            if path == "/v2/":
                return True
            repo = path.split("/")[2] + "/" + path.split("/")[3]
            return any(s.startswith(f"repository:{repo}:") for s in scopes)

        def do_GET(self):
            self.route()

        def do_HEAD(self):
            self.route()

        def route(self):
            u = urlsplit(self.path)
            fake.requests.append((self.command, u.path, self.headers.get("Authorization", "")))
            if u.path == "/token":
                return self.token(parse_qs(u.query))
            if not self.authorized(u.path):
                repo = "/".join(u.path.split("/")[2:4])
                return self.challenge(f"repository:{repo}:pull" if u.path != "/v2/" else None)
            if u.path == "/v2/":
                return self.send(200, b"{}", {"Content-Type": "application/json"})
            if u.path in ("/v2/test/app/manifests/v1", f"/v2/test/app/manifests/{MANIFEST_DIGEST}"):
                body = MANIFEST
                if fake.lie == "body":
                    body = MANIFEST.replace(b'"schemaVersion":2', b'"schemaVersion":2 ')
                said = MANIFEST_DIGEST if fake.lie != "header" else "sha256:" + "0" * 64
                return self.send(200, body, {"Content-Type": oci.OCI_MANIFEST, "Docker-Content-Digest": said})
            if u.path == f"/v2/test/app/blobs/{oci.sha256_digest(CONFIG)}":
                return self.send(200, CONFIG, {"Content-Type": "application/octet-stream"})
            if u.path == f"/v2/test/app/blobs/{oci.sha256_digest(LAYER)}":
                body = LAYER if fake.lie != "blob" else LAYER[:-1] + b"X"
                return self.send(200, body, {"Content-Type": "application/octet-stream"})
            err = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
            self.send(404, err.encode(), {"Content-Type": "application/json"})

        def token(self, q):
            fake.token_requests.append({"query": q, "authorization": self.headers.get("Authorization", "")})
            if q.get("service") != ["fake-registry"]:
                return self.send(400, b'{"errors":[{"code":"BAD","message":"no service"}]}')
            if fake.auth == "bearer-creds" and self.headers.get("Authorization") != good_basic:
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
            tok = "tok:" + "|".join(q.get("scope", []))
            self.send(200, json.dumps({"token": tok, "expires_in": 300}).encode(),
                      {"Content-Type": "application/json"})

    return H


@pytest.fixture
def fake():
    state = FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def no_docker_config(tmp_path, monkeypatch):
    """Never read the real ~/.docker/config.json here."""
    empty = tmp_path / "empty-docker-config"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))


def client(**kw) -> RegistryClient:
    return RegistryClient(timeout=10, **kw)


def test_anonymous_bearer_token_flow(fake):
    fake.auth = "bearer"
    with client() as c:
        res = c.resolve_image_config(f"{fake.host}/test/app:v1", PlatformSpec.parse("linux/amd64"))
        assert res.digest == MANIFEST_DIGEST
        assert res.ref == f"{fake.host}/test/app:v1@{MANIFEST_DIGEST}"
        assert res.config["config"]["Env"] == ["A=1"]
        data = c.fetch_blob_bytes(f"{fake.host}/test/app:v1", Descriptor.of(oci.OCI_LAYER_GZIP, LAYER))
        assert data == LAYER
    # one token for the pull scope, reused for manifest, config and layer; no credentials sent
    assert len(fake.token_requests) == 1
    tr = fake.token_requests[0]
    assert tr["query"]["scope"] == ["repository:test/app:pull"]
    assert tr["query"]["service"] == ["fake-registry"]
    assert tr["authorization"] == ""
    authed = [r for r in fake.requests if r[1].startswith("/v2/test/")]
    assert authed and all(r[2] == "Bearer tok:repository:test/app:pull" for r in authed)


def test_bearer_with_credentials(fake):
    fake.auth = "bearer-creds"
    with client(credentials={fake.host: Credentials(USER, PASSWORD)}) as c:
        assert c.get_manifest(f"{fake.host}/test/app:v1").digest == MANIFEST_DIGEST
    assert fake.token_requests[0]["authorization"].startswith("Basic ")
    assert fake.token_requests[0]["query"]["account"] == [USER]


def test_bearer_wrong_credentials(fake):
    fake.auth = "bearer-creds"
    with client(credentials={fake.host: Credentials(USER, "nope")}) as c:
        with pytest.raises(MasonError) as e:
            c.get_manifest(f"{fake.host}/test/app:v1")
    assert e.value.message == f"unauthorized: the token server of {fake.host} rejected the credentials"


def test_bearer_anonymous_refused(fake):
    fake.auth = "bearer-creds"
    with client() as c, pytest.raises(MasonError) as e:
        c.get_manifest(f"{fake.host}/test/app:v1")
    assert e.value.message == f"unauthorized: the token server of {fake.host} rejected anonymous access"


def test_basic_flow(fake):
    fake.auth = "basic"
    with client(credentials={f"http://{fake.host}/v2/": Credentials(USER, PASSWORD)}) as c:
        assert c.resolve_image_config(f"{fake.host}/test/app:v1").config["os"] == "linux"
    assert not fake.token_requests
    assert all(r[2].startswith("Basic ") for r in fake.requests if r[1].startswith("/v2/test/"))


def test_basic_without_credentials(fake):
    fake.auth = "basic"
    with client() as c, pytest.raises(MasonError) as e:
        c.get_manifest(f"{fake.host}/test/app:v1")
    assert e.value.message == (f"unauthorized: GET {fake.host}/test/app on {fake.host} was refused "
                               "(no credentials for this registry)")


def test_basic_wrong_password_is_401_after_auth(fake):
    fake.auth = "basic"
    with client(credentials={fake.host: Credentials(USER, "wrong")}) as c, pytest.raises(MasonError) as e:
        c.get_manifest(f"{fake.host}/test/app:v1")
    assert e.value.message == (f"unauthorized: GET {fake.host}/test/app on {fake.host} was refused "
                               "(credentials rejected)")


@pytest.mark.parametrize("key", ["{host}", "http://{host}", "https://{host}/v2/"])
@pytest.mark.parametrize("form", ["auth", "userpass"])
def test_docker_config_credentials(fake, tmp_path, monkeypatch, key, form):
    fake.auth = "basic"
    cfgdir = tmp_path / "dockercfg"
    cfgdir.mkdir()
    if form == "auth":
        entry = {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    else:
        entry = {"username": USER, "password": PASSWORD}
    (cfgdir / "config.json").write_text(json.dumps({"auths": {key.format(host=fake.host): entry}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(cfgdir))
    with client() as c:
        assert c.get_manifest(f"{fake.host}/test/app:v1").digest == MANIFEST_DIGEST


def test_docker_config_hub_key_and_cred_helper(tmp_path, monkeypatch):
    cfgdir = tmp_path / "cfg"
    cfgdir.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread host\necho "{\\"Username\\":\\"u-$host\\",\\"Secret\\":\\"s\\"}"\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (cfgdir / "config.json").write_text(json.dumps({
        "auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}},
        "credHelpers": {"helped.example.com": "fake"},
    }))
    store = CredentialStore(config_path=cfgdir / "config.json")
    assert store.get("docker.io") == Credentials("hub", "pw")
    assert store.get("helped.example.com") == Credentials("u-helped.example.com", "s")
    assert store.get("other.example.com") is None
    (cfgdir / "config.json").write_text('{"auths": {"x.io": {"auth": "bm9jb2xvbg=="}}}')  # "nocolon"
    with pytest.raises(MasonError, match="is not 'user:password'"):
        CredentialStore(config_path=cfgdir / "config.json").get("x.io")
    (cfgdir / "config.json").write_text("{not json")
    with pytest.raises(MasonError, match="cannot read Docker config"):
        CredentialStore(config_path=cfgdir / "config.json").get("x.io")


@pytest.mark.parametrize("lie,fragment", [
    ("header", "digest mismatch for manifest of {host}/test/app:v1: registry said sha256:000"),
    ("body", "digest mismatch for manifest of {host}/test/app:v1: registry said sha256:"),
])
def test_lying_manifest(fake, lie, fragment):
    fake.lie = lie
    with client() as c, pytest.raises(MasonError) as e:
        c.get_manifest(f"{fake.host}/test/app:v1")
    assert e.value.message.startswith(fragment.format(host=fake.host))


def test_lying_manifest_by_digest(fake):
    fake.lie = "body"
    with client() as c, pytest.raises(MasonError) as e:
        c.get_manifest(f"{fake.host}/test/app@{MANIFEST_DIGEST}")
    assert e.value.message.startswith(
        f"digest mismatch for manifest {MANIFEST_DIGEST} of {fake.host}/test/app: content is sha256:")


def test_lying_blob_leaves_no_file(fake, tmp_path):
    fake.lie = "blob"
    dest = tmp_path / "layer.tgz"
    desc = Descriptor.of(oci.OCI_LAYER_GZIP, LAYER)
    with client() as c, pytest.raises(MasonError) as e:
        c.fetch_blob(f"{fake.host}/test/app:v1", desc, dest)
    assert e.value.message.startswith(f"digest mismatch for blob {desc.digest} of {fake.host}/test/app: content is sha256:")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "empty-docker-config"]  # temp file removed too


def test_blob_size_mismatch(fake):
    desc = Descriptor(oci.OCI_LAYER_GZIP, oci.sha256_digest(LAYER), len(LAYER) - 5)
    with client() as c, pytest.raises(MasonError, match="is larger than its descriptor says"):
        c.fetch_blob_bytes(f"{fake.host}/test/app:v1", desc)


def test_blob_to_file_and_callback(fake, tmp_path):
    desc = Descriptor.of(oci.OCI_LAYER_GZIP, LAYER)
    seen: list[bytes] = []
    progress: list[tuple[int, int]] = []
    with client() as c:
        assert c.fetch_blob(f"{fake.host}/test/app:v1", desc, tmp_path / "x" / "blob") == len(LAYER)
        c.fetch_blob(f"{fake.host}/test/app:v1", desc, seen.append, progress=lambda n, t: progress.append((n, t)))
    assert (tmp_path / "x" / "blob").read_bytes() == LAYER
    assert b"".join(seen) == LAYER
    assert progress[-1] == (len(LAYER), len(LAYER))


def test_unknown_image(fake):
    with client() as c, pytest.raises(MasonError) as e:
        c.get_manifest(f"{fake.host}/test/nope:v1")
    assert e.value.message == f"image not found: {fake.host}/test/nope:v1 (MANIFEST_UNKNOWN: manifest unknown)"


def test_unreachable_registry():
    port = free_port()  # nothing listens there
    with client() as c, pytest.raises(MasonError) as e:
        c.get_manifest(f"127.0.0.1:{port}/library/busybox")
    assert e.value.message == f"cannot reach registry 127.0.0.1:{port}: connection refused"
    assert str(e.value) == f"error: cannot reach registry 127.0.0.1:{port}: connection refused"


def test_platform_mismatch_in_index_message():
    from mason.backends.sources.registry import Manifest
    from mason.ir.reference import parse_reference
    idx = {"manifests": [
        Descriptor(oci.OCI_MANIFEST, "sha256:" + "1" * 64, 1, platform=PlatformSpec.parse("linux/amd64")).to_json(),
        Descriptor(oci.OCI_MANIFEST, "sha256:" + "2" * 64, 1, platform=PlatformSpec.parse("linux/arm/v7")).to_json(),
        Descriptor(oci.OCI_MANIFEST, "sha256:" + "3" * 64, 1, platform=PlatformSpec("unknown", "unknown"),
                   annotations={"vnd.docker.reference.type": "attestation-manifest"}).to_json(),
    ]}
    m = Manifest(Descriptor(oci.OCI_INDEX, "sha256:" + "9" * 64, 1), b"", idx)
    r = parse_reference("busybox")
    assert RegistryClient._choose(r, m, PlatformSpec.parse("linux/arm")).digest == "sha256:" + "2" * 64
    assert RegistryClient._choose(r, m, PlatformSpec.parse("linux/amd64")).digest == "sha256:" + "1" * 64
    with pytest.raises(MasonError) as e:
        RegistryClient._choose(r, m, PlatformSpec.parse("linux/arm64"))
    assert e.value.message == "image busybox:latest has no manifest for platform linux/arm64 (it has linux/amd64, linux/arm/v7)"


def test_parse_challenges():
    chs = parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                           'scope="repository:library/busybox:pull"')
    assert len(chs) == 1 and chs[0].scheme == "bearer"
    assert chs[0].params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                             "scope": "repository:library/busybox:pull"}
    chs = parse_challenges('Basic realm="a, b", Bearer realm="x",error="insufficient_scope"')
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[0].params == {"realm": "a, b"}
    assert chs[1].params == {"realm": "x", "error": "insufficient_scope"}
    assert parse_challenges('Basic realm="with \\"quote\\""')[0].params == {"realm": 'with "quote"'}
    assert parse_challenges("") == []


def test_schemes_and_hosts():
    assert is_loopback("127.0.0.1:5000") and is_loopback("127.1.2.3") and is_loopback("localhost:80")
    assert is_loopback("[::1]:5000") and is_loopback("LOCALHOST")
    assert not is_loopback("10.0.0.1:5000") and not is_loopback("example.com")
    with client(insecure_registries=["myreg.lan:5000"]) as c:
        assert c.transport._registry("myreg.lan:5000").base == "http://myreg.lan:5000"
        assert c.transport._registry("127.0.0.1:5000").base == "http://127.0.0.1:5000"
        assert c.transport._registry("quay.io").base == "https://quay.io"
        assert c.transport._registry("docker.io").base == "https://registry-1.docker.io"


def test_push_scope_token(fake):
    """Push-side calls ask the token server for pull,push on the repository."""
    fake.auth = "bearer"
    with client() as c:
        assert c.blob_exists(f"{fake.host}/test/app:v1", oci.sha256_digest(LAYER))
        assert not c.blob_exists(f"{fake.host}/test/app:v1", "sha256:" + "e" * 64)
    assert [t["query"]["scope"] for t in fake.token_requests] == [["repository:test/app:pull,push"]]


def test_registry_and_image_store_choose_the_same_manifest():
    """One choice of an index entry (mason.ir.resolver.choose_platform via oci.choose_manifest)
    for the registry client and the image store: matching platform first (arm64/v8 = arm64),
    an entry without a platform as the fallback, attestation manifests never."""
    from mason.backends.sources.image import choose_manifest
    from mason.backends.sources.registry import Manifest
    from mason.ir.reference import parse_reference

    def desc(n: int, plat: str | None, **kw) -> dict:
        return Descriptor(oci.OCI_MANIFEST, "sha256:" + str(n) * 64, 1,
                          platform=PlatformSpec.parse(plat) if plat else None, **kw).to_json()

    att = {"vnd.docker.reference.type": "attestation-manifest"}
    idx = {"manifests": [desc(1, "linux/amd64"), desc(2, "linux/arm64/v8"), desc(3, None, annotations=att),
                         desc(4, None), desc(5, None)]}
    m = Manifest(Descriptor(oci.OCI_INDEX, "sha256:" + "9" * 64, 1), b"", idx)
    r = parse_reference("busybox")
    for want, digit in (("linux/arm64", 2), ("linux/amd64", 1), ("linux/s390x", 4)):
        plat = PlatformSpec.parse(want)
        assert RegistryClient._choose(r, m, plat).digest == "sha256:" + str(digit) * 64
        assert choose_manifest(idx, plat, "busybox").digest == "sha256:" + str(digit) * 64
