"""FileOp actions and their flags, on temporary directories (run as root so chown works)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile

import pytest

from mason.backends.solver.fileop import execute_fileop, output_base, parse_mode_str
from mason.ir.errors import MasonError
from mason.ir.ops import ChownOpt, Copy, FileAction, FileOp, MkDir, MkFile, Rm, Symlink, UserOpt
from tests.backends.solver.fileop_helpers import run

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


@pytest.fixture
def src(tmp_path):
    s = tmp_path / "src"
    (s / "dir" / "sub").mkdir(parents=True)
    (s / "dir" / "a.txt").write_text("a")
    (s / "dir" / "sub" / "b.txt").write_text("b")
    (s / "dir" / "skip.log").write_text("log")
    (s / "one.txt").write_text("one")
    (s / "two.txt").write_text("two")
    (s / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(s / "run.sh", 0o755)
    os.symlink("one.txt", s / "link")
    os.symlink("dir", s / "dirlink")
    os.utime(s / "one.txt", ns=(5_000_000_000, 5_000_000_000))
    if os.geteuid() == 0:
        os.chown(s / "two.txt", 123, 456)
    return s


@pytest.fixture
def base(tmp_path):
    b = tmp_path / "base"
    (b / "etc").mkdir(parents=True)
    (b / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (b / "etc/group").write_text("root:x:0:\nstaff:x:50:\n")
    (b / "existing").mkdir()
    return b


def cp(s, d, **kw):
    return Copy(src=s, dest=d, create_dest_path=kw.pop("create_dest_path", True), **kw)


# -- copy basics

def test_copy_file(tmp_path, src, base):
    out = run(tmp_path, [cp("/one.txt", "/new.txt")], base=base, src=src)
    assert open(f"{out}/new.txt").read() == "one"
    assert os.stat(f"{out}/new.txt").st_mtime_ns == 5_000_000_000


def test_copy_into_existing_dir_and_trailing_slash(tmp_path, src, base):
    out = run(tmp_path, [cp("/one.txt", "/existing"), cp("/two.txt", "/made/")], base=base, src=src)
    assert open(f"{out}/existing/one.txt").read() == "one"
    assert open(f"{out}/made/two.txt").read() == "two"


def test_copy_dir_itself_vs_contents(tmp_path, src, base):
    out = run(tmp_path, [cp("/dir", "/existing"), cp("/dir", "/contents", dir_copy_contents=True),
                         cp("/dir", "/existing2", dir_copy_contents=True)], base=base, src=src)
    assert open(f"{out}/existing/dir/a.txt").read() == "a"
    assert open(f"{out}/contents/sub/b.txt").read() == "b"
    assert sorted(os.listdir(f"{out}/existing2")) == ["a.txt", "skip.log", "sub"]


def test_copy_dir_to_new_path(tmp_path, src, base):
    out = run(tmp_path, [cp("/dir", "/new")], base=base, src=src)
    assert sorted(os.listdir(f"{out}/new")) == ["a.txt", "skip.log", "sub"]


def test_symlinks_preserved_unless_followed(tmp_path, src, base):
    out = run(tmp_path, [cp("/link", "/l1"), cp("/link", "/l2", follow_symlink=True),
                         cp("/dirlink", "/d", follow_symlink=True)], base=base, src=src)
    assert os.readlink(f"{out}/l1") == "one.txt"
    assert not os.path.islink(f"{out}/l2") and open(f"{out}/l2").read() == "one"
    assert open(f"{out}/d/a.txt").read() == "a"


@root_only
def test_owner_preserved_by_default_and_by_id(tmp_path, src, base):
    out = run(tmp_path, [cp("/two.txt", "/keep"),
                         cp("/two.txt", "/byid", owner=ChownOpt(UserOpt(id=7))),
                         cp("/dir", "/byids", owner=ChownOpt(UserOpt(id=7), UserOpt(id=8)))],
              base=base, src=src)
    assert (os.stat(f"{out}/keep").st_uid, os.stat(f"{out}/keep").st_gid) == (123, 456)
    assert (os.stat(f"{out}/byid").st_uid, os.stat(f"{out}/byid").st_gid) == (7, 7)
    for p in ["byids", "byids/sub", "byids/sub/b.txt"]:
        assert (os.stat(f"{out}/{p}").st_uid, os.stat(f"{out}/{p}").st_gid) == (7, 8)


@root_only
def test_owner_by_name_from_dest_root(tmp_path, src, base):
    out = run(tmp_path, [cp("/one.txt", "/u", owner=ChownOpt(UserOpt(name="app", name_input=0))),
                         cp("/one.txt", "/ug", owner=ChownOpt(UserOpt(name="app"), UserOpt(name="staff"))),
                         MkDir("/wd", owner=ChownOpt(UserOpt(name="app"))),
                         MkFile("/f", data=b"x", owner=ChownOpt(UserOpt(name="app"))),
                         Symlink("/f", "/s", owner=ChownOpt(UserOpt(id=3)))], base=base, src=src)
    assert (os.stat(f"{out}/u").st_uid, os.stat(f"{out}/u").st_gid) == (1000, 1001)
    assert (os.stat(f"{out}/ug").st_uid, os.stat(f"{out}/ug").st_gid) == (1000, 50)
    assert os.stat(f"{out}/wd").st_uid == 1000 and os.stat(f"{out}/f").st_gid == 1001
    assert os.lstat(f"{out}/s").st_uid == 3


def test_owner_unknown_name(tmp_path, src, base):
    with pytest.raises(MasonError) as e:
        run(tmp_path, [cp("/one.txt", "/u", owner=ChownOpt(UserOpt(name="ghost")))], base=base, src=src)
    assert e.value.message == ("copy /one.txt /u: unable to find user ghost: "
                               "no matching entries in passwd file")


def test_mode_octal_and_symbolic(tmp_path, src, base):
    out = run(tmp_path, [cp("/one.txt", "/o", mode=0o600), cp("/run.sh", "/r", mode_str="go-rx"),
                         cp("/dir", "/d", mode_str="u=rwX,go=rX"), cp("/dir", "/d2", mode=0o700)],
              base=base, src=src)
    assert stat.S_IMODE(os.stat(f"{out}/o").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(f"{out}/r").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(f"{out}/d").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(f"{out}/d/a.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(f"{out}/d2/sub/b.txt").st_mode) == 0o700


@pytest.mark.parametrize("text, mode, is_dir, want", [
    ("u+x", 0o644, False, 0o744), ("g-w,o-r", 0o664, False, 0o640), ("a=rX", 0o755, False, 0o555),
    ("a=rX", 0o644, False, 0o444), ("a=rX", 0o600, True, 0o555), ("+x", 0o600, False, 0o711),
    ("u=g", 0o750, False, 0o550), ("u+s", 0o755, False, 0o4755), ("o+t", 0o777, True, 0o1777),
    ("755", 0o600, False, 0o755), ("u+x,u-x,g=w", 0o644, False, 0o624),
])
def test_parse_mode_str(text, mode, is_dir, want):
    assert parse_mode_str(text)(mode, is_dir) == want


def test_bad_mode_str():
    with pytest.raises(MasonError, match="invalid mode string"):
        parse_mode_str("u+q")


def test_timestamp(tmp_path, src, base):
    ts = 1_600_000_000_123_456_789
    out = run(tmp_path, [cp("/dir", "/d", timestamp=ts), cp("/link", "/l", timestamp=ts),
                         MkFile("/f", timestamp=ts), MkDir("/m", timestamp=ts),
                         Symlink("x", "/s", timestamp=ts)], base=base, src=src)
    for p in ["d", "d/sub", "d/sub/b.txt", "f", "m"]:
        assert os.stat(f"{out}/{p}").st_mtime_ns == ts, p
    assert os.lstat(f"{out}/l").st_mtime_ns == ts and os.lstat(f"{out}/s").st_mtime_ns == ts


# -- wildcards

def test_wildcards(tmp_path, src, base):
    out = run(tmp_path, [cp("/*.txt", "/w/", allow_wildcard=True),
                         cp("/d?r/*.txt", "/w2/", allow_wildcard=True),
                         cp("/[ot]*.txt", "/w3/", allow_wildcard=True)], base=base, src=src)
    assert sorted(os.listdir(f"{out}/w")) == ["one.txt", "two.txt"]
    assert os.listdir(f"{out}/w2") == ["a.txt"]
    assert sorted(os.listdir(f"{out}/w3")) == ["one.txt", "two.txt"]


def test_empty_wildcard(tmp_path, src, base):
    out = run(tmp_path, [cp("/*.none", "/w/", allow_wildcard=True, allow_empty_wildcard=True)],
              base=base, src=src)
    assert not os.path.exists(f"{out}/w")
    with pytest.raises(MasonError) as e:
        run(tmp_path, [cp("/*.none", "/w/", allow_wildcard=True)], base=base, src=src, name="o2")
    assert "file not found in build context" in e.value.message and "/*.none" in e.value.message


def test_missing_source(tmp_path, src, base):
    with pytest.raises(MasonError) as e:
        run(tmp_path, [cp("/nope", "/x")], base=base, src=src)
    assert e.value.message == ("copy /nope /x: file not found in build context or excluded by "
                               ".dockerignore: stat /nope: file does not exist")


def test_create_dest_path_false(tmp_path, src, base):
    with pytest.raises(MasonError, match="failed to stat /a/b/c"):
        run(tmp_path, [cp("/one.txt", "/a/b/c", create_dest_path=False)], base=base, src=src)
    out = run(tmp_path, [cp("/one.txt", "/existing/c", create_dest_path=False)], base=base, src=src,
              name="o2")
    assert os.path.isfile(f"{out}/existing/c")


# -- include / exclude

def test_include_exclude(tmp_path, src, base):
    out = run(tmp_path, [cp("/dir", "/i", include_patterns=("sub/*.txt",)),
                         cp("/dir", "/e", exclude_patterns=("*.log",)),
                         cp("/dir", "/ie", include_patterns=("*.txt", "sub"), exclude_patterns=("sub/b.txt",))],
              base=base, src=src)
    assert [os.path.relpath(os.path.join(d, f), f"{out}/i") for d, _, fs in os.walk(f"{out}/i") for f in fs] == ["sub/b.txt"]
    assert sorted(os.listdir(f"{out}/e")) == ["a.txt", "sub"]
    assert sorted(os.listdir(f"{out}/ie")) == ["a.txt", "sub"]
    assert os.listdir(f"{out}/ie/sub") == []


def test_exclude_with_exception(tmp_path, src, base):
    out = run(tmp_path, [cp("/dir", "/e", exclude_patterns=("sub", "!sub/b.txt", "*.log"))],
              base=base, src=src)
    assert sorted(os.listdir(f"{out}/e")) == ["a.txt", "sub"]


def test_replace_existing(tmp_path, src, base):
    (base / "existing" / "one.txt").mkdir()
    with pytest.raises(MasonError, match="cannot replace to directory /existing/one.txt with file"):
        run(tmp_path, [cp("/one.txt", "/existing/")], base=base, src=src)
    out = run(tmp_path, [cp("/one.txt", "/existing/", always_replace_existing=True)], base=base,
              src=src, name="o2")
    assert open(f"{out}/existing/one.txt").read() == "one"
    (base / "existing" / "dir").write_text("file")
    with pytest.raises(MasonError, match="cannot copy to non-directory"):
        run(tmp_path, [cp("/dir", "/existing/")], base=base, src=src, name="o3")
    out = run(tmp_path, [cp("/dir", "/existing/", always_replace_existing=True)], base=base,
              src=src, name="o4")
    assert os.path.isdir(f"{out}/existing/dir/sub")


def test_hardlinks_kept_in_copy(tmp_path, src, base):
    os.link(src / "one.txt", src / "dir" / "hl")
    os.link(src / "one.txt", src / "dir" / "hl2")
    out = run(tmp_path, [cp("/dir", "/d")], base=base, src=src)
    assert os.stat(f"{out}/d/hl").st_ino == os.stat(f"{out}/d/hl2").st_ino
    assert os.stat(f"{out}/d/hl").st_ino != os.stat(src / "one.txt").st_ino


def test_required_paths(tmp_path, src, base):
    """Required paths are named from the input's root, not from the copy's source (BuildKit's
    ``COPY --parents ./dir/./sub/b.txt`` copies /dir and requires /dir/sub/b.txt)."""
    out = run(tmp_path, [cp("/dir", "/d", include_patterns=("sub/b.txt",), required_paths=("/dir/sub/b.txt",))],
              base=base, src=src)
    assert os.path.isfile(f"{out}/d/sub/b.txt")
    with pytest.raises(MasonError, match="required path /dir/nope not found"):
        run(tmp_path, [cp("/dir", "/d", required_paths=("/dir/a.txt", "/dir/nope"))], base=base, src=src, name="o2")
    with pytest.raises(MasonError, match="required path sub/b.txt not found"):  # not from /dir
        run(tmp_path, [cp("/dir", "/d", required_paths=("sub/b.txt",))], base=base, src=src, name="o3")


# -- unpack

def _tarbytes(compress):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("pkg/hello.txt")
        ti.size, ti.uid, ti.gid = 5, 11, 12
        tf.addfile(ti, io.BytesIO(b"hello"))
    return compress(buf.getvalue())


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, bz2.compress, lzma.compress],
                         ids=["plain", "gzip", "bzip2", "xz"])
def test_unpack(tmp_path, src, base, compress):
    (src / "a.tar").write_bytes(_tarbytes(compress))
    out = run(tmp_path, [cp("/a.tar", "/opt/", attempt_unpack=True)], base=base, src=src)
    assert open(f"{out}/opt/pkg/hello.txt").read() == "hello"
    if os.geteuid() == 0:
        assert os.stat(f"{out}/opt/pkg/hello.txt").st_uid == 11


def test_unpack_non_archive_copied(tmp_path, src, base):
    (src / "fake.tar.gz").write_bytes(b"\x1f\x8bnot really gzip")
    out = run(tmp_path, [cp("/one.txt", "/opt/", attempt_unpack=True),
                         cp("/fake.tar.gz", "/opt/", attempt_unpack=True)], base=base, src=src)
    assert open(f"{out}/opt/one.txt").read() == "one"
    assert os.path.isfile(f"{out}/opt/fake.tar.gz")


def test_unpack_off_copies_archive(tmp_path, src, base):
    (src / "a.tar").write_bytes(_tarbytes(lambda b: b))
    out = run(tmp_path, [cp("/a.tar", "/opt/")], base=base, src=src)
    assert os.path.isfile(f"{out}/opt/a.tar")


# -- mkfile, mkdir, rm, symlink

def test_mkfile(tmp_path, base):
    out = run(tmp_path, [MkFile("/f", 0o640, b"data"), MkFile("/etc/passwd", 0o600, b"new")], base=base)
    assert open(f"{out}/f", "rb").read() == b"data"
    assert stat.S_IMODE(os.stat(f"{out}/f").st_mode) == 0o640
    assert open(f"{out}/etc/passwd").read() == "new"
    assert stat.S_IMODE(os.stat(f"{out}/etc/passwd").st_mode) == 0o644  # mode kept when overwriting
    with pytest.raises(MasonError, match="mkfile /no/f: No such file or directory"):
        run(tmp_path, [MkFile("/no/f")], base=base, name="o2")


def test_mkdir(tmp_path, base):
    out = run(tmp_path, [MkDir("/a/b/c", 0o700, make_parents=True), MkDir("/x", 0o711),
                         MkDir("/x", 0o755), MkDir("/existing", 0o700, make_parents=True)], base=base)
    assert stat.S_IMODE(os.stat(f"{out}/a/b/c").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(f"{out}/a").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(f"{out}/x").st_mode) == 0o711
    assert stat.S_IMODE(os.stat(f"{out}/existing").st_mode) == 0o755
    with pytest.raises(MasonError, match="mkdir /q/r"):
        run(tmp_path, [MkDir("/q/r")], base=base, name="o2")
    with pytest.raises(MasonError, match="mkdir /etc/passwd/x"):
        run(tmp_path, [MkDir("/etc/passwd/x", make_parents=True)], base=base, name="o3")


def test_rm(tmp_path, base):
    (base / "existing" / "f1.log").write_text("")
    (base / "existing" / "f2.log").write_text("")
    (base / "existing" / "keep").write_text("")
    out = run(tmp_path, [Rm("/etc"), Rm("/nope", allow_not_found=True),
                         Rm("/existing/*.log", allow_wildcard=True)], base=base)
    assert not os.path.exists(f"{out}/etc")
    assert os.listdir(f"{out}/existing") == ["keep"]
    with pytest.raises(MasonError) as e:
        run(tmp_path, [Rm("/nope")], base=base, name="o2")
    assert e.value.message == "rm /nope: /nope: no such file or directory"
    with pytest.raises(MasonError, match="cannot remove the root"):
        run(tmp_path, [Rm("/")], base=base, name="o3")


def test_rm_symlink_not_target(tmp_path, base):
    os.symlink("/etc", base / "l")
    out = run(tmp_path, [Rm("/l")], base=base)
    assert os.path.isfile(f"{out}/etc/passwd") and not os.path.lexists(f"{out}/l")


def test_symlink(tmp_path, base):
    out = run(tmp_path, [Symlink("/etc/passwd", "/pw"), Symlink("../x", "/existing/rel")], base=base)
    assert os.readlink(f"{out}/pw") == "/etc/passwd"
    assert os.readlink(f"{out}/existing/rel") == "../x"
    with pytest.raises(MasonError, match="File exists"):
        run(tmp_path, [Symlink("x", "/etc")], base=base, name="o2")


def test_scratch_base(tmp_path):
    out = run(tmp_path, [MkDir("/a"), MkFile("/a/f", data=b"1")])
    assert os.listdir(out) == ["a"]


# -- chains and the solver contract

def test_chain_secondary_from_action(tmp_path, base):
    """Action 0 builds a tree from scratch, action 1 edits input 0, action 2 copies from
    action 0's result into action 1's."""
    op = FileOp(actions=(
        FileAction(-1, -1, -1, MkDir("/made", make_parents=True)),
        FileAction(0, -1, -1, MkFile("/edited", data=b"e")),
        FileAction(2, 1, 0, Copy(src="/made", dest="/copied", create_dest_path=True)),
    ))
    assert output_base(op, 1) == 0
    dest = tmp_path / "dest"
    from mason.backends.solver.fileop import copy_tree
    dest.mkdir()
    copy_tree(str(base), str(dest))
    out = execute_fileop(op, [str(base)], None, str(dest))
    assert out == str(dest)
    assert sorted(os.listdir(dest)) == ["copied", "edited", "etc", "existing"]
    assert not os.path.exists(base / "edited")  # inputs are never written


def test_chain_result_read_after_being_modified_is_forked(tmp_path, base):
    """Action 1 modifies action 0's result in place, but action 2 reads action 0's result:
    it must see the state before action 1."""
    op = FileOp(actions=(
        FileAction(0, -1, -1, MkFile("/v", data=b"first")),
        FileAction(1, -1, -1, MkFile("/v", data=b"second")),
        FileAction(2, 1, 0, Copy(src="/v", dest="/from0", create_dest_path=True)),
    ))
    out = execute_fileop(op, [str(base)])
    assert open(f"{out}/v").read() == "second"
    assert open(f"{out}/from0").read() == "first"


def test_without_dest_root_copies_base(tmp_path, base):
    made = []

    def factory():
        d = tmp_path / f"s{len(made)}"
        d.mkdir()
        made.append(d)
        return str(d)

    op = FileOp(actions=(FileAction(0, -1, -1, MkDir("/side")),
                         FileAction(0, 1, 0, Copy(src="/side", dest="/got", create_dest_path=True))))
    out = execute_fileop(op, [str(base)], factory)
    assert os.path.isdir(f"{out}/got") and os.path.isfile(f"{out}/etc/passwd")
    assert [p for p in made if p.exists()] == [tmp_path / "s0"]  # scratch dirs cleaned up
    assert not (base / "side").exists()


def test_bad_action_index(tmp_path, base):
    op = FileOp(actions=(FileAction(2, -1, 0, MkDir("/x")),))
    with pytest.raises(MasonError, match="does not run before it"):
        execute_fileop(op, [str(base)])
