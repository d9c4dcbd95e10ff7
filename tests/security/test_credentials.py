"""GHSA-gc89-7gcr-jxqc (BuildKit 0.11.4): credentials in URLs. ``ADD http://user:pass@host/…``
(a file and a git repository, with and without ``--keep-git-dir``) against a server that
demands them: the build works (they reach the server, as an ``Authorization`` header), and the
password is nowhere else — not in the progress output, ``mason history``/``mason logs``, any
file under the state root (the history records, ``cache.db``), containerd's labels, the image
config's history (``created_by`` shows ``alice:xxxxx@``), any layer (the kept ``.git/config``
names the remote without them) — nor in an error message."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def _files_containing(root, needle: bytes) -> list[str]:
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                if needle in f.read():
                    out.append(p)
    return out


def _layers(client, digest: str) -> list[dict[str, bytes]]:
    manifest = json.loads(client.read_blob(digest))
    out = []
    for layer in manifest["layers"]:
        data = client.read_blob(layer["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            out.append({m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()})  # type: ignore[union-attr]
    return out


def test_credentials_in_urls_reach_the_server_and_nothing_else(build_env, tmp_path, auth_server):
    env, srv = build_env, auth_server
    pw = srv.password.encode()
    df = (f"FROM {env.base}\n"
          f"ADD {srv.url('/files/data.txt')} /data.txt\n"
          f"ADD {srv.url('/git/repo.git')}#main /src/\n"
          f"ADD --keep-git-dir=true {srv.url('/git/repo.git')}#main /kept/\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    p = env.cli("build", "--progress=plain", "-t", "credtest", str(ctx))
    assert p.returncode == 0, p.stderr
    assert srv.password not in p.stdout + p.stderr
    assert "alice:xxxxx@127.0.0.1" in p.stderr  # the step names, redacted
    assert any(a for _, a in srv.requests), "the credentials never reached the server"
    assert all(srv.password not in path for path, _ in srv.requests)
    for args in (("history",), ("logs",)):
        q = env.cli(*args, check=True)
        assert srv.password not in q.stdout + q.stderr, args
    again = env.cli("build", "--progress=plain", str(ctx))  # from the cache: names shown again
    assert again.returncode == 0 and "CACHED" in again.stderr and srv.password not in again.stderr
    assert _files_containing(env.root, pw) == []
    for s in env.client.list_snapshots():
        assert srv.password not in json.dumps(s.labels), s.name
    img = env.client.get_image("docker.io/library/credtest:latest")
    manifest = json.loads(env.client.read_blob(img.target.digest))
    config = env.client.read_blob(manifest["config"]["digest"])
    assert pw not in config
    assert b"alice:xxxxx@127.0.0.1" in config  # created_by names the step, redacted
    layers = _layers(env.client, img.target.digest)
    assert not [name for files in layers for name, data in files.items() if pw in data]
    kept = next(files["kept/.git/config"] for files in layers if "kept/.git/config" in files)
    assert f"url = http://127.0.0.1:{srv.port}/git/repo.git".encode() in kept
    assert next(files["kept/README"] for files in layers if "kept/README" in files) == b"readme\n"


@pytest.mark.parametrize("path", ["/files/missing.txt", "/git/missing.git"])
def test_credentials_absent_from_errors(build_env, tmp_path, auth_server, path):
    env, srv = build_env, auth_server
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nADD {srv.url(path)} /x/\n"})
    p = env.cli("build", "--progress=plain", str(ctx))
    assert p.returncode == 1, p.stderr
    assert srv.password not in p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert _files_containing(env.root, srv.password.encode()) == []


def test_git_auth_header_secret_authenticates(build_env, tmp_path, auth_server):
    """No credentials in the URL: BuildKit's ``GIT_AUTH_HEADER`` build secret (named by the
    ``git.authheadersecret`` attr the Dockerfile frontend sets) is the Authorization header,
    per host first (``GIT_AUTH_HEADER.127.0.0.1:PORT``); without it the server refuses."""
    import base64

    env, srv = build_env, auth_server
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nADD {srv.url('/git/repo.git', '')}#main /src/\n"})
    p = env.cli("build", "--progress=plain", str(ctx))
    assert p.returncode == 1, p.stderr
    header = tmp_path / "header"
    header.write_text("Basic " + base64.b64encode(f"alice:{srv.password}".encode()).decode())
    for sid in ("GIT_AUTH_HEADER", f"GIT_AUTH_HEADER.127.0.0.1:{srv.port}"):
        p = env.cli("build", "--progress=plain", "--no-cache", "--secret", f"id={sid},src={header}", str(ctx))
        assert p.returncode == 0, p.stderr
        assert srv.password not in p.stderr
    assert _files_containing(env.root, srv.password.encode()) == []
