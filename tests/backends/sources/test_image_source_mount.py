"""Mounting snapshots' mount lists: bind, read-only, and overlays whose options exceed a page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mason.backends.containerd.client import Mount
from mason.backends.sources.mount import mount_all, unmount

pytestmark = pytest.mark.integration  # needs root and mount(2)


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def test_readonly_bind(tmp_path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "f").write_text("x")
    mount_all([Mount("bind", str(src), ("rbind", "ro"))], dst)
    try:
        assert (dst / "f").read_text() == "x"
        with pytest.raises(OSError):
            (dst / "g").write_text("y")
    finally:
        unmount(dst)
    assert not _mounted(dst)
    unmount(dst)  # unmounting what is not mounted is fine


def test_overlay_with_more_options_than_a_page(tmp_path) -> None:
    base = tmp_path / ("snapshots-" + "x" * 60)
    lowers = []
    for i in range(80):  # 80 paths of ~100+ bytes: well over 4096
        d = base / str(i) / "fs"
        d.mkdir(parents=True)
        (d / f"layer{i}").write_text(str(i))
        lowers.append(str(d))
    upper, work, dst = base / "up" / "fs", base / "up" / "work", tmp_path / "dst"
    for d in (upper, work, dst):
        d.mkdir(parents=True)
    opts = ("index=off", f"workdir={work}", f"upperdir={upper}", "lowerdir=" + ":".join(reversed(lowers)))
    assert len(",".join(opts)) > os.sysconf("SC_PAGE_SIZE")
    mount_all([Mount("overlay", "overlay", opts)], dst)
    try:
        assert {p.name for p in dst.iterdir()} == {f"layer{i}" for i in range(80)}
        (dst / "new").write_text("n")
        assert (upper / "new").read_text() == "n"
    finally:
        unmount(dst)
    assert not _mounted(dst)
