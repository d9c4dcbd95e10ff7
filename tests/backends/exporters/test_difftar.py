"""The reproducible layer writer on plain directories (no daemons)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time
from pathlib import Path

from mason.backends.exporters.difftar import write_diff, write_gzip_diff


def _tree(root: Path) -> None:
    (root / "keep").mkdir(parents=True)
    (root / "keep" / "same.txt").write_text("same\n")
    (root / "gone").mkdir()
    (root / "gone" / "a").write_text("a")
    (root / "gone" / "b").write_text("b")
    (root / "file_then_dir").write_text("f")
    (root / "dir_then_file").mkdir()
    (root / "dir_then_file" / "x").write_text("x")
    (root / "edit.txt").write_text("old\n")
    os.utime(root / "keep" / "same.txt", (1_500_000_000, 1_500_000_000))


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_changes_whiteouts_type_changes_and_hardlinks(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _tree(lower)
    shutil.copytree(lower, upper, symlinks=True)  # copy2 keeps mtimes: nothing differs yet
    shutil.rmtree(upper / "gone")
    (upper / "file_then_dir").unlink()
    (upper / "file_then_dir").mkdir()
    (upper / "file_then_dir" / "in").write_text("in")
    shutil.rmtree(upper / "dir_then_file")
    (upper / "dir_then_file").write_text("now a file")
    (upper / "edit.txt").write_text("new\n")
    (upper / "new").mkdir()
    (upper / "new" / "one").write_text("1")
    os.link(upper / "new" / "one", upper / "new" / "two")
    for p in (upper, upper / "new"):
        os.utime(p, (1_000, 1_000))

    buf = io.BytesIO()
    write_diff(str(lower), str(upper), buf, epoch=2_000)
    members = _members(buf.getvalue())
    names = [m.name for m in members]
    assert names == ["dir_then_file", "edit.txt", "file_then_dir", "file_then_dir/in", ".wh.gone", "new",
                     "new/one", "new/two"]
    byname = {m.name: m for m in members}
    assert byname["file_then_dir"].isdir() and byname["dir_then_file"].isfile()
    assert byname["new/two"].islnk() and byname["new/two"].linkname == "new/one"
    assert byname["new"].mtime == 1_000  # older than the epoch: kept
    assert byname["edit.txt"].mtime == 2_000  # newer: clamped

    # the same trees give the same bytes; so does a copy made later (mtimes clamped)
    again = io.BytesIO()
    write_diff(str(lower), str(upper), again, epoch=2_000)
    assert again.getvalue() == buf.getvalue()


def test_gzip_diff_is_deterministic_and_identical_trees_give_an_empty_layer(tmp_path: Path) -> None:
    lower = tmp_path / "l"
    _tree(lower)
    outs = []
    for _ in range(2):
        up = tmp_path / f"u{len(outs)}"
        shutil.copytree(lower, up, symlinks=True)
        (up / "made").write_text("made\n")
        os.utime(up, (1, 1))
        time.sleep(0.05)
        b = io.BytesIO()
        outs.append((write_gzip_diff(str(lower), str(up), b, epoch=10), b.getvalue()))
    assert outs[0] == outs[1]
    empty = io.BytesIO()
    write_diff(str(lower), str(lower), empty)
    assert _members(empty.getvalue()) == [] and set(empty.getvalue()) == {0}
