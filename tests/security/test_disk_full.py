"""Issue 11 (gap "a step that fills the disk"): on a state root whose disk is small (a tmpfs of
its own, holding mason's own containerd too), a step that fills the disk, and a step whose layer
no longer fits when mason commits it, each fail with one clear line naming the full disk — no
traceback, nothing left running or half-made — and once space is freed the next build works on
the same root, whose databases pass their integrity check."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

SIZE = "192m"


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return sorted(p for p in (line.split()[4] for line in f) if p.startswith(prefix))


class SmallRoot:
    def __init__(self, mnt: Path):
        self.mnt = mnt
        self.root = mnt / "root"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        e = {k: v for k, v in os.environ.items() if k != "MASON_CONTAINERD_ADDRESS"}
        e["MASON_ROOT"] = str(self.root)  # mason's own containerd: its snapshots on the small disk too
        return subprocess.run([sys.executable, "-m", "mason", *args], capture_output=True, text=True, env=e,
                              timeout=600, stdin=subprocess.DEVNULL)


@pytest.fixture
def small_root():
    mnt = Path(tempfile.mkdtemp(prefix="mason-df-"))  # short: containerd's socket lives below
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mnt)], check=True)
    sr = SmallRoot(mnt)
    try:
        yield sr
    finally:
        sr.cli("daemon", "stop")
        for m in reversed(_mounts_under(mnt)):
            subprocess.run(["umount", "-l", m], check=False)
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


def _ctr(sr: SmallRoot, *args: str) -> list[str]:
    sock = sr.root / "containerd" / "state" / "containerd.sock"
    p = subprocess.run(["ctr", "--address", str(sock), "-n", "mason", *args], capture_output=True, text=True,
                       check=True, timeout=60)
    return p.stdout.split()


def _db_ok(root: Path) -> None:
    for db in root.rglob("*.db"):
        if "containerd" in db.parts:
            continue
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", db
        finally:
            con.close()


def _errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(("error:", "/")) and "error:" in ln]


@pytest.mark.parametrize("what", ["step", "commit"])
def test_a_full_disk_is_one_clear_error_and_the_root_recovers(build_env, small_root, tmp_path, what):
    env = build_env
    fill = ("RUN dd if=/dev/zero of=/fill bs=1M count=1000\n" if what == "step"
            else "RUN head -c 120m /dev/urandom > /random\n")
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\n{fill}"})
    p = small_root.cli("build", "--progress=plain", "-t", "filled", str(ctx))
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    errs = _errors(p.stderr)
    assert errs, p.stderr
    if what == "step":  # the step's own failure, with the reason: not a clean-up error after it
        assert "did not complete successfully: exit code: 1 (no space left on device: the disk of mason's " \
               "snapshots" in errs[-1], p.stderr
    else:  # containerd's layer write, in one line
        assert errs[-1].startswith("error: containerd: diff: no space left on device (writing "), p.stderr
    assert _ctr(small_root, "tasks", "ls", "-q") == [] and _ctr(small_root, "containers", "ls", "-q") == []
    ok = write(tmp_path / "ok", {"Dockerfile": f"FROM {env.base}\nRUN echo fine > /f\n"})
    out = tmp_path / "out"
    q = small_root.cli("build", "--progress=plain", "-o", f"type=local,dest={out}", str(ok))
    assert q.returncode == 0, q.stderr
    assert (out / "f").read_text() == "fine\n"
    _db_ok(small_root.root)
