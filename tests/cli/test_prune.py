"""``mason prune`` against a containerd of this module's own (``--root`` state, ``-n mason``):
what it removes, what it prints, and one-line errors for bad option values."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from mason.backends.containerd.exec import OWNER_LABEL
from mason.backends.solver.store import ResultStore
from mason.cli.main import main
from tests.backends.solver.test_gc import DEAD_OWNER, MiB, age, ctr_snapshots, private_containerd

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world():
    with private_containerd("prune") as w:
        yield w


@pytest.fixture
def state(world):
    world.reset()
    root = Path(tempfile.mkdtemp(prefix="mason-prune-state-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_prune_prints_what_it_freed(world, state, capsys) -> None:
    c = world.client
    with ResultStore(state) as store:
        k1, r1 = world.build(store, "one", world.base(), MiB, description="RUN one")
        k2, r2 = world.build(store, "two", world.base(), 2 * MiB, description="RUN two")
        age(store, k1, 3 * 86400)
    crashed = c.create_lease(expire=3600, labels={"mason.build": "1", OWNER_LABEL: DEAD_OWNER})
    world.commit("gc-test-dangling", world.busybox, MiB, lease=crashed)
    opts = ("--root", str(state), "--containerd-address", world.address)

    rc, out, err = run(capsys, "prune", *opts, "--force")
    assert (rc, err) == (0, "")
    assert out.splitlines() == ["Removed 0 cache records, 1 snapshot, 0 blobs, 1 stale lease",
                                "Total reclaimed space: 1.05MB"]
    assert ctr_snapshots(world.address) == {world.busybox, r1.snapshot, r2.snapshot}

    rc, out, err = run(capsys, "prune", *opts, "--force", "--filter", "until=48h")
    assert (rc, err) == (0, "")
    short = k1.split(":")[1][:12]
    assert out.splitlines() == ["Deleted build cache objects:", f"{short}  RUN one", "",
                                "Removed 1 cache record, 1 snapshot, 0 blobs, 0 stale leases",
                                "Total reclaimed space: 1.05MB"]
    assert ctr_snapshots(world.address) == {world.busybox, r2.snapshot}

    rc, out, err = run(capsys, "prune", *opts, "-f", "--all")
    assert rc == 0 and out.splitlines()[-1] == "Total reclaimed space: 2.1MB"
    assert ctr_snapshots(world.address) == {world.busybox}


def test_prune_asks_first(world, state, capsys, monkeypatch) -> None:
    import io

    with ResultStore(state) as store:
        _, r1 = world.build(store, "one", world.base(), 4096)
    opts = ("--root", str(state), "--containerd-address", world.address)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    rc, out, _ = run(capsys, "prune", *opts, "--all")
    assert rc == 0
    assert out == ("WARNING! This will remove all build cache that no image is built from.\n"
                   "Are you sure you want to continue? [y/N]: ")
    assert r1.snapshot in ctr_snapshots(world.address)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    rc, out, _ = run(capsys, "prune", *opts, "--all")
    assert rc == 0 and "Removed 1 cache record, 1 snapshot" in out
    assert ctr_snapshots(world.address) == {world.busybox}


@pytest.mark.parametrize("args, message", [
    (("--keep-storage", "12XB"), "error: invalid size '12XB': expected a number of bytes with an optional unit "
                                 "(B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 500MB or 2GiB"),
    (("--filter", "until=5x"), "error: invalid duration '5x': expected a duration such as 24h, 90m or 1h30m "
                               "(units: ms, s, m, h, d, w)"),
    (("--filter", "dangling=true"), "error: invalid filter 'dangling=true': the supported filter is "
                                    "until=DURATION (e.g. until=24h)"),
])
def test_bad_values_are_one_line_errors(tmp_path, capsys, args, message) -> None:
    # checked before connecting: the address does not even exist
    rc, out, err = run(capsys, "prune", "--root", str(tmp_path), "--containerd-address", str(tmp_path / "nope.sock"),
                       "--force", *args)
    assert (rc, out, err) == (1, "", message + "\n")
