"""Safe path resolution, mkdir -p and tar extraction inside a root."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from mason.backends.solver.fsutil import Root, mkdir_all, resolve_in_root, safe_extract_tar
from mason.ir.errors import MasonError
from tests.backends.solver.fileop_helpers import snapshot


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("inside\n")
    (r / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("host\n")
    return r


def test_plain_and_relative(root):
    assert resolve_in_root(str(root), "/etc/passwd") == str(root / "etc/passwd")
    assert resolve_in_root(str(root), "passwd", cwd="/etc") == str(root / "etc/passwd")
    assert resolve_in_root(str(root), "/") == str(root)
    assert resolve_in_root(str(root), "/missing/x") == str(root / "missing/x")


def test_dotdot_clamps_at_root(root):
    assert resolve_in_root(str(root), "/../../../etc/passwd") == str(root / "etc/passwd")
    assert resolve_in_root(str(root), "../../outside/secret", cwd="/usr") == str(root / "outside/secret")


def test_absolute_link_is_rerooted(root):
    os.symlink("/etc", root / "usr" / "l")
    assert resolve_in_root(str(root), "/usr/l/passwd") == str(root / "etc/passwd")


def test_relative_link_climbing_out_clamps(root):
    os.symlink("../../../../../outside", root / "usr" / "up")
    assert resolve_in_root(str(root), "/usr/up/secret") == str(root / "outside/secret")


def test_link_to_proc_self_root(root):
    os.symlink("/proc/self/root/etc", root / "p")
    assert resolve_in_root(str(root), "/p/passwd") == str(root / "proc/self/root/etc/passwd")


def test_link_then_dotdot_uses_target_parent(root):
    os.symlink("/usr/bin", root / "b")
    assert resolve_in_root(str(root), "/b/../x") == str(root / "usr/x")


def test_final_link_followed_or_not(root):
    os.symlink("/etc/passwd", root / "pw")
    assert resolve_in_root(str(root), "/pw") == str(root / "etc/passwd")
    assert resolve_in_root(str(root), "/pw", follow_final=False) == str(root / "pw")


def test_loop_is_eloop(root):
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    with pytest.raises(MasonError, match="too many levels of symbolic links"):
        resolve_in_root(str(root), "/a/x")
    os.symlink("self", root / "self")
    with pytest.raises(MasonError, match="too many levels"):
        resolve_in_root(str(root), "/self")


def test_long_chain_within_limit(root):
    prev = "/etc"
    for i in range(30):
        os.symlink(prev, root / f"c{i}")
        prev = f"/c{i}"
    assert resolve_in_root(str(root), f"{prev}/passwd") == str(root / "etc/passwd")


def test_result_always_inside(root, tmp_path):
    os.symlink("/", root / "r")
    os.symlink("..", root / "up")
    os.symlink(str(tmp_path / "outside"), root / "host")
    for p in ["/r/r/r/..", "/up/up/up/outside", "/host/secret", "up/../../..", "/r/../up"]:
        got = resolve_in_root(str(root), p)
        assert got == str(root) or got.startswith(str(root) + "/"), (p, got)
    assert resolve_in_root(str(root), "/host/secret") == str(root) + str(tmp_path / "outside/secret")


def test_mkdir_all_through_links(root, tmp_path):
    os.symlink(str(tmp_path / "outside"), root / "evil")
    before = snapshot(tmp_path / "outside")
    created = mkdir_all(str(root), "/evil/a/b", 0o750)
    assert created[-1].endswith("/a/b")
    assert (root / str(tmp_path / "outside").lstrip("/") / "a" / "b").is_dir()
    assert oct((root / str(tmp_path / "outside").lstrip("/") / "a").stat().st_mode & 0o777) == "0o750"
    assert snapshot(tmp_path / "outside") == before


def test_mkdir_all_over_file_fails(root):
    with pytest.raises(NotADirectoryError):
        mkdir_all(str(root), "/etc/passwd/x")


def _tar(entries, mode="w"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for kind, name, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_000_000
            if kind == "file":
                ti.size = len(extra)
                tf.addfile(ti, io.BytesIO(extra))
                continue
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, extra
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, extra
            tf.addfile(ti)
    buf.seek(0)
    return tarfile.open(fileobj=buf)


def test_tar_basic(root):
    written = safe_extract_tar(_tar([("dir", "d", None), ("file", "d/f", b"hi"),
                                     ("sym", "d/l", "f"), ("hard", "d/h", "d/f"),
                                     ("file", "x/y/z", b"deep")]), str(root))
    assert (root / "d/f").read_bytes() == b"hi"
    assert os.readlink(root / "d/l") == "f"
    assert os.stat(root / "d/h").st_ino == os.stat(root / "d/f").st_ino
    assert (root / "x/y/z").read_bytes() == b"deep"
    assert os.stat(root / "d").st_mtime == 1_000_000
    assert "/d/f" in written


@pytest.mark.parametrize("entries", [
    [("file", "../escape", b"x")],
    [("file", "a/../../escape", b"x")],
    [("hard", "h", "../outside/secret")],
])
def test_tar_breakout_refused(root, tmp_path, entries):
    before = snapshot(tmp_path, skip={"root"})
    with pytest.raises(MasonError, match="escapes"):
        safe_extract_tar(_tar(entries), str(root))
    assert snapshot(tmp_path, skip={"root"}) == before


@pytest.mark.parametrize("link", ["../outside", "../../outside", "d/../../../outside", "../" * 40 + "outside"])
def test_tar_symlink_above_root_kept_and_writes_stay_inside(root, tmp_path, link):
    """Issue 11: a symlink pointing above the destination is extracted as it is (Docker and
    BuildKit extract it in a chroot), and an entry written through it lands inside the root."""
    before = snapshot(tmp_path, skip={"root"})
    safe_extract_tar(_tar([("dir", "d", None), ("sym", "d/up", link), ("file", "d/up/secret", b"pwned"),
                           ("sym", "top", link), ("file", "top/secret2", b"pwned")]), str(root))
    assert os.readlink(root / "d/up") == link and os.readlink(root / "top") == link
    assert snapshot(tmp_path, skip={"root"}) == before  # tmp_path/outside/secret untouched
    assert (tmp_path / "outside" / "secret").read_bytes() != b"pwned"
    # re-rooted: ../.. stops at the root
    with Root(str(root)) as r:
        assert r.host_path("/d/up/secret").startswith(str(root) + "/")
        assert open(r.host_path("/d/up/secret"), "rb").read() == b"pwned"
        assert open(r.host_path("/top/secret2"), "rb").read() == b"pwned"


def test_tar_absolute_names_rerooted(root, tmp_path):
    before = snapshot(tmp_path, skip={"root"})
    safe_extract_tar(_tar([("file", "/etc/passwd", b"pwned"),
                           ("file", str(tmp_path / "outside" / "secret"), b"pwned")]), str(root))
    assert (root / "etc/passwd").read_bytes() == b"pwned"
    assert snapshot(tmp_path, skip={"root"}) == before


def test_tar_symlink_then_write_through(root, tmp_path):
    before = snapshot(tmp_path, skip={"root"})
    safe_extract_tar(_tar([("sym", "l", str(tmp_path / "outside")), ("file", "l/secret", b"pwned"),
                           ("sym", "e", "/etc"), ("file", "e/passwd", b"pwned")]), str(root))
    assert snapshot(tmp_path, skip={"root"}) == before
    assert (root / "etc/passwd").read_bytes() == b"pwned"
    assert (root / str(tmp_path / "outside").lstrip("/") / "secret").read_bytes() == b"pwned"


def test_tar_hardlink_to_absolute_stays_inside(root, tmp_path):
    before = snapshot(tmp_path, skip={"root"})
    safe_extract_tar(_tar([("hard", "h", "/etc/passwd")]), str(root))
    assert os.stat(root / "h").st_ino == os.stat(root / "etc/passwd").st_ino
    with pytest.raises(FileNotFoundError):
        safe_extract_tar(_tar([("hard", "h2", str(tmp_path / "outside" / "secret"))]), str(root))
    assert snapshot(tmp_path, skip={"root"}) == before
    assert os.stat(tmp_path / "outside" / "secret").st_nlink == 1


def test_tar_hardlink_through_symlink_stays_inside(root, tmp_path):
    os.symlink(str(tmp_path / "outside"), root / "o")
    with pytest.raises(FileNotFoundError):
        safe_extract_tar(_tar([("hard", "h", "o/secret")]), str(root))
    assert os.stat(tmp_path / "outside" / "secret").st_nlink == 1


def test_tar_replaces_existing(root):
    (root / "d").mkdir()
    safe_extract_tar(_tar([("file", "d", b"now a file"), ("dir", "etc", None)]), str(root))
    assert (root / "d").read_bytes() == b"now a file"
    assert (root / "etc/passwd").exists()


def test_root_object_subroot(root):
    with Root(str(root)) as r, r.subroot("/etc") as sub:
        assert sub.host_path("/passwd") == str(root / "etc/passwd")
        assert sub.host_path("/../../x") == str(root / "etc/x")


# -- remove_if_empty: the mount-stub cleanup (CVE-2024-23652) ----------------------------------

def test_remove_if_empty_never_follows_a_parent_link(tmp_path):
    from mason.backends.solver.fsutil import remove_if_empty

    upper, host = tmp_path / "upper", tmp_path / "host"
    (host / "victimdir").mkdir(parents=True)
    (host / "victimfile").write_bytes(b"")
    upper.mkdir()
    (upper / "x").symlink_to(host)  # a step swapped the stub's parent for a link to the host
    (upper / "inside").symlink_to("x")  # a relative link, still ends on the host
    for p in ("/x/victimdir", "/x/victimfile", "/inside/victimdir", "x/../x/victimdir"):
        assert remove_if_empty(str(upper), p) is False
    assert (host / "victimdir").is_dir() and (host / "victimfile").exists()


def test_remove_if_empty_removes_empty_stubs_only(tmp_path):
    from mason.backends.solver.fsutil import remove_if_empty

    upper = tmp_path / "upper"
    (upper / "a" / "dir").mkdir(parents=True)
    (upper / "a" / "file").write_bytes(b"")
    (upper / "a" / "full").write_bytes(b"data")
    (upper / "a" / "nonempty").mkdir()
    (upper / "a" / "nonempty" / "f").write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    (upper / "a" / "link").symlink_to(tmp_path / "elsewhere")
    assert remove_if_empty(str(upper), "/a/dir") and not (upper / "a" / "dir").exists()
    assert remove_if_empty(str(upper), "/a/file") and not (upper / "a" / "file").exists()
    assert not remove_if_empty(str(upper), "/a/full")
    assert not remove_if_empty(str(upper), "/a/nonempty")
    assert not remove_if_empty(str(upper), "/a/link")  # a link is no stub, nor its target
    assert not remove_if_empty(str(upper), "/a/missing")
    assert (upper / "a" / "link").is_symlink() and (tmp_path / "elsewhere").is_dir()


def test_chain_bound_is_linux_40(root):
    """41 links in one resolution is ELOOP (Linux's MAXSYMLINKS), 40 is fine — also when the
    links are `../../..` that climb to the root and are met again (the hypothesis find of the
    self-copy: no recursion anywhere, one clear error)."""
    os.symlink("../../..", root / "up")
    assert resolve_in_root(str(root), "/" + "/".join(["up"] * 40)) == str(root)
    with pytest.raises(MasonError, match="too many levels of symbolic links"):
        resolve_in_root(str(root), "/" + "/".join(["up"] * 41))
    prev = "/etc"
    for i in range(41):
        os.symlink(prev, root / f"c{i}")
        prev = f"/c{i}"
    assert resolve_in_root(str(root), "/c39/passwd") == str(root / "etc/passwd")
    with pytest.raises(MasonError, match="too many levels of symbolic links"):
        resolve_in_root(str(root), "/c40/passwd")
