"""The attack suite's download and archive classes (issue 11):

* an HTTP source that redirects to ``file://`` (to read the host) or in a loop: one clear error,
  nothing of the host file in the result;
* ``ADD --checksum`` with the wrong digest: refused, nothing added;
* a gzip bomb (a small ``.tar.gz`` of a 512 MiB file) is extracted by ADD in bounded memory: the
  mason process stays far below the size of what it unpacks."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import socketserver
import subprocess
import sys
import tarfile
import threading

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server name
        if self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
        elif self.path == "/ok":
            body = b"payload\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def http_server():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _build(env, ctx, *args):
    return env.cli("build", "--progress=plain", *args, str(ctx))


@pytest.mark.parametrize("path", ["/to-file", "/loop"])
def test_redirects_to_file_and_loops_are_one_error(build_env, tmp_path, http_server, path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM scratch\nADD {http_server}{path} /x\n"})
    out = tmp_path / "out"
    p = _build(env, ctx, "-o", f"type=local,dest={out}")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert not (out / "x").exists()
    assert "root:" not in p.stderr
    assert ("unsupported protocol" if path == "/to-file" else "redirects") in p.stderr, p.stderr


def test_add_checksum_mismatch_adds_nothing(build_env, tmp_path, http_server):
    env = build_env
    bad = "sha256:" + "0" * 64
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM scratch\nADD --checksum={bad} {http_server}/ok /x\n"})
    out = tmp_path / "out"
    p = _build(env, ctx, "-o", f"type=local,dest={out}")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and bad in p.stderr, p.stderr
    assert not (out / "x").exists()


class _Zeros(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


_REPORT_VMHWM = """\
import atexit, sys
out = sys.argv.pop(1)
def report():
    with open("/proc/self/status") as f:
        kib = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(out, "w") as f:
        f.write(kib)
atexit.register(report)
sys.argv[0] = "mason"
from mason.cli.main import main
sys.exit(main())
"""


def test_gzip_bomb_extracts_in_bounded_memory(build_env, tmp_path):
    env = build_env
    size = 512 << 20
    ctx = tmp_path / "c"
    ctx.mkdir()
    with gzip.open(ctx / "bomb.tar.gz", "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w|") as tf:
        info = tarfile.TarInfo("zeros")
        info.size = size
        tf.addfile(info, io.BufferedReader(_Zeros(size), 1 << 20))
    assert (ctx / "bomb.tar.gz").stat().st_size < size // 100
    (ctx / "Dockerfile").write_text(
        f"FROM {env.base}\nADD bomb.tar.gz /b/\nRUN test $(wc -c < /b/zeros) -eq {size} && rm /b/zeros\n")
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    # The peak is mason's own high-water mark (VmHWM of its process image), written at exit: a
    # child's ru_maxrss also counts the pytest process it was forked from, before its exec.
    hwm = tmp_path / "vmhwm"
    proc = subprocess.run([sys.executable, "-c", _REPORT_VMHWM, str(hwm), "build", "--progress=plain", str(ctx)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=e)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    peak = int(hwm.read_text()) << 10  # KiB
    assert peak < size // 2, f"mason peaked at {peak >> 20} MiB unpacking {size >> 20} MiB"
