"""A Mockerfile ``package`` build that really runs apt, on the Debian base the test session makes
with ``debootstrap --variant=minbase`` (tests/fixtures/debian.py): ``hello`` comes from the
Debian archive, ``mason-it-extra`` from an extra ``repo`` line — a signed flat apt repository
the test serves on the host (reached from the step at the bridge's host-side address), its key
given as a ``gpg`` URL (an http source mason fetches and places in ``/etc/apt/trusted.gpg.d``).
Run with ``mason build -f Mockerfile.yaml``; the image's files are read through ``type=local``.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import http.server
import ipaddress
import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from mason.backends.containerd.network import DEFAULT_SUBNET
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

GATEWAY = str(next(ipaddress.ip_network(DEFAULT_SUBNET).hosts()))  # the bridge's host side


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120, **kw)


def make_signed_repo(root: Path, gnupg: Path, version: str, marker: str) -> None:
    """A flat apt repository in ``root`` (``deb URL ./``): one ``Architecture: all`` package
    ``mason-it-extra`` whose ``/usr/bin/mason-it-extra`` prints ``marker``, ``Packages`` (+ .gz),
    a ``Release`` with their SHA256 and its clear-signed ``InRelease``; the public key as
    ``key.asc``."""
    pkg = root / "build" / "mason-it-extra"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "usr" / "bin").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: mason-it-extra\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: mason tests <tests@mason.invalid>\nDescription: mason's apt test package\n")
    tool = pkg / "usr" / "bin" / "mason-it-extra"
    tool.write_text(f"#!/bin/sh\necho {marker}\n")
    tool.chmod(0o755)
    deb_name = f"mason-it-extra_{version}_all.deb"
    _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(pkg), str(root / deb_name)])
    deb = (root / deb_name).read_bytes()
    packages = (f"Package: mason-it-extra\nVersion: {version}\nArchitecture: all\n"
                "Maintainer: mason tests <tests@mason.invalid>\nInstalled-Size: 1\n"
                f"Filename: ./{deb_name}\nSize: {len(deb)}\nSHA256: {hashlib.sha256(deb).hexdigest()}\n"
                "Description: mason's apt test package\n\n").encode()
    (root / "Packages").write_bytes(packages)
    (root / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    release = [f"Origin: mason-tests\nLabel: mason-tests\nDate: {email.utils.formatdate(usegmt=True)}\nSHA256:"]
    for name in ("Packages", "Packages.gz"):
        data = (root / name).read_bytes()
        release.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (root / "Release").write_text("\n".join(release) + "\n")
    env = dict(os.environ, GNUPGHOME=str(gnupg))
    gnupg.mkdir(mode=0o700)
    try:
        _run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "mason tests <tests@mason.invalid>",
              "ed25519", "sign", "never"], env=env)
        _run(["gpg", "--batch", "--yes", "--clearsign", "-o", str(root / "InRelease"), str(root / "Release")],
             env=env)
        (root / "key.asc").write_text(_run(["gpg", "--batch", "--armor", "--export"], env=env).stdout)
    finally:  # gpg started an agent for this home (it outlives gpg): stop it (issue 11)
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"], capture_output=True,
                       timeout=60, check=False)


def gpg_agents(gnupg: Path) -> list[int]:
    """The gpg-agent processes serving home ``gnupg`` (none must outlive the repo's making)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == "gpg-agent" \
                and str(gnupg).encode() in b" ".join(argv):
            out.append(int(d))
    return out


class Server:
    """Static files of ``root`` over HTTP on every host address (the step reaches it at the
    bridge gateway, mason's http source at 127.0.0.1); it notes the paths asked for."""

    def __init__(self, root: Path):
        asked = self.asked = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *a) -> None:
                asked.append((self.client_address[0], self.path))

        self.httpd = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


MOCKERFILE = """\
apiVersion: v1alpha1
images:
- name: apt
  from: {base}
  package:
    repo:
    - deb http://{gateway}:{port}/ ./
    gpg:
    - http://127.0.0.1:{port}/key.asc
    install:
    - hello
    - mason-it-extra={version}
  steps:
  - hello > /hello-out && mason-it-extra > /extra-out && dpkg-query -W -f '${{Version}}' mason-it-extra > /extra-version
"""


def test_mockerfile_package_runs_apt_on_debian(build_env, debian_image, tmp_path):
    env = build_env
    nonce = uuid.uuid4().hex[:10]
    version = f"1.0-{nonce}"
    repo = tmp_path / "repo"
    repo.mkdir()
    make_signed_repo(repo, tmp_path / "gnupg", version, f"extra-{nonce}")
    assert gpg_agents(tmp_path / "gnupg") == [], "the gpg-agent of the test's key outlived its use"
    server = Server(repo)
    try:
        text = MOCKERFILE.format(base=debian_image.ref, gateway=GATEWAY, port=server.port, version=version)
        ctx = write(tmp_path / "ctx", {"Mockerfile.yaml": text})
        out = tmp_path / "out"
        p = env.cli("build", "--progress=plain", "-f", str(ctx / "Mockerfile.yaml"), str(ctx),
                    "--output", f"type=local,dest={out}", timeout=900)
    finally:
        server.close()
    assert p.returncode == 0, p.stderr[-4000:]
    # hello from the Debian archive, the extra package (the pinned version) from the signed repo
    assert (out / "hello-out").read_text() == "Hello, world!\n"
    assert (out / "extra-out").read_text() == f"extra-{nonce}\n"
    assert (out / "extra-version").read_text() == version
    assert (out / "usr/bin/hello").is_file()
    # the key came through mason's http source into trusted.gpg.d, the repo line into sources.list.d
    assert (out / "etc/apt/trusted.gpg.d/mockerfile-key.asc").read_text() == (repo / "key.asc").read_text()
    assert (out / "etc/apt/sources.list.d/mockerfile.list").read_text() == f"deb http://{GATEWAY}:{server.port}/ ./\n"
    # apt fetched the signed index and the package from the step (the bridge), the key from the host
    paths = {(ip == "127.0.0.1", path) for ip, path in server.asked}
    assert (True, "/key.asc") in paths
    assert any(not host and path.endswith("/InRelease") for host, path in paths)
    assert any(not host and path.endswith(f"/mason-it-extra_{version}_all.deb") for host, path in paths)
    assert "NO_PUBKEY" not in p.stderr and "not signed" not in p.stderr
    # apt's lists and archives were cache mounts: what this apt-get update fetched (the extra
    # repo's index) and the downloaded .debs are not in the image (debootstrap's own lists are)
    lists = os.listdir(out / "var/lib/apt/lists")
    assert not [x for x in lists if GATEWAY in x], lists
    assert not list((out / "var/cache/apt").rglob("*.deb"))
