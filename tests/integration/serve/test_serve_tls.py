"""TLS for ``--host tcp://``: ``mason build --host`` with ``--tlscacert``/``--tlscert``/``--tlskey``
(buildctl's flags) builds on ``mason serve --tlscacert/--tlscert/--tlskey`` and on BuildKit
v0.32.2's buildkitd started with the same certificates; both daemons refuse a client without
TLS, without a client certificate, or with one from another CA, and the client refuses a daemon
whose certificate does not chain to its CA. Certificates are made here with openssl."""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.fixtures.buildkitd import buildkit_tool
from tests.integration.conftest import write
from tests.integration.serve.conftest import BUILDCTL, free_port, make_certs, serve_tcp, wait_listening

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("certs")
    good = make_certs(d)
    other = make_certs(d, ca="rogue")  # another CA, and a client certificate it signed
    return {**good, "rogue-ca.pem": other["rogue.pem"], "rogue-client.pem": other["client.pem"],
            "rogue-client.key": other["client.key"]}


def _server_flags(c: dict[str, Path]) -> list[str]:
    return ["--tlscacert", str(c["ca.pem"]), "--tlscert", str(c["server.pem"]), "--tlskey", str(c["server.key"])]


@pytest.fixture(params=["serve", "buildkitd"])
def tls_daemon(request, build_env, certs, tmp_path):
    """A daemon on tcp://127.0.0.1:PORT that requires a client certificate of ``certs``' CA."""
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    if request.param == "serve":
        proc = serve_tcp(build_env, addr, *_server_flags(certs), log=log)
    else:
        root = Path(tempfile.mkdtemp(prefix="mason-bkd-tls-"))
        (root / "buildkitd.toml").write_text("[worker.oci]\n  enabled = true\n  gc = false\n"
                                             "[worker.containerd]\n  enabled = false\n")
        with open(log, "w") as out:
            proc = subprocess.Popen([buildkit_tool("buildkitd"), "--root", str(root / "root"), "--addr", addr,
                                     "--config", str(root / "buildkitd.toml"), *_server_flags(certs),
                                     "--oci-worker=true", "--containerd-worker=false", "--oci-worker-net=host"],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
    try:
        wait_listening(proc, port, log)
        yield addr, request.param, log
    finally:
        proc.terminate()
        rc = proc.wait(timeout=60)
        assert request.param != "serve" or rc == 0, log.read_text()


def _client_flags(c: dict[str, Path], ca: str = "ca.pem", client: str = "client") -> list[str]:
    return ["--tlscacert", str(c[ca]), "--tlscert", str(c[f"{client}.pem"]), "--tlskey", str(c[f"{client}.key"])]


def test_mason_build_over_mutual_tls(build_env, tls_daemon, certs, tmp_path):
    addr, kind, log = tls_daemon
    nonce = uuid.uuid4().hex
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": nonce})
    out = tmp_path / "out.tar"
    ok = build_env.cli("build", "--host", addr, *_client_flags(certs), "-o", f"type=tar,dest={out}", ctx)
    assert ok.returncode == 0, ok.stderr + log.read_text()
    with tarfile.open(out) as t:
        assert t.extractfile("a.txt").read() == nonce.encode()  # type: ignore[union-attr]

    # the same through the environment (as MASON_HOST)
    env = {"MASON_HOST": addr, "MASON_TLSCACERT": str(certs["ca.pem"]), "MASON_TLSCERT": str(certs["client.pem"]),
           "MASON_TLSKEY": str(certs["client.key"])}
    again = build_env.cli("build", "-o", f"type=tar,dest={tmp_path / 'again.tar'}", ctx, env=env)
    assert again.returncode == 0, again.stderr

    # the name the daemon's certificate must carry: localhost is in it, another name is not
    named = build_env.cli("build", "--host", addr, *_client_flags(certs), "--tlsservername", "localhost",
                          "-o", f"type=tar,dest={tmp_path / 'named.tar'}", ctx)
    assert named.returncode == 0, named.stderr

    refused = {
        "a server name the daemon's certificate does not carry": [*_client_flags(certs), "--tlsservername",
                                                                   "elsewhere.invalid"],
        "plain": [],
        "no client certificate": ["--tlscacert", str(certs["ca.pem"])],
        "a client certificate of another CA": _client_flags(certs, client="rogue-client"),
        "a daemon certificate the client's CA did not sign": _client_flags(certs, ca="rogue-ca.pem"),
    }
    for what, flags in refused.items():
        p = build_env.cli("build", "--host", addr, *flags, "-o", f"type=tar,dest={tmp_path / 'no.tar'}", ctx)
        assert p.returncode == 1, (what, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in p.stderr, (what, p.stderr)
        assert lines[0].startswith(f"error: cannot reach the build daemon at {addr}: "), (what, p.stderr)
        assert not (tmp_path / "no.tar").exists(), what


def test_buildctl_refused_by_mason_serve_without_the_right_certificate(build_env, certs, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    proc = serve_tcp(build_env, f"tcp://127.0.0.1:{port}", *_server_flags(certs), log=log)
    try:
        wait_listening(proc, port, log)
        base = [str(BUILDCTL), "--addr", f"tcp://127.0.0.1:{port}", "--timeout", "10"]

        def buildctl(*flags: str) -> subprocess.CompletedProcess:
            return subprocess.run([*base, *flags, "debug", "workers"], capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)

        ok = buildctl(*_client_flags(certs))
        assert ok.returncode == 0 and "mason" in ok.stdout, ok.stderr + log.read_text()
        assert buildctl().returncode != 0  # plain gRPC to a TLS listener
        assert buildctl(*_client_flags(certs, client="rogue-client")).returncode != 0
        assert buildctl(*_client_flags(certs, ca="rogue-ca.pem")).returncode != 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0, log.read_text()


def test_client_refusals_before_connecting(build_env, certs, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    cases = {
        ("--host", "tcp://build.invalid:1234"): "is not a loopback address",
        ("--tlscacert", str(certs["ca.pem"])): "are for --host",
        ("--host", "tcp://127.0.0.1:1", "--tlscert", str(certs["client.pem"])): "--tlscert and --tlskey go together",
        ("--host", "tcp://127.0.0.1:1", "--tlscacert", str(tmp_path / "missing.pem")): "cannot read --tlscacert",
        ("--host", "unix:///nonexistent.sock", "--tlscacert", str(certs["ca.pem"])): "need a tcp:// address",
    }
    for args, needle in cases.items():
        p = build_env.cli("build", *args, ctx)
        assert p.returncode == 1 and p.stderr.startswith("error: ") and needle in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
