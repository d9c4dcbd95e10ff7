"""``local://`` sources: pattern selection, links, modes, the content checksum and its stat
cache; the snapshot checked by mounting it."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from mason.backends.containerd.client import Client
from mason.backends.sources import local as local_mod
from mason.backends.sources.local import load_local, scan_local
from mason.backends.sources.mount import mounted_view
from mason.ir.errors import MasonError
from mason.ir.patterns import parse_dockerignore

PAST = 1_600_000_000_000_000_000  # ns; well before any "racy" window


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)


def _age(root: Path) -> None:
    """Every mtime into the past, so the stat cache trusts what it recorded."""
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), ns=(PAST, PAST), follow_symlinks=False)


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode):
                out[rel] = "-> " + os.readlink(p)
            elif stat.S_ISFIFO(mode):  # never open a FIFO: that blocks
                out[rel] = "fifo"
            elif stat.S_ISDIR(mode):
                out[rel] = "dir"
            else:
                out[rel] = p.read_text()
    return out


def _ex(patterns: list[str]) -> dict[str, str]:
    return {"local.excludepatterns": json.dumps(patterns)}


@pytest.fixture
def ctx(tmp_path) -> Path:
    root = tmp_path / "ctx"
    _write(root, {
        "Dockerfile": "FROM scratch\n",
        "app.py": "print('hi')\n",
        "src/main.c": "int main;\n",
        "src/gen/out.o": "obj",
        "node_modules/left-pad/index.js": "x",
        "secret.key": "k",
        "docs/a.md": "a",
        "docs/keep.md": "keep",
    })
    return root


# -- scanning (no containerd) -------------------------------------------------------------------


def test_dockerignore_excludes_and_exception(ctx, monkeypatch) -> None:
    walked = []
    real = os.scandir
    monkeypatch.setattr(local_mod.os, "scandir", lambda p: (walked.append(str(p)), real(p))[1])
    ignore = parse_dockerignore("node_modules\n*.key\ndocs\n!docs/keep.md\nsrc/gen\n")
    scan = scan_local(ctx, _ex([str(p) for p in ignore]))
    assert [e.rel for e in scan.entries] == ["Dockerfile", "app.py", "docs", "docs/keep.md", "src", "src/main.c"]
    # excluded directories no exception reaches are not even walked; docs has to be
    assert not any("node_modules" in w or w.endswith("gen") for w in walked)
    assert any(w.endswith("/docs") for w in walked)


def test_include_patterns_and_exclude_together(ctx) -> None:
    attrs = {"local.includepattern": json.dumps(["src", "*.py"]), **_ex(["src/gen"])}
    assert [e.rel for e in scan_local(ctx, attrs).entries] == ["app.py", "src", "src/main.c"]
    only = scan_local(ctx, {"local.includepattern": json.dumps(["docs/keep.md"])})
    assert [e.rel for e in only.entries] == ["docs", "docs/keep.md"]


def test_followpaths_include_symlink_targets(tmp_path) -> None:
    root = tmp_path / "c"
    _write(root, {"real/Dockerfile.in": "FROM x\n", "other": "o"})
    os.symlink("real/Dockerfile.in", root / "Dockerfile")
    attrs = {"local.includepattern": json.dumps(["Dockerfile"]), "local.followpaths": json.dumps(["Dockerfile"])}
    assert [e.rel for e in scan_local(root, attrs).entries] == ["Dockerfile", "real", "real/Dockerfile.in"]
    # without followpaths the link alone
    assert [e.rel for e in scan_local(root, {"local.includepattern": '["Dockerfile"]'}).entries] == ["Dockerfile"]


def test_checksum_is_content_not_mtime(ctx) -> None:
    before = scan_local(ctx).checksum
    os.utime(ctx / "app.py", ns=(PAST, PAST))  # touch
    os.utime(ctx / "src", ns=(PAST, PAST))
    assert scan_local(ctx).checksum == before
    os.chown(ctx / "app.py", 1000, 1000)  # owners are not content either (they become 0:0)
    assert scan_local(ctx).checksum == before
    (ctx / "app.py").write_text("print('bye')\n")
    edited = scan_local(ctx).checksum
    assert edited != before
    os.chmod(ctx / "app.py", 0o755)
    assert scan_local(ctx).checksum not in (before, edited)
    # an excluded file's edits do not count
    assert scan_local(ctx, _ex(["secret.key"])).checksum == \
        (lambda: ((ctx / "secret.key").write_text("new"), scan_local(ctx, _ex(["secret.key"])).checksum)[1])()


def test_stat_cache_avoids_rereading(ctx, tmp_path) -> None:
    cache = tmp_path / "cache"
    _age(ctx)
    first = scan_local(ctx, cache_dir=cache)
    assert first.hashed == 8
    second = scan_local(ctx, cache_dir=cache)
    assert (second.hashed, second.checksum) == (0, first.checksum)
    os.utime(ctx / "app.py", ns=(PAST + 10**9, PAST + 10**9))  # touched: read again, same checksum
    third = scan_local(ctx, cache_dir=cache)
    assert (third.hashed, third.checksum) == (1, first.checksum)
    (ctx / "src/main.c").write_text("int main(void);\n")  # a real edit is seen
    fourth = scan_local(ctx, cache_dir=cache)
    assert fourth.hashed == 1 and fourth.checksum != first.checksum


def test_stat_cache_distrusts_racy_entries(ctx, tmp_path) -> None:
    """A file hashed in the same instant it was written may change again without its size or
    mtime changing: such entries are read again next time."""
    cache = tmp_path / "cache"
    scan_local(ctx, cache_dir=cache)  # the files were just written
    assert scan_local(ctx, cache_dir=cache).hashed == 8


def test_bad_attrs() -> None:
    with pytest.raises(MasonError, match=r"invalid local.excludepatterns attr: not JSON"):
        scan_local(".", {"local.excludepatterns": "node_modules"})
    with pytest.raises(MasonError, match=r"expected a JSON list of strings"):
        scan_local(".", {"local.includepattern": '{"a": 1}'})
    with pytest.raises(MasonError, match=r"local source: /nonexistent/ctx does not exist"):
        scan_local("/nonexistent/ctx")


# -- into snapshots -------------------------------------------------------------------------------


@pytest.fixture
def ns(containerd_env):
    base: Client = containerd_env.client.in_namespace(f"mason-t-{uuid.uuid4().hex[:10]}")
    base.ensure_namespace()
    lease = base.create_lease(expire=3600)
    try:
        yield base.with_lease(lease)
    finally:
        with contextlib.suppress(Exception):
            base.delete_lease(lease, sync=True)


@pytest.mark.integration
def test_load_local_copies_the_selection(ns, ctx, tmp_path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("must not be copied")
    os.symlink(str(outside), ctx / "abs-link")
    os.symlink("../outside.txt", ctx / "rel-link")
    os.symlink("/etc", ctx / "dir-link")
    os.chmod(ctx / "app.py", 0o640)
    os.chmod(ctx / "src", 0o750)
    os.chown(ctx / "app.py", 1000, 1001)
    os.link(ctx / "app.py", ctx / "app-hardlink.py")
    os.mkfifo(ctx / "pipe")
    _age(ctx)
    os.utime(ctx / "app.py", ns=(PAST + 123, PAST + 123))
    res = load_local(ns, "context", ctx, _ex(["node_modules", "*.key", "docs", "!docs/keep.md"]),
                     cache_dir=tmp_path / "cache")
    assert res.layers == () and res.config is None
    assert res.cache_key_extra == res.digest and res.digest.startswith("sha256:")
    with mounted_view(ns, res.snapshot) as root:
        assert _tree(root) == {
            "Dockerfile": "FROM scratch\n", "app.py": "print('hi')\n", "app-hardlink.py": "print('hi')\n",
            "abs-link": f"-> {outside}", "rel-link": "-> ../outside.txt", "dir-link": "-> /etc",
            "docs": "dir", "docs/keep.md": "keep", "pipe": "fifo", "src": "dir", "src/main.c": "int main;\n",
            "src/gen": "dir", "src/gen/out.o": "obj",
        }
        st = os.lstat(root / "app.py")
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) == (0o640, 0, 0, PAST + 123)
        assert st.st_nlink == 2 and os.lstat(root / "app-hardlink.py").st_ino == st.st_ino
        assert stat.S_IMODE(os.lstat(root / "src").st_mode) == 0o750
        assert os.lstat(root / "src").st_mtime_ns == PAST
        assert stat.S_ISFIFO(os.lstat(root / "pipe").st_mode)
        assert stat.S_ISLNK(os.lstat(root / "dir-link").st_mode)


@pytest.mark.integration
def test_unchanged_context_reuses_its_snapshot(ns, ctx, tmp_path) -> None:
    first = load_local(ns, "context", ctx, {}, cache_dir=tmp_path / "cache")
    snaps = ns.list_snapshots()
    os.utime(ctx / "app.py")  # touch
    second = load_local(ns, "context", ctx, {}, cache_dir=tmp_path / "cache")
    assert second == first and ns.list_snapshots() == snaps
    (ctx / "app.py").write_text("changed\n")
    third = load_local(ns, "context", ctx, {}, cache_dir=tmp_path / "cache")
    assert third.snapshot != first.snapshot and third.cache_key_extra != first.cache_key_extra
    with mounted_view(ns, third.snapshot) as root:
        assert (root / "app.py").read_text() == "changed\n"


@pytest.mark.integration
def test_file_changed_between_scan_and_copy_is_an_error(ns, ctx) -> None:
    scan = scan_local(ctx)
    (ctx / "app.py").write_text("sneaky\n")
    with pytest.raises(MasonError, match=r"app.py changed while it was being copied"):
        load_local(ns, "context", ctx, {}, scan=scan)
    assert not [s for s in ns.list_snapshots() if s.kind == "active"]  # nothing left behind
