"""Whole Dockerfile builds for real (frontend → passes → solver → image store) against the
session containerd and the fixture registry. Expected files, owners and modes are Docker's
semantics, stated per test."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import stat

import pytest

from mason.backends.solver.events import VertexCached, VertexLog, VertexStarted
from mason.backends.solver.mounts import mounted_view
from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-T0KEN-value-42"


def fs(env, result):
    return mounted_view(env.lease_client, result.snapshot)


def image_blobs(env, image):
    """(config JSON, [layer tar bytes]) of an exported image, read from the content store."""
    c = env.client
    manifest = json.loads(c.read_blob(image.manifest_digest))
    config = json.loads(c.read_blob(manifest["config"]["digest"]))
    layers = []
    for la in manifest["layers"]:
        data = c.read_blob(la["digest"])
        layers.append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return config, layers


MAIN = """\
FROM {base} AS base
ENV APP_HOME=/app
WORKDIR /app
COPY hello.txt ./
COPY --chown=app:app owned.txt /app/owned.txt
COPY script.sh /usr/local/bin/
RUN --mount=type=cache,target=/cache,id=it-counter sh -c 'echo run >> /cache/runs; wc -l < /cache/runs > /app/runs-seen'
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo x > /scratch/t && grep " /scratch " /proc/mounts | cut -d" " -f3 > /app/scratch-fs'
RUN --mount=type=secret,id=token sh -c 'test "$(sha256sum < /run/secrets/token | cut -d" " -f1)" = "{secret_sha}" && echo secret-ok > /app/secret-check; cat /run/secrets/token'
USER app
RUN id -u > /tmp/uid-as-app && touch /tmp/made-by-app && mkdir /tmp/appdir

FROM {base}
COPY --from=base /app /app
COPY --from=base /tmp/made-by-app /made-by-app
USER app
WORKDIR /app
ENV GREETING=hi
CMD ["cat", "hello.txt"]
"""


def test_dockerfile_build_semantics(build_env, tmp_path, capfd):
    env = build_env
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": MAIN.format(base=env.base, secret_sha=hashlib.sha256(SECRET.encode()).hexdigest()),
        "hello.txt": "hello\n", "owned.txt": "mine\n", "script.sh": "#!/bin/sh\necho hi\n",
    }, modes={"hello.txt": 0o640, "owned.txt": 0o600, "script.sh": 0o755})
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET)
    res, rec = env.build(ctx, tags=("it-main",), secrets=(f"id=token,src={secret_file}",))
    assert res.names == ("docker.io/library/it-main:latest",)
    with fs(env, res.result) as root:
        def st(p):
            return os.lstat(os.path.join(root, p.lstrip("/")))

        def read(p):
            return open(os.path.join(root, p.lstrip("/")), "rb").read()

        # COPY from the context: owner 0:0, the context file's mode
        s = st("/app/hello.txt")
        assert (s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode)) == (0, 0, 0o640)
        assert read("/app/hello.txt") == b"hello\n"
        # COPY --chown=app:app: 1000:1000 (app's ids in the base image's passwd/group)
        s = st("/app/owned.txt")
        assert (s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode)) == (1000, 1000, 0o600)
        # WORKDIR creates the directory, root-owned 0755
        s = st("/app")
        assert (s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode)) == (0, 0, 0o755)
        # RUN as USER app: its files are 1000:1000; COPY --from keeps the owner
        s = st("/made-by-app")
        assert (s.st_uid, s.st_gid) == (1000, 1000)
        assert read("/app/runs-seen").strip() == b"1"  # the cache mount was empty: first run
        assert read("/app/scratch-fs") == b"tmpfs\n"
        assert read("/app/secret-check") == b"secret-ok\n"
        assert not os.path.exists(os.path.join(root, "run/secrets/token"))
        assert not os.path.exists(os.path.join(root, "cache"))  # the mount point stub is gone
        assert not os.path.exists(os.path.join(root, "usr/local/bin/script.sh"))  # other stage
    config, layers = image_blobs(env, res.image)
    c = config["config"]
    assert c["User"] == "app" and c["WorkingDir"] == "/app" and c["Cmd"] == ["cat", "hello.txt"]
    assert "GREETING=hi" in c["Env"]
    assert len(config["rootfs"]["diff_ids"]) == len(layers)
    # the secret value is nowhere: layers, config (history included), logs, the cache db
    blob = json.dumps(config).encode()
    assert SECRET.encode() not in blob
    for la in layers:
        assert SECRET.encode() not in la
    logs = b"".join(e.data for e in rec.of(VertexLog))
    assert SECRET.encode() not in logs and b"****" in logs
    assert SECRET.encode() not in (env.root / "solver" / "cache.db").read_bytes()
    assert clean(env.leftovers())


def test_second_build_runs_nothing_and_cache_mount_persists(build_env, tmp_path):
    env = build_env
    df = (f"FROM {env.base}\n"
          "RUN --mount=type=cache,id=it-marker,target=/m sh -c 'echo ran >> /m/log'\n"
          "RUN echo done > /done\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    env.build(ctx)
    _, rec2 = env.build(ctx)
    assert rec2.of(VertexStarted)[1:] == []  # only the base image's load: no step ran
    assert len(rec2.of(VertexCached)) == 2
    # a third, different build copies the marker file out of the persistent cache mount
    reader = write(tmp_path / "reader", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN --mount=type=cache,id=it-marker,target=/m cp /m/log /count\n")})
    res, _ = env.build(reader)
    with fs(env, res.result) as root:
        assert open(os.path.join(root, "count")).read() == "ran\n"  # ran once, in the first build


def test_scratch_busybox_builds_without_registry(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "hello", {
        "Dockerfile": ("FROM scratch AS base\nCOPY busybox /bin/busybox\n"
                       'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
                       "FROM base\nRUN echo hi > /hi\n")})
    with open("/bin/busybox", "rb") as f:
        (ctx / "busybox").write_bytes(f.read())
    os.chmod(ctx / "busybox", 0o755)
    res, _ = env.build(ctx, tags=("it-scratch",))
    with fs(env, res.result) as root:
        assert os.path.islink(os.path.join(root, "bin/sh"))
        assert open(os.path.join(root, "hi")).read() == "hi\n"


def test_network_none_only_loopback_and_host_refused(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "net", {"Dockerfile": f"FROM {env.base}\nRUN --network=none ls /sys/class/net > /ifaces\n"})
    res, _ = env.build(ctx)
    with fs(env, res.result) as root:
        assert open(os.path.join(root, "ifaces")).read().split() == ["lo"]
    host = write(tmp_path / "host", {"Dockerfile": f"FROM {env.base}\nRUN --network=host true\n"})
    p = env.cli("build", str(host))
    assert p.returncode == 1
    assert "network.host" in p.stderr and "--allow network.host" in p.stderr
    p = env.cli("build", "--allow", "network.host", str(host))
    assert p.returncode == 0, p.stderr


def test_plain_progress_prints_steps_and_output(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "p", {"Dockerfile": f"FROM {env.base}\nRUN echo visible-output-line\n"})
    p = env.cli("build", "--progress=plain", "--no-cache", str(ctx))
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    n = next(line.split()[0] for line in lines if "RUN echo visible-output-line" in line)
    assert any(re.fullmatch(rf"{n} \d+\.\d{{3}} visible-output-line", line) for line in lines), lines
    assert any(line.startswith(f"{n} DONE ") for line in lines)
