"""A daemon's life with several clients: concurrent builds share one cache (a step they all
ask for runs once), a client that goes away cancels its own build only, SIGTERM cancels the
running builds and leaves nothing in containerd, and a TCP listener off loopback needs mTLS."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import clean, write
from tests.integration.serve.conftest import BUILDCTL, free_port, make_certs, serve_tcp, wait_listening

pytestmark = pytest.mark.integration


def _args(ctx: Path, *extra: str) -> list[str]:
    return ["build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
            "--progress=plain", *extra]


def _wait_clean(env, timeout: float = 60) -> None:
    """containerd has no task, container, step snapshot or build lease left (polled: cleaning up
    after a cancelled build finishes shortly after the client's call ends)."""
    deadline = time.monotonic() + timeout
    while not clean(env.leftovers()):
        assert time.monotonic() < deadline, env.leftovers()
        time.sleep(0.1)


def test_concurrent_clients_share_a_step_and_a_killed_one_cancels_only_itself(served, tmp_path):
    env = served.env
    nonce = uuid.uuid4().hex
    shared = f"FROM {env.base}\nRUN sleep 2 && echo \"shared-ran-$(echo {nonce})\"\n"
    clients = []
    for i in range(3):
        ctx = write(tmp_path / f"c{i}", {"Dockerfile": shared + f"RUN echo own-{i}\n"})
        clients.append(served.start(*_args(ctx, "--output", f"type=image,name=served/conc{i}")))
    doomed_ctx = write(tmp_path / "doomed", {"Dockerfile": f"FROM {env.base}\nRUN echo {nonce} && echo \"st$(echo arted)\" "
                                                         "&& sleep 120 && echo \"doomed-$((1+1))\"\n"})
    doomed = served.start(*_args(doomed_ctx, "--output", "type=image,name=served/doomed"))
    doomed.wait_for(" started")
    doomed.kill()
    rcs = [c.finish() for c in clients]
    logs = [c.text for c in clients]
    assert rcs == [0, 0, 0], "\n=====\n".join(logs) + served.log.read_text()
    ran = [log for log in logs if f"shared-ran-{nonce}" in log]
    assert len(ran) == 1, logs  # one client's build ran the step; the others had it from the cache
    for i, log in enumerate(logs):
        assert f"own-{i}" in log
    assert "doomed-2" not in doomed.text
    _wait_clean(env)
    again = served.start(*_args(doomed_ctx, "--output", "type=image,name=served/doomed"))
    again.wait_for(" started")  # the killed build's step was not committed: it runs again
    again.kill()
    _wait_clean(env)
    again_ok = served.buildctl(*_args(write(tmp_path / "ok", {"Dockerfile": f"FROM {env.base}\nRUN true\n"})))
    assert again_ok.returncode == 0


def test_sigterm_cancels_running_builds_and_exits_cleanly(served, tmp_path):
    env = served.env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nRUN echo {uuid.uuid4().hex} && echo \"st$(echo arted)\" "
                                               "&& sleep 120 && echo \"finished-$((1+1))\"\n"})
    client = served.start(*_args(ctx, "--output", "type=image,name=served/term"))
    client.wait_for(" started")
    served.proc.terminate()
    assert served.proc.wait(timeout=60) == 0, served.log.read_text()
    assert client.finish(timeout=60) != 0
    assert "finished-2" not in client.text
    assert clean(env.leftovers()), env.leftovers()  # cleaned before the daemon exited
    assert not served.sock.exists()


def test_tcp_off_loopback_needs_mutual_tls(build_env, tmp_path):
    env = build_env
    refused = env.cli("serve", "--addr", f"tcp://0.0.0.0:{free_port()}")
    assert refused.returncode == 1 and "mutual TLS" in refused.stderr and "Traceback" not in refused.stderr

    port = free_port()
    log = tmp_path / "plain.log"
    proc = serve_tcp(env, f"tcp://127.0.0.1:{port}", log=log)
    try:
        wait_listening(proc, port, log)
        p = subprocess.run([str(BUILDCTL), "--addr", f"tcp://127.0.0.1:{port}", "debug", "workers"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "mason" in p.stdout, p.stderr  # loopback: plain TCP is allowed
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0, log.read_text()

    certs = make_certs(tmp_path)
    port = free_port()
    log = tmp_path / "tls.log"
    proc = serve_tcp(env, f"tcp://0.0.0.0:{port}", "--tlscacert", str(certs["ca.pem"]), "--tlscert",
                      str(certs["server.pem"]), "--tlskey", str(certs["server.key"]), log=log)
    try:
        wait_listening(proc, port, log)
        base = [str(BUILDCTL), "--addr", f"tcp://127.0.0.1:{port}", "--tlscacert", str(certs["ca.pem"])]
        ok = subprocess.run([*base, "--tlscert", str(certs["client.pem"]), "--tlskey", str(certs["client.key"]),
                             "debug", "workers"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and "mason" in ok.stdout, ok.stderr + log.read_text()
        anon = subprocess.run([*base, "--timeout", "10", "debug", "workers"], capture_output=True, text=True,
                              timeout=60)
        assert anon.returncode != 0  # no client certificate: the handshake is refused
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0, log.read_text()
