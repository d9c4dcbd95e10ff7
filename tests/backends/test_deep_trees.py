"""Trees deeper than Python's recursion limit (a build step makes one with a short shell loop):
every whole-tree operation mason runs on a build's content — removing a tree (FileOp rm and
overwrites, scratch directories, dead builds' directories), walking one (cache mount export,
layer diffs, local exports) — handles it; each was a RecursionError before (issue 11).

Every tree here is made in :func:`tests.fixtures.deeptree.deep_tmp` (outside pytest's basetemp,
removed with GNU ``rm -rf``): pytest's own clean-up would crash on one left behind."""

from __future__ import annotations

import errno
import io
import os
import resource
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from mason.backends.cache.mounts import _tar_dir, content_size
from mason.backends.exporters.difftar import write_diff
from mason.backends.exporters.local import copy_tree as local_copy_tree
from mason.backends.fstree import remove_at, remove_tree, walk
from mason.backends.solver.tmpdirs import new_build_dir, sweep_build_dirs
from mason.ir.ops import Copy, Rm
from tests.backends.solver.fileop_helpers import run
from tests.fixtures.deeptree import DEPTH, depth_of, make_deep

DEAD = "999999999:1"  # pid:starttime of no process


@contextmanager
def _few_fds(spare: int = 12):
    """Lower RLIMIT_NOFILE to just above the highest fd open now: code holding one fd per
    directory level gets EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(n) for n in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + spare, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _dir_fd(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    _opened.append(fd)
    return fd


_opened: list[int] = []


@pytest.fixture(autouse=True)
def _close_opened():
    yield
    while _opened:
        os.close(_opened.pop())


def test_remove_tree_any_depth_with_two_fds(deep_tmp):
    make_deep(deep_tmp)
    with _few_fds():
        remove_tree(deep_tmp / "d")
    assert os.listdir(deep_tmp) == []


def test_remove_never_follows_a_link_out(deep_tmp):
    outside = deep_tmp / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "keep").write_text("host")
    tree = deep_tmp / "tree"
    tree.mkdir()
    top = make_deep(tree)
    os.symlink(outside / "dir", top / "link")
    os.symlink(outside, top / "d" / "up")
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with _few_fds():
            remove_at(fd, "d")
    finally:
        os.close(fd)
    assert os.listdir(tree) == []
    assert (outside / "dir" / "keep").read_text() == "host"


def test_remove_tree_of_a_link_removes_the_link(deep_tmp):
    (deep_tmp / "target").mkdir()
    (deep_tmp / "target" / "f").write_text("x")
    os.symlink(deep_tmp / "target", deep_tmp / "link")
    remove_tree(deep_tmp / "link")
    remove_tree(deep_tmp / "missing")
    assert os.listdir(deep_tmp) == ["target"] and (deep_tmp / "target" / "f").read_text() == "x"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")
def test_one_filesystem_stops_at_a_mount(deep_tmp):
    top = make_deep(deep_tmp, 30)
    mnt = top.joinpath(*["d"] * 20, "mnt")
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "precious").write_text("on another filesystem")
        with pytest.raises(OSError) as e:
            remove_tree(top, one_filesystem=True)
        assert e.value.errno == errno.EXDEV
        assert (mnt / "precious").read_text() == "on another filesystem"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    remove_tree(top, one_filesystem=True)
    assert not top.exists()


def test_walk_any_depth_and_like_os_walk(deep_tmp):
    make_deep(deep_tmp)
    dirs = files = 0
    for _d, dn, fn in walk(str(deep_tmp)):
        dirs += len(dn)
        files += len(fn)
    assert dirs == DEPTH and files == (DEPTH - 1) // 10 + 1 + (1 if (DEPTH - 1) % 10 else 0)
    small = deep_tmp / "small"
    for rel in ["a/b/c", "a/x", "b", "c/d/e/f"]:
        (small / rel).mkdir(parents=True)
        (small / rel / "file").write_text(rel)
    os.symlink("a", small / "link")
    mine = [(d, sorted(dn), sorted(fn)) for d, dn, fn in walk(str(small))]
    theirs = [(d, sorted(x for x in dn if x != "link"), sorted(fn + (["link"] if "link" in dn else [])))
              for d, dn, fn in os.walk(str(small))]
    assert sorted(mine) == sorted(theirs)


def test_fileop_rm_and_overwrite_of_a_deep_tree(deep_tmp):
    base = deep_tmp / "base"
    base.mkdir()
    make_deep(base)
    (base / "keep").write_text("k")
    res = run(deep_tmp, [Rm("/d")], base=base)
    assert sorted(os.listdir(res)) == ["keep"]
    # a file copied into /d where /d/d is a deep directory replaces that whole tree
    src = deep_tmp / "src"
    src.mkdir()
    (src / "d").write_text("flat now")
    res2 = run(deep_tmp, [Copy(src="/d", dest="/d", always_replace_existing=True)], base=base, src=src,
               name="out2")
    assert Path(res2, "d", "d").read_text() == "flat now"
    assert sorted(os.listdir(Path(res2, "d"))) == ["d", "f"]


def test_layer_diff_of_a_deep_tree(deep_tmp):
    lower = deep_tmp / "lower"
    lower.mkdir()
    make_deep(lower)
    upper = deep_tmp / "upper"
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    buf = io.BytesIO()
    write_diff(None, str(upper), buf)
    names = [m.name.rstrip("/") for m in tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getmembers()]
    assert len([n for n in names if n.split("/")[-1] == "d"]) == DEPTH
    assert "/".join(["d"] * DEPTH + ["f"]) in names and names[-1] == "d/f"  # depth first, sorted
    # only the deepest file changes: it and the unchanged directories above it, nothing else
    fd = os.open("/".join(["d"] * DEPTH), os.O_RDONLY | os.O_DIRECTORY, dir_fd=_dir_fd(upper))
    wfd = os.open("f", os.O_WRONLY | os.O_TRUNC, dir_fd=fd)
    os.write(wfd, b"peed")
    os.close(wfd)
    os.utime("f", (1, 1), dir_fd=fd)
    os.close(fd)
    buf = io.BytesIO()
    write_diff(str(lower), str(upper), buf)
    members = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getmembers()
    assert len(members) == DEPTH + 1 and all(m.isdir() for m in members[:-1])
    assert members[-1].name == "/".join(["d"] * DEPTH + ["f"]) and members[-1].size == 4


def test_local_export_copy_of_a_deep_tree(deep_tmp):
    src = deep_tmp / "src"
    src.mkdir()
    make_deep(src)
    local_copy_tree(str(src), str(deep_tmp / "out"))
    assert depth_of(deep_tmp / "out" / "d") == (DEPTH, b"deep")
    (deep_tmp / "flat").mkdir()
    (deep_tmp / "flat" / "d").write_text("a file where the deep tree was")
    local_copy_tree(str(deep_tmp / "flat"), str(deep_tmp / "out"))  # replaces the tree
    assert (deep_tmp / "out" / "d").read_text() == "a file where the deep tree was"


def test_cache_mount_export_of_a_deep_tree(deep_tmp):
    make_deep(deep_tmp)
    files = (DEPTH - 1) // 10 + 1 + (1 if (DEPTH - 1) % 10 else 0)
    assert content_size(str(deep_tmp)) == 4 + (files - 1)
    buf = io.BytesIO()
    _tar_dir(str(deep_tmp), buf, None)
    members = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getmembers()
    assert len(members) == DEPTH + files
    assert [m.name for m in members[:2]] == ["d", "d/d"]  # depth first, as tarfile's own add


@pytest.mark.skipif(os.geteuid() != 0, reason="the sweep checks filesystems as root builds do")
def test_sweep_removes_a_dead_builds_deep_tree(deep_tmp):
    base = deep_tmp / "tmp"
    dead = new_build_dir(base, DEAD)
    make_deep(dead)
    assert sweep_build_dirs(base, lambda owner: False) == 1
    assert not dead.exists()
