"""``mason du`` against a containerd of this module's own (``--root`` state, ``-n mason``)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from mason.backends.solver.store import ResultStore
from mason.cli.main import main
from tests.backends.solver.test_gc import MiB, age, private_containerd

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world():
    with private_containerd("du") as w:
        yield w


@pytest.fixture
def state(world):
    world.reset()
    root = Path(tempfile.mkdtemp(prefix="mason-du-state-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_du_lists_records_with_sizes(world, state, capsys) -> None:
    from mason.backends.exporters.image import export_image

    with ResultStore(state) as store:
        k1, r1 = world.build(store, "one", world.base(), MiB, description="[stage-0 2/3] RUN one")
        k2, r2 = world.build(store, "two", r1, 3 * MiB, description="[stage-0 3/3] RUN two")
        k3, _ = world.build(store, "three", world.base(), 2 * MiB, description="[other 2/2] RUN three")
        age(store, k1, 7200)
    export_image(world.client, r1.chain, {}, name="gc-test/du:1")
    opts = ("--root", str(state), "--containerd-address", world.address)

    rc, out, err = run(capsys, "du", *opts)
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "RECLAIMABLE", "SIZE", "LAST", "ACCESSED"]
    rows = [re.split(r"\s{3,}", line) for line in lines[1:4]]
    short = {k: k.split(":")[1][:12] for k in (k1, k2, k3)}
    assert [r[0] for r in rows] == [short[k2], short[k3], short[k1]]  # largest first
    assert [r[1] for r in rows] == ["true", "true", "false"]  # k1 is the image's
    assert [r[2] for r in rows] == ["3.15MB", "2.1MB", "1.05MB"]
    # docker's HumanDuration: "Less than a second", "1 second", "N seconds" (whichever the clock gives)
    assert re.fullmatch(r"Less than a second ago|1 second ago|([2-9]|[1-5][0-9]) seconds ago", rows[0][3])
    assert rows[2][3] == "2 hours ago"
    assert lines[4] == ""
    assert lines[5:] == ["Shared:       1.05MB", "Private:      5.25MB", "Reclaimable:  5.25MB",
                         "Total:        6.3MB"]

    rc, out, _ = run(capsys, "du", *opts, "--verbose")
    assert rc == 0
    blocks = out.split("\n\n")
    first = dict(line.split(":", 1) for line in blocks[0].splitlines())
    assert first["ID"].strip() == k2 and first["Size"].strip() == "3.15MB"
    assert first["Description"].strip() == "[stage-0 3/3] RUN two"
    assert first["Snapshot"].strip() == r2.snapshot and first["Reclaimable"].strip() == "true"
    assert "Total:        6.3MB" in out


def test_du_empty_cache(world, state, capsys) -> None:
    rc, out, err = run(capsys, "du", "--root", str(state), "--containerd-address", world.address)
    assert (rc, err) == (0, "")
    assert out.splitlines() == ["ID   RECLAIMABLE   SIZE   LAST ACCESSED", "Reclaimable:  0B", "Total:        0B"]
