"""Dead builds' scratch directories (issue 11: ``solver/tmp/build-*`` swept like leases): a
directory whose owner process is gone is removed, after what is mounted below it is unmounted —
a bind of another directory loses nothing of that directory — while a live build's directory,
a young old-style one and anything that is not a build directory stay."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from mason.backends.containerd.exec import _owner_alive, _process_identity
from mason.backends.solver.tmpdirs import new_build_dir, sweep_build_dirs

DEAD = "999999999:1"  # no such pid


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")
def test_sweep_removes_dead_builds_dirs_and_unmounts_first(tmp_path):
    base = tmp_path / "tmp"
    live_owner = _process_identity(os.getpid())
    assert live_owner and _owner_alive(live_owner) and not _owner_alive(DEAD)
    live = new_build_dir(base, live_owner)
    (live / "f").write_text("mine")
    dead = new_build_dir(base, DEAD)
    (dead / "git" / "x").mkdir(parents=True)
    (dead / "git" / "x" / "body").write_text("partial")
    # a view the dead build had mounted: the source must keep its files
    source = tmp_path / "snapshot"
    source.mkdir()
    (source / "precious").write_text("cached layer file")
    view = dead / "mnt-view"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(view)], check=True)
    old_young = base / "build-0123456789ab"
    old_young.mkdir()
    old_stale = base / "build-ba9876543210"
    old_stale.mkdir()
    os.utime(old_stale, (time.time() - 2 * 86400,) * 2)
    other = base / "not-a-build"
    other.mkdir()
    try:
        assert sweep_build_dirs(base, _owner_alive) == 2
    finally:
        subprocess.run(["umount", str(view)], check=False)
    assert not dead.exists() and not old_stale.exists()
    assert (source / "precious").read_text() == "cached layer file"
    assert (live / "f").read_text() == "mine" and old_young.is_dir() and other.is_dir()
    with open("/proc/self/mountinfo") as f:
        assert str(view) not in f.read()


def test_a_build_dir_names_its_owner(tmp_path):
    d = new_build_dir(tmp_path, "123:456")
    assert d.name.startswith("build-123-456-") and d.is_dir()
    assert sweep_build_dirs(tmp_path, lambda o: o == "123:456") == 0 and d.is_dir()
    assert sweep_build_dirs(tmp_path, lambda o: False) == 1 and not d.exists()
    assert sweep_build_dirs(Path(tmp_path / "missing"), lambda o: False) == 0
