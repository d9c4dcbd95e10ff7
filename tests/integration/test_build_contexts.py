"""``mason build --build-context NAME=VALUE`` built for real: an image (``docker-image://`` from
the fixture registry) replacing ``FROM NAME``, a directory replacing ``COPY --from=NAME`` and
``RUN --mount=from=NAME`` (its own ``.dockerignore`` applied) and a whole stage (whose
instructions would fail if they ran), a URL (one file named ``context``), and the mistakes of
the flag: one line naming it, exit 1."""

from __future__ import annotations

import http.server
import threading
import uuid

import pytest

from mason.backends.solver.mounts import mounted_view
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def _read(env, res, path: str) -> str:
    with mounted_view(env.lease_client, res.result.snapshot) as root:
        with open(f"{root}/{path.lstrip('/')}") as f:
            return f.read()


def _exists(env, res, path: str) -> bool:
    import os

    with mounted_view(env.lease_client, res.result.snapshot) as root:
        return os.path.lexists(f"{root}/{path.lstrip('/')}")


def test_image_and_directory_contexts(build_env, tmp_path):
    """``FROM alpine`` is the fixture busybox (no alpine exists anywhere: the build would fail
    to resolve it), with busybox's config (its Env); ``COPY --from=files`` and
    ``RUN --mount=from=files`` read the directory given, without what its .dockerignore
    excludes; the stage ``deps`` is the directory ``deps`` itself: its ``COPY missing`` never
    runs (it would fail: the main context has no such file)."""
    env = build_env
    nonce = uuid.uuid4().hex
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"""\
FROM scratch AS deps
COPY missing /

FROM alpine
COPY --from=files /a.txt /sub /got/
RUN --mount=from=files,target=/f cat /f/a.txt > /mounted && (test -e /f/secret.txt || echo absent > /ignored)
COPY --from=deps /lib.txt /lib.txt
RUN echo {nonce} > /nonce
"""})
    files = write(tmp_path / "files", {"a.txt": "from files\n", "sub/b.txt": "b\n", "secret.txt": "no\n",
                                       ".dockerignore": "secret.txt\n"})
    deps = write(tmp_path / "deps", {"lib.txt": "lib " + nonce + "\n"})
    res, _ = env.build(ctx, build_contexts=(f"alpine=docker-image://{env.base}", f"files={files}",
                                            f"deps={deps}"))
    assert _read(env, res, "/got/a.txt") == "from files\n"
    assert _read(env, res, "/got/b.txt") == "b\n"  # a directory source copies its contents
    assert _read(env, res, "/mounted") == "from files\n"
    assert _read(env, res, "/ignored") == "absent\n"  # .dockerignore of the named directory
    assert _read(env, res, "/lib.txt") == "lib " + nonce + "\n"
    assert _exists(env, res, "/bin/busybox")  # the fixture image is the base
    env_list = res.image_config["config"]["Env"]
    assert any(e.startswith("PATH=") for e in env_list)


def test_oci_layout_context_by_tag_and_digest(build_env, busybox_layout, tmp_path):
    """``--build-context base=oci-layout://DIR:latest`` (and ``@DIGEST``): ``FROM base`` is the
    image in the layout (busybox made in the session), loaded from the layout, not a registry."""
    env = build_env
    nonce = uuid.uuid4().hex
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM base\nRUN echo {nonce} > /n && busybox true\n"})
    for spec in (f"{busybox_layout.layout}:latest", f"{busybox_layout.layout}@{busybox_layout.manifest_digest}"):
        res, _ = env.build(ctx, build_contexts=(f"base=oci-layout://{spec}",))
        assert _read(env, res, "/n") == nonce + "\n"
        assert _exists(env, res, "/bin/busybox")
    p = env.cli("build", "--build-context", f"base=oci-layout://{busybox_layout.layout}:nope", str(ctx))
    assert p.returncode == 1 and "--build-context" in p.stderr and "nope" in p.stderr, p.stderr


class _Server:
    def __init__(self, root):
        handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_url_context_is_one_file_named_context(build_env, tmp_path):
    """``--build-context tool=http://…/tool.sh``: ``COPY --from=tool /context /usr/bin/tool``
    copies the downloaded file (BuildKit names it ``context``)."""
    env = build_env
    www = tmp_path / "www"
    www.mkdir()
    body = "#!/bin/sh\necho tool " + uuid.uuid4().hex + "\n"
    (www / "tool.sh").write_text(body)
    srv = _Server(www)
    try:
        ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nCOPY --from=tool /context /tool.sh\n"})
        res, _ = env.build(ctx, build_contexts=(f"tool=http://127.0.0.1:{srv.port}/tool.sh",))
        assert _read(env, res, "/tool.sh") == body
    finally:
        srv.close()


@pytest.mark.parametrize("flag,needle", [
    ("nonsense", "expected NAME=VALUE"),
    ("Bad=docker-image://busybox", "not a valid stage or image name"),
    ("x=/nonexistent/dir", "is not a directory"),
    ("x=ftp://example.com/x", "unsupported context source"),
    ("context=docker-image://busybox", "reserved"),
])
def test_flag_mistakes_are_one_line(build_env, tmp_path, flag, needle):
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base}\n"})
    p = build_env.cli("build", "--build-context", flag, str(ctx))
    assert p.returncode == 1, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--build-context" in lines[0] and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr
