"""``mason build --host ADDR`` (and ``MASON_HOST``): the same CLI drives a daemon that speaks
BuildKit's Control API — ``mason serve`` and BuildKit v0.32.2's own buildkitd — with a session
that serves the client's context and Dockerfile, its secrets and SSH agent, and receives the
outputs (a local directory, a tar, an OCI archive). The progress is mason's renderer over the
daemon's vertices and logs; a failed build exits 1 with one error, as a local build."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import uuid

import pytest

from tests.integration.conftest import write
from tests.integration.serve.conftest import with_libs

pytestmark = pytest.mark.integration


@pytest.fixture(params=["serve", "buildkitd"])
def daemon(request):
    """(address, kind): a fresh ``mason serve`` on the session containerd, or the session's
    buildkitd."""
    if request.param == "serve":
        served = request.getfixturevalue("served")
        return served.addr, "serve"
    bk = request.getfixturevalue("buildkitd")
    return bk.address, "buildkitd"


def test_build_through_a_daemon(build_env, daemon, tmp_path):
    addr, kind = daemon
    value = f"s3cr3t-{uuid.uuid4().hex}"
    (tmp_path / "tok").write_text(value)
    digest = hashlib.sha256(value.encode()).hexdigest()
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": (f"FROM {build_env.base}\nARG X=0\nCOPY hello.txt /hello.txt\n"
                       f"RUN echo {uuid.uuid4().hex} && echo \"arg is $X\" && cat /hello.txt\n"
                       f"RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | grep -q {digest} && echo SECRET-MATCHED\n"
                       "RUN mkdir /out && echo made > /out/made.txt && ln -s made.txt /out/link\n"),
        "hello.txt": "hello from the client\n",
        "ignored.txt": "not sent\n",
        ".dockerignore": "ignored.txt\n",
    })
    dest, tar = tmp_path / "dest", tmp_path / "fs.tar"
    p = build_env.cli("build", "--host", addr, "--progress=plain", "--build-arg", "X=1", "--secret",
                      f"id=tok,src={tmp_path / 'tok'}", "-o", f"type=local,dest={dest}", ctx)
    assert p.returncode == 0, p.stderr
    log = p.stderr
    assert "COPY hello.txt /hello.txt" in log, log
    assert "arg is 1" in log and "hello from the client" in log, log
    assert "SECRET-MATCHED" in log, log
    assert value not in log
    assert (dest / "out" / "made.txt").read_text() == "made\n"
    assert (dest / "out" / "link").is_symlink()
    assert (dest / "hello.txt").read_text() == "hello from the client\n"
    assert not any(value.encode() in f.read_bytes() for f in dest.rglob("*") if f.is_file() and not f.is_symlink())

    q = build_env.cli("build", "--host", addr, "--progress=quiet", "--build-arg", "X=1", "--secret",
                      f"id=tok,src={tmp_path / 'tok'}", "-o", f"type=tar,dest={tar}", ctx)
    assert q.returncode == 0, q.stderr
    with tarfile.open(tar) as t:
        assert t.extractfile("out/made.txt").read() == b"made\n"  # type: ignore[union-attr]
        assert "ignored.txt" not in t.getnames()  # .dockerignore applied: never sent


def test_failure_is_one_error_and_exit_1(build_env, daemon, tmp_path):
    addr, kind = daemon
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base}\nRUN echo {uuid.uuid4().hex} && exit 3\n"})
    p = build_env.cli("build", "--host", addr, "--progress=plain", ctx)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    errors = [x for x in p.stderr.splitlines() if x.startswith("error: ") or x.startswith("Dockerfile:2:1: error: ")]
    assert len(errors) == 1 and "exit code: 3" in errors[0], p.stderr  # located as the client names it
    missing = build_env.cli("build", "--host", addr, "-f", str(tmp_path / "nope"), ctx)
    assert missing.returncode == 1 and missing.stderr.startswith("error: "), missing.stderr


def test_oci_output_and_ssh_agent(build_env, daemon, tmp_path, agent_with_key):
    addr, kind = daemon
    sock, fingerprint = agent_with_key
    ctx = tmp_path / "ctx"
    with_libs(shutil.which("ssh-add") or "ssh-add", ctx / "x")
    write(ctx, {"Dockerfile": (
        f"FROM {build_env.base}\nCOPY x /x\nRUN echo {uuid.uuid4().hex}\n"
        "RUN --mount=type=ssh /x/ld-linux-x86-64.so.2 --library-path /x /x/ssh-add -l\n"
        "CMD [\"true\"]\n")})
    oci = tmp_path / "img.tar"
    p = build_env.cli("build", "--host", addr, "--progress=plain", "--ssh", f"default={sock}", "-t", "client/oci:1",
                      "-o", f"type=oci,dest={oci}", ctx)
    assert p.returncode == 0, p.stderr
    assert fingerprint in p.stderr, p.stderr  # the step's ssh-add listed the client's key
    digest = p.stdout.split()[0]
    assert digest.startswith("sha256:"), p.stdout
    with tarfile.open(oci) as t:
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = index["manifests"][0]
        blob = t.extractfile("blobs/sha256/" + manifest["digest"].split(":", 1)[1]).read()  # type: ignore[union-attr]
    assert manifest["digest"] == digest == "sha256:" + hashlib.sha256(blob).hexdigest()


def test_same_image_digest_as_a_local_build(build_env, served, tmp_path):
    """With SOURCE_DATE_EPOCH, ``MASON_HOST=… mason build`` gives the image digest a local
    ``mason build`` gives (the daemon is mason serve)."""
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {build_env.base}\nCOPY a.txt /a.txt\nRUN echo {uuid.uuid4().hex} > /stamp\n",
        "a.txt": "same\n",
    })
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    local = build_env.cli("build", "-q", "-t", "client/local:1", ctx, env=env)
    assert local.returncode == 0, local.stderr
    remote = build_env.cli("build", "-q", "-t", "client/remote:1", "--no-cache", ctx,
                           env={**env, "MASON_HOST": served.addr})
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout.strip() == local.stdout.strip() != ""
    imgs = {i.name: i.target.digest for i in build_env.client.list_images()}
    assert imgs["docker.io/client/remote:1"] == remote.stdout.strip()


def test_options_the_daemon_decides_are_refused(build_env, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    p = build_env.cli("build", "--host", "unix:///nonexistent.sock", "-O", "2", ctx)
    assert p.returncode == 1 and p.stderr.strip() == "error: -O cannot be used with --host (the daemon decides it)"
    q = build_env.cli("build", "--host", "unix:///nonexistent/mason.sock", ctx)
    assert q.returncode == 1 and q.stderr.startswith("error: cannot reach the build daemon at unix:///nonexistent")


def test_ctrl_c_cancels_the_build_on_the_daemon(build_env, served, tmp_path):
    """SIGINT to ``mason build --host`` exits 130, as a local build; the daemon cancels the
    build (its step is killed, containerd is left clean) and keeps serving."""
    import os
    import signal
    import subprocess
    import sys

    from tests.fixtures.signals import child_signals
    from tests.integration.serve.conftest import Watched
    from tests.integration.serve.test_serve_lifecycle import _wait_clean

    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base}\nRUN echo {uuid.uuid4().hex} && "
                                                 "echo \"st$(echo arted)\" && sleep 120 && echo \"finished-$((1+1))\"\n"})
    e = dict(os.environ, MASON_ROOT=str(build_env.root), MASON_CONTAINERD_ADDRESS=build_env.address,
             MASON_HOST=served.addr)
    with child_signals(default=[signal.SIGINT]):
        proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(ctx)],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                text=True, env=e)
    w = Watched(proc)
    w.wait_for(" started")
    proc.send_signal(signal.SIGINT)
    assert w.finish(timeout=60) == 130, w.text
    assert "finished-2" not in w.text and "Traceback" not in w.text, w.text
    _wait_clean(build_env)
    ok = build_env.cli("build", "--host", served.addr, write(tmp_path / "ok", {"Dockerfile": f"FROM {build_env.base}\n"
                                                                                            "RUN true\n"}))
    assert ok.returncode == 0, ok.stderr


def test_a_context_edit_sends_only_the_changed_file(build_env, served, tmp_path):
    """mason's client lists the context and the daemon asks only for what changed: after an
    edit, one file's bytes cross (counted by mason serve's transfer log)."""
    files = {f"f{i}.bin": bytes([i]) * 10000 for i in range(30)}
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base}\nCOPY . /ctx/\nRUN ls /ctx | wc -l\n",
                                   **files})
    transfers = build_env.root / "serve" / "transfers.log"

    def context_transfers():
        lines = [json.loads(x) for x in transfers.read_text().splitlines()] if transfers.exists() else []
        return [x for x in lines if x["name"] == "context" and x["entries"] > 1]

    first = build_env.cli("build", "--host", served.addr, "-t", "client/ctx", ctx)
    assert first.returncode == 0, first.stderr
    before = context_transfers()
    assert before and before[-1]["files"] >= 31 and before[-1]["bytes"] >= 300000, before
    (ctx / "f7.bin").write_bytes(b"edited")
    again = build_env.cli("build", "--host", served.addr, "--progress=plain", "-t", "client/ctx", ctx)
    assert again.returncode == 0, again.stderr
    edit = context_transfers()[len(before):]
    assert [(x["files"], x["bytes"]) for x in edit] == [(1, len(b"edited"))], edit
    assert all(isinstance(x["seconds"], float) and 0 <= x["seconds"] < 300 for x in edit), edit  # for profiling


def test_build_contexts_through_a_daemon(build_env, daemon, tmp_path):
    """``--build-context`` with ``--host``: a directory (sent through the session as
    ``local:NAME``, its own ``.dockerignore`` applied) and a ``docker-image://`` one, as buildx
    sends them, on both daemons."""
    addr, kind = daemon
    nonce = uuid.uuid4().hex
    extra = write(tmp_path / "extra", {"a.txt": nonce, "ignored.txt": "never sent\n", ".dockerignore": "ignored.txt\n"})
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM base\nCOPY --from=extra . /extra/\n"
        "RUN test ! -e /extra/ignored.txt && test -x /bin/busybox && cat /extra/a.txt\n")})
    out = tmp_path / "fs.tar"
    p = build_env.cli("build", "--host", addr, "--progress=plain", "--build-context", f"extra={extra}",
                      "--build-context", f"base=docker-image://{build_env.base}", "-o", f"type=tar,dest={out}", ctx)
    assert p.returncode == 0, p.stderr
    assert nonce in p.stderr, p.stderr  # the step printed the file of the named context
    with tarfile.open(out) as t:
        names = t.getnames()
        assert t.extractfile("extra/a.txt").read() == nonce.encode()  # type: ignore[union-attr]
    assert "extra/ignored.txt" not in names and "bin/busybox" in names, names
    # an OCI layout: the client serves it as the session's content store oci:NAME, as buildx does
    from tests.fixtures.registry import skopeo

    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", f"docker://{build_env.base}", f"oci:{layout}:v1")
    lctx = write(tmp_path / "lctx", {"Dockerfile": f"FROM nowhere/layout:1\nRUN echo {nonce}-layout\n"})
    q = build_env.cli("build", "--host", addr, "--progress=plain", "--build-context",
                      f"nowhere/layout:1=oci-layout://{layout}:v1", "-o", f"type=tar,dest={tmp_path / 'l.tar'}", lctx)
    assert q.returncode == 0 and f"{nonce}-layout" in q.stderr, q.stderr
    with tarfile.open(tmp_path / "l.tar") as t:
        assert "bin/busybox" in t.getnames()
    missing = build_env.cli("build", "--host", addr, "--build-context", f"x=oci-layout://{tmp_path}/nope", ctx)
    assert missing.returncode == 1 and "is not a directory" in missing.stderr, missing.stderr


def test_buildctl_named_local_context_on_mason_serve(served, tmp_path):
    """buildctl's own form of a named directory: ``--local NAME=DIR --opt context:NAME=local:NAME``."""
    nonce = uuid.uuid4().hex
    extra = write(tmp_path / "extra", {"a.txt": nonce})
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY --from=extra a.txt /from-extra.txt\n"})
    dest = tmp_path / "dest"
    served.buildctl("build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local",
                    f"dockerfile={ctx}", "--local", f"extra={extra}", "--opt", "context:extra=local:extra",
                    "--output", f"type=local,dest={dest}")
    assert (dest / "from-extra.txt").read_text() == nonce


def test_image_and_push_outputs_through_a_daemon(build_env, daemon, registry, tmp_path):
    """``--push`` (to the session registry) on both daemons, and ``-o type=image,name=…`` into
    mason serve's image store: the digest printed is the one the registry / the store holds."""
    from tests.fixtures.registry import skopeo

    addr, kind = daemon
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base}\nRUN echo {uuid.uuid4().hex} > /n\n"})
    ref = registry.ref(f"client/pushed:{uuid.uuid4().hex[:8]}")
    p = build_env.cli("build", "--host", addr, "-t", ref, "--push", ctx)
    assert p.returncode == 0, p.stderr
    digest = p.stdout.split()[0]
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}")
    assert digest == "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    if kind == "serve":
        name = f"client/stored:{uuid.uuid4().hex[:8]}"
        q = build_env.cli("build", "--host", addr, "-o", f"type=image,name={name}", ctx)
        assert q.returncode == 0, q.stderr
        imgs = {i.name: i.target.digest for i in build_env.client.list_images()}
        assert imgs["docker.io/" + name] == q.stdout.split()[0] == digest  # same build, same image


def test_local_output_owners_through_a_daemon(build_env, daemon, tmp_path):
    """A local output is the caller's (as buildctl writes it) unless preserve-owner=true, which
    keeps the owners the daemon sends: the image's, from mason serve and buildkitd alike."""
    import os

    addr, _ = daemon
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base}\nRUN echo {uuid.uuid4().hex} && "
                                                 "mkdir /o && echo a > /o/a && chown 1000:65534 /o/a\n"})
    mine, kept = tmp_path / "mine", tmp_path / "kept"
    p = build_env.cli("build", "--host", addr, "-o", f"type=local,dest={mine}",
                      "-o", f"type=local,dest={kept},preserve-owner=true", ctx)
    assert p.returncode == 0, p.stderr
    a, k = os.lstat(mine / "o" / "a"), os.lstat(kept / "o" / "a")
    assert (a.st_uid, a.st_gid) == (os.getuid(), os.getgid())
    assert (k.st_uid, k.st_gid) == (1000, 65534)
    assert (mine / "o" / "a").read_text() == (kept / "o" / "a").read_text() == "a\n"


HOST_NEVER = ("mason.driver.building", "mason.driver.lowering", "mason.driver.solving", "mason.driver.requests",
              "mason.frontends", "lark", "mason.backends.containerd.client", "mason.backends.solver.solver",
              "mason.backends.sources.unpack", "mason.ir.graph", "mason.ir.ops", "sqlite3", "httpx")


def test_the_host_client_imports_only_what_it_needs(build_env, served, tmp_path):
    """``mason build --host`` is a client: no driver layers past its inputs, no frontend, no
    containerd client, no solver, no registry client (issue 15: its start-up is a no-op's cost)."""
    import os
    import subprocess
    import sys

    child = ("import json, sys\nfrom mason.cli.main import main\nrc = main(sys.argv[1:])\n"
             f"print(json.dumps({{'rc': rc, 'imported': [m for m in {HOST_NEVER!r} if m in sys.modules]}}))\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": uuid.uuid4().hex})
    out = tmp_path / "out.tar"
    e = dict(os.environ, MASON_HOST=served.addr)
    p = subprocess.run([sys.executable, "-c", child, "build", "-q", "-o", f"type=tar,dest={out}", str(ctx)],
                       capture_output=True, text=True, env=e, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got == {"rc": 0, "imported": []}, got
    assert out.is_file()


def test_buildctl_oci_layout_context_on_mason_serve(served, tmp_path):
    """buildctl's ``--oci-layout NAME=DIR --opt context:IMAGE=oci-layout://NAME@DIGEST``: the
    daemon reads the layout from the client's session content store (``oci:NAME``); the image
    name exists nowhere else."""
    from tests.fixtures.registry import skopeo

    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", f"docker://{served.env.base}", f"oci:{layout}:v1")
    [desc] = json.loads((layout / "index.json").read_text())["manifests"]
    nonce = uuid.uuid4().hex
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM nowhere/from-layout:1\nRUN echo {nonce} > /n && ls /bin/sh\n"})
    dest = tmp_path / "dest"
    served.buildctl("build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local",
                    f"dockerfile={ctx}", "--oci-layout", f"src={layout}", "--opt",
                    f"context:nowhere/from-layout:1=oci-layout://src@{desc['digest']}",
                    "--output", f"type=local,dest={dest}")
    assert (dest / "n").read_text() == nonce + "\n"
    assert (dest / "bin").is_dir()  # the layout's filesystem
    bad = served.buildctl("build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local",
                          f"dockerfile={ctx}", "--oci-layout", f"src={layout}", "--opt",
                          "context:nowhere/from-layout:1=oci-layout://src@sha256:" + "0" * 64, check=False)
    assert bad.returncode != 0 and "sha256:" + "0" * 64 in bad.stderr, bad.stderr
