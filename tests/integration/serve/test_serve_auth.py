"""Registry credentials through the session (BuildKit's ``moby.filesync.v1.Auth``): the daemon
pulls a private base image and pushes the result to a registry that needs a password
(docker-registry with htpasswd on loopback) with the credentials of the *client* — its
``$DOCKER_CONFIG/config.json``, as buildctl sends them. ``mason build --host`` against mason
serve and against buildkitd, and buildctl against mason serve. A client without credentials
is refused (also after another client pulled the same image), mason serve never uses its own
Docker config for a client's build, and the password is in no log, output or build record."""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.fixtures.buildkitd import short_dir, start_buildkitd
from tests.fixtures.registry import skopeo
from tests.integration.conftest import write
from tests.integration.serve.conftest import Served, start_serve, stop_serve

pytestmark = pytest.mark.integration


def _docker_config(d: Path, host: str, user: str, password: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (d / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return d


@pytest.fixture(scope="module")
def private(auth_registry, busybox_layout, tmp_path_factory):
    """busybox pushed to the htpasswd registry; (registry, base ref, client config dir, a config
    dir with no credentials)."""
    reg = auth_registry
    ref = reg.ref(f"private/busybox:{uuid.uuid4().hex[:8]}")
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{reg.username}:{reg.password}",
           f"oci:{busybox_layout.layout}:latest", f"docker://{ref}")
    d = tmp_path_factory.mktemp("docker-config")
    good = _docker_config(d / "good", reg.host, reg.username, reg.password)
    empty = d / "empty"
    empty.mkdir()
    return reg, ref, good, empty


@pytest.fixture(scope="module")
def auth_buildkitd(tmp_path_factory, auth_registry):
    daemon = start_buildkitd(short_dir(tmp_path_factory, "bkda"), insecure_registries=[auth_registry.host])
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def serve_with_own_credentials(build_env, private):
    """mason serve whose own Docker config HAS the registry's password: a client's build must
    not use it."""
    reg, _, good, _ = private
    d = Path(tempfile.mkdtemp(prefix="mason-serve-", dir="/tmp"))
    sock, log = d / "mason.sock", d / "serve.log"
    proc = start_serve(build_env, sock, log, extra_env={"DOCKER_CONFIG": str(good)})
    try:
        yield Served(build_env, sock, proc, log)
    finally:
        assert stop_serve(proc) == 0, log.read_text()


def _leaks(password: str, *paths: Path) -> list[str]:
    b64 = base64.b64encode(f"mason:{password}".encode()).decode()
    found = []
    for p in paths:
        for needle in (password, b64):
            r = subprocess.run(["grep", "-r", "-l", "-a", "-F", needle, str(p)], capture_output=True, text=True)
            found += r.stdout.split()
    return found


def _dockerfile(base: str) -> dict[str, str]:
    return {"Dockerfile": f"FROM {base}\nRUN echo {uuid.uuid4().hex} > /built\n"}


def _pushed_digest(reg, ref: str) -> str:
    out = skopeo("inspect", "--tls-verify=false", "--raw", "--creds", f"{reg.username}:{reg.password}",
                 f"docker://{ref}")
    import hashlib

    return "sha256:" + hashlib.sha256(out.encode()).hexdigest()


@pytest.mark.parametrize("kind", ["serve", "buildkitd"])
def test_mason_build_host_pulls_and_pushes_with_the_clients_credentials(build_env, private, kind, request,
                                                                        tmp_path):
    reg, base, good, empty = private
    if kind == "serve":
        served = request.getfixturevalue("serve_with_own_credentials")
        addr, daemon_log = served.addr, served.log
    else:
        bk = request.getfixturevalue("auth_buildkitd")
        addr, daemon_log = bk.address, bk.log
    ctx = write(tmp_path / "ctx", _dockerfile(base))
    out = reg.ref(f"private/out:{uuid.uuid4().hex[:8]}")
    p = build_env.cli("build", "--host", addr, "--progress=plain", "-t", out, "--push", ctx,
                      env={"DOCKER_CONFIG": str(good)})
    assert p.returncode == 0, p.stderr + daemon_log.read_text()[-3000:]
    digest = p.stdout.split()[0]
    assert _pushed_digest(reg, out) == digest

    # no credentials on the client: refused, though the daemon pulled this base a moment ago
    # (and mason serve's own Docker config has the password) — for a new Dockerfile, and for
    # the very same one (nothing it cached, its lowering included, stands in for the registry)
    again = write(tmp_path / "again", _dockerfile(base))
    for c in (again, ctx):
        q = build_env.cli("build", "--host", addr, "--progress=plain", "-t", reg.ref("private/out:anon"), "--push",
                          c, env={"DOCKER_CONFIG": str(empty)})
        assert q.returncode == 1, q.stderr
        errors = [x for x in q.stderr.splitlines() if "error: " in x]
        assert len(errors) == 1 and "Traceback" not in q.stderr, q.stderr
        assert any(w in errors[0].lower() for w in ("unauthorized", "credentials", "401")), errors
    if kind == "serve":
        assert not _leaks(reg.password, daemon_log, build_env.root), "the password reached a file"
    assert reg.password not in p.stderr + p.stdout + q.stderr


def test_buildctl_pushes_through_mason_serve_with_its_docker_config(build_env, served, private, tmp_path):
    reg, base, good, empty = private
    ctx = write(tmp_path / "ctx", _dockerfile(base))
    out = reg.ref(f"private/buildctl:{uuid.uuid4().hex[:8]}")
    args = ["build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
            "--progress=plain", "--output", f"type=image,name={out},push=true",
            "--metadata-file", str(tmp_path / "md.json")]
    p = served.buildctl(*args, env={"DOCKER_CONFIG": str(good)})
    digest = json.loads((tmp_path / "md.json").read_text())["containerimage.digest"]
    assert _pushed_digest(reg, out) == digest
    anon = served.buildctl(*args, check=False, env={"DOCKER_CONFIG": str(empty)})
    assert anon.returncode != 0
    assert reg.password not in p.stderr + anon.stderr
    assert not _leaks(reg.password, served.log, build_env.root), "the password reached a file"
