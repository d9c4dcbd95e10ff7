"""COPY and ADD, proved by real builds: owners by name, octal and symbolic modes, wildcards,
directory contents, trailing-slash destinations, ``--link``, ``--parents``, ``--exclude``,
heredoc files, ``--from`` a stage index or an image, local tars, URLs with checksums, git
repositories, ``.dockerignore``. Every expected value is Docker's documented behaviour, stated
beside the assertion."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from mason.backends.solver.mounts import mounted_view
from mason.ir.errors import MasonError
from tests.fixtures.images import GROUP
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def _nonce() -> str:
    return uuid.uuid4().hex


class Tree:
    """A built filesystem opened for reading (paths are container paths)."""

    def __init__(self, root: str):
        self.root = root

    def host(self, p: str) -> str:
        return os.path.join(self.root, p.lstrip("/"))

    def read(self, p: str) -> str:
        with open(self.host(p), "rb") as f:
            return f.read().decode()

    def exists(self, p: str) -> bool:
        return os.path.lexists(self.host(p))

    def isdir(self, p: str) -> bool:
        return os.path.isdir(self.host(p)) and not os.path.islink(self.host(p))

    def isfile(self, p: str) -> bool:
        return os.path.isfile(self.host(p)) and not os.path.islink(self.host(p))

    def ls(self, p: str) -> list[str]:
        return sorted(os.listdir(self.host(p)))

    def meta(self, p: str) -> tuple[int, int, int]:
        """(uid, gid, permission bits)."""
        s = os.lstat(self.host(p))
        return s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode)

    def snapshot(self, under: str) -> dict[str, tuple]:
        """Every entry below ``under``: kind, owner, mode, content or link target."""
        out: dict[str, tuple] = {}
        base = self.host(under)
        for dirpath, dirs, files in os.walk(base):
            for n in dirs + files:
                p = os.path.join(dirpath, n)
                s = os.lstat(p)
                rel = os.path.relpath(p, base)
                if stat.S_ISLNK(s.st_mode):
                    body: object = os.readlink(p)
                elif stat.S_ISREG(s.st_mode):
                    body = open(p, "rb").read()
                else:
                    body = None
                out[rel] = (stat.S_IFMT(s.st_mode), s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode), body)
        return out


class Built:
    def __init__(self, env, res):
        self.env, self.res = env, res

    def __enter__(self) -> Tree:
        self._cm = mounted_view(self.env.lease_client, self.res.result.snapshot)
        return Tree(str(self._cm.__enter__()))

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def build(env, ctx, **kw) -> Built:
    res, _ = env.build(ctx, **kw)
    return Built(env, res)


# --------------------------------------------------------------------------- owners and modes

def test_chown_by_name_applies_to_files_and_new_dirs(build_env, tmp_path):
    """``--chown=app:app`` resolves the names in the stage's ``/etc/passwd`` and ``/etc/group``
    (app = 1000:1000): every copied file and every directory the copy creates is 1000:1000;
    modes are the context's. Without ``--chown`` everything is 0:0."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
COPY --chown=app:app dir /srv/new/dir/
COPY --chown=app f.txt /srv/user-only
COPY --chown=1000:65534 f.txt /srv/by-id
COPY f.txt /srv/root-owned
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "dir/a.txt": "a", "dir/sub/b.txt": "b", "f.txt": "f"},
                modes={"dir/a.txt": 0o640, "f.txt": 0o600})
    with build(env, ctx) as t:
        assert t.meta("/srv/new/dir/a.txt") == (1000, 1000, 0o640)
        assert t.meta("/srv/new/dir/sub/b.txt")[:2] == (1000, 1000)
        assert t.meta("/srv/new/dir/sub")[:2] == (1000, 1000)
        assert t.meta("/srv/new/dir")[:2] == (1000, 1000)  # created by the copy
        assert t.meta("/srv/new")[:2] == (1000, 1000)
        # a user name without a group: the user's primary group from /etc/passwd
        assert t.meta("/srv/user-only")[:2] == (1000, 1000)
        assert t.meta("/srv/by-id") == (1000, 65534, 0o600)
        assert t.meta("/srv/root-owned") == (0, 0, 0o600)


def test_chmod_octal_and_symbolic(build_env, tmp_path):
    """``--chmod=755`` sets exactly 0755 on files and directories; ``--chmod=u+x`` adds the
    owner's execute bit to each entry's own mode (0644 → 0744, 0600 → 0700); ``go-rwx``
    removes group and other bits."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
COPY --chmod=755 f644.txt /m/octal
COPY --chmod=755 dir /m/octal-dir/
COPY --chmod=u+x f644.txt f600.txt /m/sym/
COPY --chmod=go-rwx f644.txt /m/sym-minus
COPY --chmod=0440 f644.txt /m/octal-0440
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "f644.txt": "x", "f600.txt": "y", "dir/in": "z"},
                modes={"f644.txt": 0o644, "f600.txt": 0o600, "dir/in": 0o600})
    with build(env, ctx) as t:
        assert t.meta("/m/octal")[2] == 0o755
        assert t.meta("/m/octal-dir/in")[2] == 0o755
        assert t.meta("/m/sym/f644.txt")[2] == 0o744
        assert t.meta("/m/sym/f600.txt")[2] == 0o700
        assert t.meta("/m/sym-minus")[2] == 0o600
        assert t.meta("/m/octal-0440")[2] == 0o440


# --------------------------------------------------------------------------- sources and destinations

def test_wildcards_directories_and_trailing_slash(build_env, tmp_path):
    """* ``COPY *.txt /w/`` copies the matching files only;
    * ``COPY dir /d/`` copies the directory's *contents* (``/d/a``, not ``/d/dir/a``), with or
      without a trailing slash on the source;
    * ``COPY f /newdir/`` puts ``f`` inside a new directory; ``COPY f /newname`` creates a file
      of that name; ``COPY f /tmp`` (an existing directory) copies into it;
    * ``COPY f sub/`` is relative to WORKDIR; ``COPY f .`` lands in WORKDIR."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
COPY *.txt /w/
COPY dir /d1/
COPY dir/ /d2
COPY a.txt /newdir/
COPY a.txt /newname
COPY a.txt /tmp
COPY dir/sub/deep.txt /deep/
WORKDIR /work
COPY b.txt rel/
COPY b.txt .
COPY dir ./dircontents
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "A", "b.txt": "B", "c.md": "C",
                                   "dir/x": "X", "dir/sub/deep.txt": "D"})
    with build(env, ctx) as t:
        assert t.ls("/w") == ["a.txt", "b.txt"]
        assert t.ls("/d1") == ["sub", "x"] and t.read("/d1/sub/deep.txt") == "D"
        assert t.ls("/d2") == ["sub", "x"]
        assert t.isdir("/newdir") and t.read("/newdir/a.txt") == "A"
        assert t.isfile("/newname") and t.read("/newname") == "A"
        assert t.isdir("/tmp") and t.read("/tmp/a.txt") == "A"
        assert stat.S_IMODE(os.lstat(t.host("/tmp")).st_mode) == 0o1777  # the directory is kept
        assert t.read("/deep/deep.txt") == "D"
        assert t.read("/work/rel/b.txt") == "B"
        assert t.read("/work/b.txt") == "B"
        assert t.ls("/work/dircontents") == ["sub", "x"]


def test_link_gives_the_same_filesystem(build_env, tmp_path):
    """``COPY --link`` (copied onto scratch, merged on top) gives the same files, owners,
    modes and contents as the same COPYs without ``--link`` (numeric ``--chown``, ``root``,
    ``--chmod``, wildcards, ``--from``)."""
    env = build_env
    steps = """\
COPY {link} a.txt /out/new/
COPY {link} --chown=1000:1000 dir /out/owned/
COPY {link} --chown=root:root a.txt /out/root-owned
COPY {link} --chmod=750 a.txt /out/moded
COPY {link} *.txt /out/glob/
COPY {link} --from=src /made /out/from-stage/
"""
    head = f"""\
FROM {env.base} AS src
RUN mkdir /made && echo {_nonce()} > /made/nonce && echo made > /made/file && chmod 604 /made/file && chown 1000:65534 /made/file

FROM {env.base}
"""
    files = {"a.txt": "A", "b.txt": "B", "dir/x": "X", "dir/s/y": "Y"}
    modes = {"a.txt": 0o640}
    plain = write(tmp_path / "plain", {**files, "Dockerfile": head + steps.format(link="")}, modes)
    linked = write(tmp_path / "link", {**files, "Dockerfile": head + steps.format(link="--link")}, modes)
    with build(env, plain) as t:
        expect = t.snapshot("/out")
    with build(env, linked) as t:
        got = t.snapshot("/out")
    assert got == expect
    assert expect["owned/x"][1:4] == (1000, 1000, 0o644)
    assert expect["owned/s"][1:4] == (1000, 1000, 0o755)
    assert expect["root-owned"][1:4] == (0, 0, 0o640)
    assert expect["moded"][3] == 0o750
    assert expect["from-stage/file"][1:4] == (1000, 65534, 0o604)  # --from keeps owners


def test_link_with_chown_by_name_is_a_located_error(build_env, tmp_path):
    """``COPY --link --chown=app:app``: the copy happens on scratch, where there is no
    ``/etc/passwd`` to look the names up in (BuildKit fails with "invalid user index: -1"):
    a located error at lowering that says to use numeric ids."""
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nCOPY --link --chown=app:app a /a\n",
                                   "a": "a"})
    p = env.cli("build", str(ctx))
    assert p.returncode == 1
    assert "Dockerfile:2:1: error: --chown=app:app cannot be used with --link" in p.stderr, p.stderr
    assert "numeric ids" in p.stderr


def test_parents_keeps_the_source_directories(build_env, tmp_path):
    """``COPY --parents a/b/*.txt /p/`` keeps the matched files' parent directories
    (``/p/a/b/one.txt``); a ``/./`` in the source marks where the kept part starts
    (``x/./y/f.txt`` → ``/q/y/f.txt``). Without ``--parents`` the files land flat."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
COPY --parents a/b/*.txt /p/
COPY --parents x/./y/f.txt /q/
COPY --parents */b/one.txt /r/
COPY a/b/*.txt /flat/
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a/b/one.txt": "1", "a/b/two.txt": "2",
                                   "a/b/skip.md": "s", "x/y/f.txt": "F", "c/b/one.txt": "c1"})
    with build(env, ctx) as t:
        assert t.ls("/p") == ["a"] and t.ls("/p/a/b") == ["one.txt", "two.txt"]
        assert t.ls("/q") == ["y"] and t.read("/q/y/f.txt") == "F"
        assert t.ls("/r") == ["a", "c"] and t.read("/r/c/b/one.txt") == "c1"
        assert t.ls("/flat") == ["one.txt", "two.txt"]


def test_exclude_patterns(build_env, tmp_path):
    """``--exclude`` patterns are matched against paths below each source (BuildKit's own
    ``testExcludedFilesOnCopy``): ``COPY --exclude=*/*.png . /1`` drops PNGs one level down;
    ``ADD --exclude=*.mp3 dir3/ /3/`` drops MP3s in the directory; with a wildcard source
    ``dir*`` the patterns apply inside each match; ``--exclude=*`` leaves an empty
    destination; ``**`` matches at any depth; several ``--exclude`` flags add up."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
COPY --exclude=*/*.png --exclude=*/*.jpeg data /1
ADD --exclude=*.mp3 data/dir3/ /3/
COPY --exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt data/dir* /4/
COPY --exclude=* data/dir* /6/
COPY --exclude=**/*.log logs /7/
"""
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": df,
        "data/dir1/file-101.png": "2", "data/dir1/file-102.txt": "3", "data/dir1/file-103.jpeg": "4",
        "data/dir2/file-201.pdf": "6", "data/dir2/file-202.jpeg": "7", "data/dir2/file-203.png": "8",
        "data/dir3/file-301.mp3": "9", "data/dir3/file-302.mpeg": "10",
        "logs/a.log": "a", "logs/keep.txt": "k", "logs/deep/er/b.log": "b", "logs/deep/c.txt": "c"})
    with build(env, ctx) as t:
        assert t.ls("/1") == ["dir1", "dir2", "dir3"]
        assert t.ls("/1/dir1") == ["file-102.txt"]
        assert t.ls("/1/dir2") == ["file-201.pdf"]
        assert t.ls("/1/dir3") == ["file-301.mp3", "file-302.mpeg"]
        assert t.ls("/3") == ["file-302.mpeg"]
        assert t.ls("/4") == ["file-302.mpeg"] and t.read("/4/file-302.mpeg") == "10"
        assert t.isdir("/6") and t.ls("/6") == []
        assert t.ls("/7") == ["deep", "keep.txt"]
        assert t.ls("/7/deep") == ["c.txt", "er"] and t.ls("/7/deep/er") == []


def test_heredoc_copy(build_env, tmp_path):
    """``COPY <<EOF /path``: a file with the body (variables expanded from ENV unless the
    delimiter is quoted), mode 0644, owned by root; several heredocs to a ``dir/``; ``--chmod``
    and ``--chown`` apply to them."""
    env = build_env
    df = f"""\
FROM {env.base}
ENV NAME=world
RUN echo {_nonce()} > /nonce
COPY <<EOF /etc/greeting
hello $NAME
EOF
COPY <<'EOF' /etc/literal
hello $NAME
EOF
COPY <<one.txt <<two.txt /docs/
first
one.txt
second
two.txt
COPY --chmod=755 --chown=app:app <<EOF /usr/local/bin/tool
#!/bin/sh
echo tool
EOF
RUN /usr/local/bin/tool > /tool-out
"""
    with build(env, write(tmp_path / "ctx", {"Dockerfile": df})) as t:
        assert t.read("/etc/greeting") == "hello world\n"
        assert t.meta("/etc/greeting") == (0, 0, 0o644)
        assert t.read("/etc/literal") == "hello $NAME\n"
        assert t.ls("/docs") == ["one.txt", "two.txt"]
        assert t.read("/docs/one.txt") == "first\n" and t.read("/docs/two.txt") == "second\n"
        assert t.meta("/usr/local/bin/tool") == (1000, 1000, 0o755)
        assert t.read("/tool-out") == "tool\n"


def test_copy_from_stage_index_and_image(build_env, tmp_path):
    """``COPY --from=0`` names the first stage by index (even when it has a name);
    ``COPY --from=<image>`` reads from an image that is no stage (the fixture busybox:
    its ``/etc/group``)."""
    env = build_env
    df = f"""\
FROM {env.base} AS first
RUN echo {_nonce()} > /made-in-0

FROM {env.base}
RUN echo {_nonce()} > /nonce
COPY --from=0 /made-in-0 /from-index
COPY --from={env.base} /etc/group /from-image-group
"""
    with build(env, write(tmp_path / "ctx", {"Dockerfile": df})) as t:
        assert len(t.read("/from-index").strip()) == 32
        assert t.read("/from-image-group") == GROUP


# --------------------------------------------------------------------------- ADD

def _tar(members: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o640, 1_700_000_000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_add_local_tar_is_unpacked(build_env, tmp_path):
    """ADD of a local tar archive (plain, gzip, xz — recognised by content, not name)
    unpacks it into the destination directory; COPY of the same file copies the archive."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
ADD plain.tar /u/plain/
ADD gz.tgz /u/gz
ADD packed.bin /u/xz/
COPY gz.tgz /c/
"""
    members = {"top.txt": b"top\n", "sub/inner.txt": b"inner\n"}
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "plain.tar": _tar(members, "w"),
                                   "gz.tgz": _tar(members, "w:gz"), "packed.bin": _tar(members, "w:xz")})
    with build(env, ctx) as t:
        for d in ("/u/plain", "/u/gz", "/u/xz"):
            assert t.ls(d) == ["sub", "top.txt"], d
            assert t.read(d + "/sub/inner.txt") == "inner\n"
            assert t.meta(d + "/top.txt")[2] == 0o640  # the archive's modes
        assert t.ls("/c") == ["gz.tgz"]
        assert open(t.host("/c/gz.tgz"), "rb").read()[:2] == b"\x1f\x8b"


class _Server:
    def __init__(self, root: Path):
        handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    s = _Server(root)
    s.root = root
    yield s
    s.close()


def test_add_url_with_checksum(build_env, tmp_path, http_server):
    """``ADD http://127.0.0.1:PORT/file /dl/`` downloads into ``/dl/file``, mode 0600 (Docker:
    remote files get 0600), owned by root; to a name without a slash it is that file;
    ``--checksum=sha256:<right>`` builds; the wrong checksum fails the build, naming it."""
    env = build_env
    body = ("payload " + _nonce() + "\n").encode()
    (http_server.root / "file.bin").write_bytes(body)
    url = f"http://127.0.0.1:{http_server.port}/file.bin"
    good = "sha256:" + hashlib.sha256(body).hexdigest()
    df = f"""\
FROM {env.base}
ADD {url} /dl/
ADD {url} /named
ADD --checksum={good} {url} /checked/
ADD --chmod=644 {url} /moded
"""
    with build(env, write(tmp_path / "ctx", {"Dockerfile": df})) as t:
        assert t.read("/dl/file.bin") == body.decode()
        assert t.meta("/dl/file.bin") == (0, 0, 0o600)
        assert t.isfile("/named") and t.read("/named") == body.decode()
        assert t.read("/checked/file.bin") == body.decode()
        assert t.meta("/moded")[2] == 0o644
    bad = "sha256:" + "0" * 64
    df_bad = f"FROM {env.base}\nADD --checksum={bad} {url} /dl/\n"
    with pytest.raises(MasonError) as e:
        env.build(write(tmp_path / "bad", {"Dockerfile": df_bad}))
    assert "checksum" in str(e.value) and bad in str(e.value)


@pytest.fixture
def git_daemon(tmp_path):
    """A bare repository ``repo.git`` (branch ``main``, tag ``v1``) served read-only by
    ``git daemon`` on 127.0.0.1."""
    git = shutil.which("git")
    assert git, "git not found: install the Debian package git"
    base = tmp_path / "git"
    work = tmp_path / "gitwork"
    base.mkdir()
    work.mkdir()
    genv = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}

    def g(*args, cwd=work):
        subprocess.run([git, *args], cwd=cwd, env=genv, check=True, capture_output=True)

    g("init", "-q", "-b", "main")
    (work / "README").write_text("v1 readme\n")
    (work / "src").mkdir()
    (work / "src" / "main.sh").write_text("#!/bin/sh\necho main\n")
    os.chmod(work / "src" / "main.sh", 0o755)
    g("add", ".")
    g("commit", "-q", "-m", "one")
    g("tag", "v1")
    (work / "README").write_text("v2 readme\n")
    g("commit", "-q", "-am", "two")
    g("clone", "-q", "--bare", str(work), str(base / "repo.git"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([git, "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
                          "--listen=127.0.0.1", f"--port={port}", str(base)],
                         env=genv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/repo.git"
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_add_git_repository(build_env, tmp_path, git_daemon):
    """``ADD git://host/repo.git#ref /dest``: the tree of that ref, without ``.git``; the
    default ref is the remote's HEAD (``main``: the second commit), a tag gives its commit,
    ``#ref:subdir`` only that directory; ``--keep-git-dir`` keeps ``.git`` (a repository whose
    HEAD is that commit). Modes are kept."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
ADD {git_daemon} /head
ADD {git_daemon}#v1 /tag
ADD {git_daemon}#main:src /sub
ADD --keep-git-dir=true {git_daemon}#v1 /kept
"""
    with build(env, write(tmp_path / "ctx", {"Dockerfile": df})) as t:
        assert t.ls("/head") == ["README", "src"]
        assert t.read("/head/README") == "v2 readme\n"
        assert t.read("/tag/README") == "v1 readme\n"
        assert t.ls("/sub") == ["main.sh"] and t.meta("/sub/main.sh")[2] == 0o755
        assert t.ls("/kept") == [".git", "README", "src"]
        assert t.isdir("/kept/.git") and t.read("/kept/README") == "v1 readme\n"


def test_copy_of_git_url_is_refused(build_env, tmp_path, git_daemon):
    """COPY does not fetch repositories: a located error."""
    env = build_env
    df = f"FROM {env.base}\nCOPY {git_daemon} /x\n"
    p = env.cli("build", str(write(tmp_path / "ctx", {"Dockerfile": df})))
    assert p.returncode == 1
    assert "Dockerfile:2:1: error:" in p.stderr and "git" in p.stderr


# --------------------------------------------------------------------------- .dockerignore

def test_dockerignore_excludes_and_exception(build_env, tmp_path):
    """``.dockerignore`` with ``secret.txt``, ``*.md`` and ``!README.md``: ``COPY . /ctx/``
    has neither ``secret.txt`` nor ``notes.md`` but has ``README.md`` (the exception) and
    ``.dockerignore`` itself; COPY naming the ignored file fails with Docker's message ("file
    not found in build context or excluded by .dockerignore"), pointing at its line."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
COPY . /ctx/
COPY *.md /docs/
"""
    files = {"Dockerfile": df, ".dockerignore": "secret.txt\n*.md\n!README.md\n",
             "secret.txt": "s", "notes.md": "n", "README.md": "r", "keep.txt": "k"}
    ctx = write(tmp_path / "ctx", files)
    with build(env, ctx) as t:
        assert "secret.txt" not in t.ls("/ctx") and "notes.md" not in t.ls("/ctx")
        assert {"README.md", "keep.txt", "Dockerfile"} <= set(t.ls("/ctx"))
        assert t.ls("/docs") == ["README.md"]
    bad = write(tmp_path / "bad", {**files, "Dockerfile": f"FROM {env.base}\nCOPY secret.txt /s\n"})
    p = env.cli("build", str(bad))
    assert p.returncode == 1
    assert "Dockerfile:2:1: error:" in p.stderr
    assert ("file not found in build context or excluded by .dockerignore: stat /secret.txt: "
            "file does not exist") in p.stderr, p.stderr


def test_add_unpack_flag_and_bzip2(build_env, tmp_path, http_server):
    """A bzip2 tar is unpacked like gzip and xz; ``ADD --unpack=false`` keeps a local tar as a
    file; a remote tar is kept as a file unless ``--unpack=true``; ``--chown`` applies to a
    downloaded file."""
    env = build_env
    members = {"inside.txt": ("in " + _nonce() + "\n").encode()}
    (http_server.root / "remote.tar.gz").write_bytes(_tar(members, "w:gz"))
    url = f"http://127.0.0.1:{http_server.port}/remote.tar.gz"
    df = f"""\
FROM {env.base}
ADD b.tar.bz2 /bz/
ADD --unpack=false b.tar.bz2 /kept/
ADD {url} /remote-file/
ADD --unpack=true {url} /remote-unpacked/
ADD --chown=app:app {url} /remote-owned
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "b.tar.bz2": _tar(members, "w:bz2")})
    with build(env, ctx) as t:
        assert t.ls("/bz") == ["inside.txt"]
        assert t.ls("/kept") == ["b.tar.bz2"]
        assert t.ls("/remote-file") == ["remote.tar.gz"]
        assert t.ls("/remote-unpacked") == ["inside.txt"]
        assert t.read("/remote-unpacked/inside.txt") == members["inside.txt"].decode()
        assert t.meta("/remote-owned") == (1000, 1000, 0o600)


def test_add_url_keeps_last_modified_as_mtime(build_env, tmp_path, http_server):
    """A downloaded file's mtime is the server's ``Last-Modified`` (Docker's ADD)."""
    env = build_env
    f = http_server.root / "dated.txt"
    f.write_text("dated " + _nonce())
    os.utime(f, (1_600_000_000, 1_600_000_000))  # 2020-09-13T12:26:40Z
    df = f"FROM {env.base}\nADD http://127.0.0.1:{http_server.port}/dated.txt /dated.txt\n"
    with build(env, write(tmp_path / "ctx", {"Dockerfile": df})) as t:
        assert int(os.lstat(t.host("/dated.txt")).st_mtime) == 1_600_000_000


def test_symlinks_followed_at_the_top_kept_inside(build_env, tmp_path):
    """COPY follows a symlink named as the source (the target's content lands under the
    link's name) but copies symlinks inside a copied directory as links; ``COPY --from``
    keeps a stage's symlinks as links too."""
    env = build_env
    ctx = tmp_path / "ctx"
    df = f"""\
FROM {env.base} AS src
RUN mkdir /tree && echo {_nonce()} > /tree/real && ln -s real /tree/rel-link && ln -s /etc/group /tree/abs-link

FROM {env.base}
COPY link.txt /top
COPY tree /tree/
COPY --from=src /tree /stage-tree/
"""
    write(ctx, {"Dockerfile": df, "real.txt": "real content", "tree/file": "f"})
    os.symlink("real.txt", ctx / "link.txt")
    os.symlink("file", ctx / "tree" / "inner-link")
    with build(env, ctx) as t:
        assert t.isfile("/top") and t.read("/top") == "real content"
        assert os.readlink(t.host("/tree/inner-link")) == "file"
        assert os.readlink(t.host("/stage-tree/rel-link")) == "real"
        assert os.readlink(t.host("/stage-tree/abs-link")) == "/etc/group"


def test_dockerfile_specific_dockerignore_wins(build_env, tmp_path):
    """``<Dockerfile-name>.dockerignore`` beside the Dockerfile replaces the context's
    ``.dockerignore``: here the root file ignores ``a.txt`` and the specific one ignores
    ``b.txt``, so ``a.txt`` is copied and ``b.txt`` is not."""
    env = build_env
    ctx = write(tmp_path / "ctx", {
        "build/app.Dockerfile": f"FROM {env.base}\nRUN echo {_nonce()} > /nonce\nCOPY *.txt /in/\n",
        "build/app.Dockerfile.dockerignore": "b.txt\n",
        ".dockerignore": "a.txt\n",
        "a.txt": "a", "b.txt": "b", "c.txt": "c"})
    with build(env, ctx, dockerfile=str(ctx / "build" / "app.Dockerfile")) as t:
        assert t.ls("/in") == ["a.txt", "c.txt"]
