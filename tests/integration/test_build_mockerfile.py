"""Mockerfile builds for real through mason's build driver (``mason.build`` / ``mason build -f
Mockerfile.yaml``: the frontend chosen by the registry, the passes, the solver on the session
containerd), the base being the fixture registry's busybox, downloads served by a loopback HTTP
server in the test (no network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading
import uuid
from pathlib import Path

import pytest

from mason.backends.solver.events import Recorder, VertexStarted
from mason.backends.solver.mounts import mounted_view
from mason.ir.errors import MasonError
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


class _Server:
    def __init__(self, root: Path):
        handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.root = root
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    s = _Server(root)
    yield s
    s.close()


def _tgz(members: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, (data, mode) in members.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def mbuild(env, ctx: Path, text: str, target: str | None = None, events=None):
    """Build ``ctx/Mockerfile.yaml`` (which holds ``text``) as ``mason build -f`` does."""
    assert (ctx / "Mockerfile.yaml").read_text() == text
    res, _ = env.build(ctx, dockerfile=str(ctx / "Mockerfile.yaml"), target=target, events=events or Recorder())
    return res


class View:
    def __init__(self, root: str):
        self.root = root

    def path(self, p: str) -> str:
        return os.path.join(self.root, p.lstrip("/"))

    def read(self, p: str) -> str:
        with open(self.path(p)) as f:
            return f.read()

    def exists(self, p: str) -> bool:
        return os.path.lexists(self.path(p))

    def mode(self, p: str) -> int:
        return os.lstat(self.path(p)).st_mode & 0o7777


MOCKERFILE = """\
#syntax=mason/mockerfile
apiVersion: v1alpha1
images:
- name: build
  from: {base}
  workdir: /src
  input:
    mount:
      ".": /src
  steps:
  - mkdir -p out && cat greeting.txt > out/app-data && echo built > /built-marker
  - echo "$(cat out/app-data)-second" > out/second
  output:
  - out/app-data:/usr/share/app/data
  - out/second:/usr/share/app/second
- name: run
  from: {base}
  parent: build
  workdir: /work
  external:
  - src: {tool}
    dst: /usr/local/bin/tool
    sha256: {tool_sha}
  - src: {plain}
    dst: /opt/plain.txt
  - src: {pkg}
    dst: /opt/pkg
    install:
    - /opt/pkg/setup.sh
  steps:
  - /usr/local/bin/tool > tool-out
"""


def test_mockerfile_build(build_env, tmp_path, www):
    env = build_env
    nonce = uuid.uuid4().hex
    tool = f"#!/bin/sh\necho tool-ok-{nonce}\n".encode()
    (www.root / "tool").write_bytes(tool)
    (www.root / "plain.txt").write_text(f"plain {nonce}\n")
    (www.root / "pkg.tar.gz").write_bytes(_tgz({
        "setup.sh": (b"#!/bin/sh\necho installed > /opt/installed\n", 0o755),
        "share/readme": (b"readme\n", 0o644)}))
    text = MOCKERFILE.format(base=env.base, tool=www.url("tool"), tool_sha=hashlib.sha256(tool).hexdigest(),
                             plain=www.url("plain.txt"), pkg=www.url("pkg.tar.gz"))
    ctx = write(tmp_path / "ctx", {"Mockerfile.yaml": text, "greeting.txt": f"hello {nonce}"})
    rec = Recorder()
    res = mbuild(env, ctx, text, events=rec)
    with mounted_view(env.lease_client, res.result.snapshot) as root:
        v = View(root)
        # outputs of the parent image, built from the mounted context by its steps
        assert v.read("/usr/share/app/data") == f"hello {nonce}"
        assert v.read("/usr/share/app/second") == f"hello {nonce}-second\n"
        # the parent's own filesystem is not this image's base (from: busybox)
        assert not v.exists("/built-marker") and not v.exists("/src")
        # external: checked download, unchecked download, archive unpacked + install command
        assert v.read("/usr/local/bin/tool") == tool.decode() and v.mode("/usr/local/bin/tool") == 0o755
        assert v.read("/opt/plain.txt") == f"plain {nonce}\n"
        assert v.read("/opt/pkg/share/readme") == "readme\n"
        assert not v.exists("/opt/pkg/pkg.tar.gz")
        assert v.read("/opt/installed") == "installed\n"
        # steps run in the workdir
        assert v.read("/work/tool-out") == f"tool-ok-{nonce}\n"
    assert res.image_config["config"]["WorkingDir"] == "/work"
    started = [e.name for e in rec.events if isinstance(e, VertexStarted)]
    assert any("tool > tool-out" in n for n in started)

    # --target build: the first image, with its steps' marker, its outputs, no downloads; the
    # context mount is not part of the image
    res_b = mbuild(env, ctx, text, target="build")
    with mounted_view(env.lease_client, res_b.result.snapshot) as root:
        v = View(root)
        assert v.read("/built-marker") == "built\n"
        assert v.read("/usr/share/app/data") == f"hello {nonce}"
        assert not v.exists("/usr/local/bin/tool")
        assert v.exists("/src") and not v.exists("/src/greeting.txt") and not v.exists("/src/out")
    assert res_b.image_config["config"]["WorkingDir"] == "/src"


def test_mockerfile_wrong_checksum_names_url_and_digests(build_env, tmp_path, www):
    env = build_env
    (www.root / "tool").write_bytes(b"real content\n")
    wrong = "0" * 64
    text = (f"apiVersion: v1alpha1\nimages:\n- name: a\n  from: {env.base}\n  external:\n"
            f"  - src: {www.url('tool')}\n    dst: /tool\n    sha256: {wrong}\n")
    ctx = write(tmp_path / "ctx", {"Mockerfile.yaml": text})
    with pytest.raises(MasonError) as e:
        mbuild(env, ctx, text)
    msg = str(e.value)
    assert www.url("tool") in msg
    assert "sha256:" + wrong in msg
    assert "sha256:" + hashlib.sha256(b"real content\n").hexdigest() in msg


def test_mockerfile_cli_errors_are_one_line(build_env, tmp_path, www):
    env = build_env
    (www.root / "tool").write_bytes(b"real content\n")
    text = (f"apiVersion: v1alpha1\nimages:\n- name: a\n  from: {env.base}\n  external:\n"
            f"  - src: {www.url('tool')}\n    dst: /tool\n    sha256: {'1' * 64}\n")
    ctx = write(tmp_path / "ctx", {"Mockerfile.yaml": text})
    p = env.cli("build", "-f", str(ctx / "Mockerfile.yaml"), str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert www.url("tool") in p.stderr and "sha256:" + "1" * 64 in p.stderr
    # an unknown --target names the images there are
    (ctx / "Mockerfile.yaml").write_text(text.replace("sha256: " + "1" * 64, "sha256: " + hashlib.sha256(
        b"real content\n").hexdigest()))
    p = env.cli("build", "-f", str(ctx / "Mockerfile.yaml"), "--target", "nope", str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "target image 'nope' could not be found (images: a)" in p.stderr
