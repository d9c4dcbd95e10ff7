"""Hostile trees and paths: no FileOp may read or write anything outside its roots."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mason.backends.solver.fileop import execute_fileop
from mason.ir.errors import MasonError
from mason.ir.ops import ChownOpt, Copy, FileAction, FileOp, MkDir, MkFile, Rm, Symlink, UserOpt
from tests.backends.solver.fileop_helpers import run, snapshot


def _host_passwd():
    with open("/etc/passwd", "rb") as f:
        return hashlib.sha256(f.read()).hexdigest(), os.stat("/etc/passwd").st_nlink


@pytest.fixture
def world(tmp_path):
    """``outside`` (must never change), ``base`` (dest input) and ``src`` (copy source) full of
    links that point out of their roots."""
    out = tmp_path / "outside"
    (out / "dir").mkdir(parents=True)
    (out / "secret").write_text("host secret")
    base = tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (base / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\n")
    os.symlink(str(out), base / "abs")           # absolute link to a host dir
    os.symlink("/etc", base / "etclink")          # would be the host's /etc
    os.symlink("../../../../../..", base / "up")  # climbs far above the root
    os.symlink(str(out / "secret"), base / "pw")  # final component to a host file
    os.symlink("/proc/self/root" + str(out), base / "p")
    os.symlink("loop2", base / "loop1")
    os.symlink("loop1", base / "loop2")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "ok").write_text("ok")
    os.symlink(str(out / "secret"), src / "d" / "hostlink")
    os.symlink(str(out), src / "outdir")
    os.symlink("../../outside", src / "reloutdir")
    before = (snapshot(out), _host_passwd())
    yield tmp_path, base, src, out
    assert (snapshot(out), _host_passwd()) == before, "something outside the roots changed"


def rel(out):
    return str(out).lstrip("/")


def test_dest_abs_symlink_dir(world):
    tmp, base, src, out = world
    res = run(tmp, [Copy(src="/d/ok", dest="/abs/dropped", create_dest_path=True)], base=base, src=src)
    assert open(f"{res}/{rel(out)}/dropped").read() == "ok"


def test_dest_symlink_to_etc(world):
    tmp, base, src, out = world
    res = run(tmp, [MkFile("/etclink/passwd", data=b"pwned")], base=base)
    assert open(f"{res}/etc/passwd").read() == "pwned"


def test_dotdot_chain(world):
    tmp, base, src, out = world
    res = run(tmp, [MkDir("/../.." + str(out), make_parents=True),
                    MkFile("/../../../../.." + str(out) + "/secret", data=b"x"),
                    MkDir("/../../../x", make_parents=True)], base=base)
    assert open(f"{res}/{rel(out)}/secret").read() == "x" and os.path.isdir(f"{res}/x")


def test_link_to_far_parent(world):
    tmp, base, src, out = world
    res = run(tmp, [MkDir("/up/up/" + rel(out) + "/new", make_parents=True),
                    Symlink("/anything", "/up/newlink")], base=base)
    assert os.path.isdir(f"{res}/{rel(out)}/new") and os.path.islink(f"{res}/newlink")


def test_self_referential_proc_link_is_a_loop(world):
    tmp, base, src, out = world
    os.symlink("/proc/self/root/etc", base / "proc")
    with pytest.raises(MasonError, match="too many levels of symbolic links"):
        run(tmp, [MkFile("/proc/passwd", data=b"x")], base=base)


def test_symlink_loop(world):
    tmp, base, src, out = world
    with pytest.raises(MasonError, match="too many levels of symbolic links"):
        run(tmp, [MkFile("/loop1/x", data=b"x")], base=base)


def test_final_dest_link_to_host_file(world):
    tmp, base, src, out = world
    res = run(tmp, [Copy(src="/d/ok", dest="/pw", create_dest_path=True),
                    MkDir("/p", make_parents=True), MkFile("/p/f", data=b"y")], base=base, src=src)
    assert open(f"{res}/{rel(out)}/secret").read() == "ok"
    assert open(f"{res}/proc/self/root/{rel(out)}/f").read() == "y"


def test_source_dir_with_outward_link_copies_link(world):
    tmp, base, src, out = world
    res = run(tmp, [Copy(src="/d", dest="/got", create_dest_path=True)], base=base, src=src)
    assert os.readlink(f"{res}/got/hostlink") == str(out / "secret")


@pytest.mark.parametrize("path", ["/outdir/secret", "/reloutdir/secret", "/d/hostlink"])
def test_copy_through_outward_source_link(world, path):
    tmp, base, src, out = world
    with pytest.raises(MasonError, match="file not found"):
        run(tmp, [Copy(src=path, dest="/x", create_dest_path=True, follow_symlink=True)],
            base=base, src=src)


def test_wildcard_through_outward_link(world):
    tmp, base, src, out = world
    res = run(tmp, [Copy(src="/outdir/*", dest="/w/", create_dest_path=True, allow_wildcard=True,
                         allow_empty_wildcard=True, follow_symlink=True)], base=base, src=src)
    assert not os.path.exists(f"{res}/w")


def test_rm_through_links(world):
    tmp, base, src, out = world
    res = run(tmp, [Rm("/abs/secret", allow_not_found=True), Rm("/abs/*", allow_wildcard=True),
                    Rm("/pw"), Rm("/up/abs")], base=base)
    assert not os.path.lexists(f"{res}/pw") and not os.path.lexists(f"{res}/abs")


def _tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(arg)
                tf.addfile(ti, io.BytesIO(arg))
            else:
                ti.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
                ti.linkname = arg
                tf.addfile(ti)
    return buf.getvalue()


@pytest.mark.parametrize("entries", [
    [("../../outside/secret", "file", b"pwned")],
    [("a/../../../x", "file", b"pwned")],
    [("h", "hard", "../../outside/secret")],
])
def test_add_tar_breakout_refused(world, entries):
    tmp, base, src, out = world
    (src / "evil.tar").write_bytes(_tar(entries))
    with pytest.raises(MasonError, match="escapes"):
        run(tmp, [Copy(src="/evil.tar", dest="/x/", create_dest_path=True, attempt_unpack=True)],
            base=base, src=src)


def test_add_tar_absolute_and_write_through_link(world):
    tmp, base, src, out = world
    (src / "evil.tar").write_bytes(_tar([
        (str(out / "secret"), "file", b"pwned"),
        ("l", "sym", str(out)), ("l/secret", "file", b"pwned"),
        ("e", "sym", "/etc"), ("e/passwd", "file", b"pwned"),
        ("h", "hard", "/etc/passwd"),
    ]))
    res = run(tmp, [Copy(src="/evil.tar", dest="/x/", create_dest_path=True, attempt_unpack=True)],
              base=base, src=src)
    assert open(f"{res}/x/{rel(out)}/secret").read() == "pwned"
    assert open(f"{res}/x/etc/passwd").read() == "pwned"
    assert os.stat(f"{res}/x/h").st_ino == os.stat(f"{res}/x/etc/passwd").st_ino


def test_add_tar_symlink_above_dest_then_writes_stay_inside(world):
    """Issue 11: an archive's symlink pointing above the ADD destination is extracted as a
    symlink; entries written through it, and later copies, mkdirs, files and chowns through it,
    all land inside the snapshot."""
    tmp, base, src, out = world
    up = "../" * 12 + rel(out)  # from /x/up: far above /x, to the host's outside dir
    (src / "evil.tar").write_bytes(_tar([("up", "sym", up), ("up/secret", "file", b"pwned"),
                                         ("up/dir/new", "file", b"pwned")]))
    own = ChownOpt(user=UserOpt(id=1234), group=UserOpt(id=1234))
    res = run(tmp, [Copy(src="/evil.tar", dest="/x/", create_dest_path=True, attempt_unpack=True),
                    Copy(src="/d/ok", dest="/x/up/copied", create_dest_path=True, owner=own),
                    MkDir("/x/up/made/deep", make_parents=True, owner=own),
                    MkFile("/x/up/made/f", data=b"y", owner=own),
                    Copy(src="/d", dest="/x/up/dir/", create_dest_path=True, owner=own,
                         dir_copy_contents=True)],
              base=base, src=src)
    assert os.readlink(f"{res}/x/up") == up
    # extraction re-roots at the destination (a chroot at /x, as BuildKit's unpack does)
    assert open(f"{res}/x/{rel(out)}/secret").read() == "pwned"
    assert open(f"{res}/x/{rel(out)}/dir/new").read() == "pwned"
    # later operations resolve in the snapshot root: ../.. stops at its /
    assert open(f"{res}/{rel(out)}/copied").read() == "ok"
    assert os.stat(f"{res}/{rel(out)}/copied").st_uid == 1234
    assert os.path.isdir(f"{res}/{rel(out)}/made/deep")
    assert open(f"{res}/{rel(out)}/made/f").read() == "y"
    assert os.stat(f"{res}/{rel(out)}/dir/ok").st_uid == 1234


def test_add_tar_into_linked_dest(world):
    tmp, base, src, out = world
    (src / "ok.tar").write_bytes(_tar([("secret", "file", b"pwned")]))
    res = run(tmp, [Copy(src="/ok.tar", dest="/abs", create_dest_path=True, attempt_unpack=True)],
              base=base, src=src)
    assert open(f"{res}/{rel(out)}/secret").read() == "pwned"


# -- property: random action sequences on hostile trees stay inside

_names = st.sampled_from(["a", "b", "abs", "up", "etclink", "pw", "p", "loop1", "..", ".", "d",
                          "x*", "etc", "secret", "outdir", "reloutdir", "hostlink", "*"])
_paths = st.lists(_names, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
_actions = st.one_of(
    st.builds(MkFile, path=_paths, data=st.just(b"z")),
    st.builds(MkDir, path=_paths, make_parents=st.booleans()),
    st.builds(Rm, path=_paths, allow_not_found=st.booleans(), allow_wildcard=st.booleans()),
    st.builds(Symlink, oldpath=st.sampled_from(["/", "..", "/etc", "../../.."]), newpath=_paths),
    st.builds(Copy, src=_paths, dest=_paths, create_dest_path=st.booleans(),
              follow_symlink=st.booleans(), allow_wildcard=st.booleans(),
              allow_empty_wildcard=st.booleans(), dir_copy_contents=st.booleans()),
)


# found by hypothesis: the copy reads the tree it writes (both are action 1's result), and the
# source `..` through the new links is that tree's root: it used to be walked while it grew
# (RecursionError)
_SELF_COPY = [Symlink("../../..", "/hostlink"), Symlink("../../..", "/etclink/d/a/.."),
              Copy(src="/etclink/d/a/..", dest="/etclink/d/a/..", follow_symlink=True)]


@settings(max_examples=int(os.environ.get("MASON_HYPOTHESIS_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(_actions, min_size=1, max_size=6))
@example(actions=_SELF_COPY)
@example(actions=[*_SELF_COPY[:2], Copy(src="/etclink/d/a/..", dest="/etclink/d/a/..",
                                        follow_symlink=True, dir_copy_contents=True)])
def test_random_actions_never_escape(world, actions):
    tmp, base, src, out = world
    n = len(actions)
    op = FileOp(actions=tuple(
        FileAction(0 if k == 0 else 2 + k - 1, 1 if k % 2 else 2 + k - 1 if k else 1,
                   0 if k == n - 1 else -1, a) for k, a in enumerate(actions)))
    before = snapshot(tmp, skip={"dest"} | {p for p in os.listdir(tmp) if p.startswith("scratch")})
    made: list[str] = []

    def factory():
        made.append(tempfile.mkdtemp(prefix="scratch-", dir=tmp))
        return made[-1]

    try:
        execute_fileop(op, [str(base), str(src)], factory)
    except MasonError:
        pass
    finally:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
    after = snapshot(tmp, skip={"dest"} | {p for p in os.listdir(tmp) if p.startswith("scratch")})
    assert after == before  # inputs and the outside untouched


def _chained(actions):
    """Each action on the previous one's result, reading it as its copy source too."""
    return FileOp(actions=tuple(FileAction(0 if k == 0 else 2 + k - 1, 2 + k - 1 if k else 1,
                                           0 if k == len(actions) - 1 else -1, a)
                                for k, a in enumerate(actions)))


def _exec(tmp, op, base, src):
    return execute_fileop(op, [str(base), str(src)],
                          lambda: tempfile.mkdtemp(prefix="scratch-", dir=tmp))


def test_copy_of_the_tree_into_itself_reads_it_as_it_was(tmp_path):
    """A copy whose source is the tree it writes reads it as the earlier action left it (as
    BuildKit reads that action's immutable result): one level, no endless walk."""
    base = tmp_path / "base"
    (base / "d").mkdir(parents=True)
    (base / "d/f").write_text("f")
    (tmp_path / "src").mkdir()
    out = _exec(tmp_path, _chained([MkDir("/d/e", make_parents=True),
                                    Copy(src="/", dest="/d/e/", follow_symlink=True)]),
                base, tmp_path / "src")
    assert open(f"{out}/d/e/d/f").read() == "f"
    assert os.listdir(f"{out}/d/e/d/e") == []
    # a file copied onto itself stays whole
    out = _exec(tmp_path, _chained([MkFile("/g", data=b"g"), Copy(src="/g", dest="/g")]),
                base, tmp_path / "src")
    assert open(f"{out}/g").read() == "g"


def test_self_copy_through_links_from_hypothesis(world):
    """The hypothesis find as a plain test: one clean result, nothing outside touched."""
    tmp, base, src, out = world
    res = _exec(tmp, _chained(_SELF_COPY), base, src)
    # both paths are the root through the links; the source's basename is `d`: the root as
    # action 1 left it lands in /d once (not itself again below it), links kept as links
    assert open(f"{res}/d/etc/passwd").read() == "root:x:0:0::/:/bin/sh\n"
    assert os.readlink(f"{res}/d/hostlink") == os.readlink(f"{res}/etc/d") == "../../.."
    assert "d" not in os.listdir(f"{res}/d")


def test_a_tree_deeper_than_the_recursion_limit_copies(tmp_path):
    """Nested directories deeper than the recursion limit (a path well under PATH_MAX) are
    copied whole, not a RecursionError."""
    import sys

    depth = sys.getrecursionlimit() + 200
    src = tmp_path / "src"
    src.mkdir()
    try:  # the tree is removed however the test ends, its making included
        fd = os.open(src, os.O_RDONLY)
        try:
            for _ in range(depth):
                os.mkdir("d", dir_fd=fd)
                nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = nfd
            with open("f", "w", opener=lambda p, f: os.open(p, f, dir_fd=fd)) as fh:
                fh.write("deep")
        finally:
            os.close(fd)
        res = run(tmp_path, [Copy(src="/d", dest="/x", create_dest_path=True)], src=src)
        fd = os.open(res, os.O_RDONLY)
        try:
            for name in ["x"] + ["d"] * (depth - 1):
                nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = nfd
            with open("f", opener=lambda p, f: os.open(p, f, dir_fd=fd)) as fh:
                assert fh.read() == "deep"
        finally:
            os.close(fd)
    finally:  # GNU rm: shutil.rmtree (pytest's tmp_path clean-up) recurses too
        subprocess.run(["rm", "-rf", "--", *map(str, tmp_path.iterdir())], check=True)
