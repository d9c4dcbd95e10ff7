"""Issue 11 (suite: "containerd killed mid-RUN"): mason's own containerd is killed with SIGKILL
while a RUN runs. The build fails with one clear error line (no traceback), nothing of the step
stays running — its processes, its shim, its task — checked through ``ctr`` and /proc, and the
next build on the same root starts containerd again, recovers and succeeds, its databases
intact. mason restarts its own containerd at once when it died under a build (it finds the
shims still running the steps) and kills what the build ran."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.fixtures.signals import child_signals
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

WAIT = 120  # a hang guard, not a timing


def _pids_with(marker: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and "pytest" not in cmd:
            out.append(int(d))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return sorted(p for p in (line.split()[4] for line in f) if p.startswith(prefix))


class OwnRoot:
    """A state root whose containerd is mason's own (started by mason, under the root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mason-ck-"))  # short: containerd's socket lives below

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if k != "MASON_CONTAINERD_ADDRESS"}
        e["MASON_ROOT"] = str(self.root)
        return e

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mason", *args], capture_output=True, text=True,
                              env=self.env(), timeout=600, stdin=subprocess.DEVNULL)

    def containerd_pid(self) -> int:
        return int((self.root / "containerd" / "containerd.pid").read_text())

    def ctr(self, *args: str) -> list[str]:
        sock = self.root / "containerd" / "state" / "containerd.sock"
        p = subprocess.run(["ctr", "--address", str(sock), "-n", "mason", *args], capture_output=True,
                           text=True, check=True, timeout=60)
        return p.stdout.split()


@pytest.fixture
def own_root():
    r = OwnRoot()
    try:
        yield r
    finally:
        r.cli("daemon", "stop")
        for m in reversed(_mounts_under(r.root)):
            subprocess.run(["umount", "-l", m], check=False)
        subprocess.run(["rm", "-rf", str(r.root)], check=False)


def test_containerd_killed_mid_run(build_env, own_root, tmp_path):
    env = build_env
    marker = f"mason-ck-{os.getpid()}"
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\nRUN echo started; sh -c 'sleep 300; echo {marker}'; sleep 300\n")})
    with child_signals(default=[signal.SIGINT, signal.SIGTERM, signal.SIGHUP]):
        proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(ctx)],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=own_root.env(), text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + WAIT
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if line.rstrip().endswith(" started") or time.monotonic() > deadline:
                break
        assert lines and lines[-1].rstrip().endswith(" started"), "".join(lines)
        assert _pids_with(marker), "the RUN's processes should be running now"
        os.kill(own_root.containerd_pid(), signal.SIGKILL)
        _, rest = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + rest
    assert proc.returncode == 1, text
    assert "Traceback" not in text and "internal error" not in text, text
    last = rest.rstrip().splitlines()[-1]
    assert last.startswith("error: ") and "containerd" in last, text
    assert _pids_with(marker) == [], "the step's processes outlived the build"
    shims = [p for p in _pids_with(str(own_root.root)) if "containerd-shim" in _cmdline(p)]
    assert shims == [], "a shim of the build outlived it"
    assert own_root.ctr("tasks", "ls", "-q") == [] and own_root.ctr("containers", "ls", "-q") == []
    # the next build starts containerd again and works; nothing of the killed one is left
    ok = write(tmp_path / "ok", {"Dockerfile": f"FROM {env.base}\nRUN echo fine > /f\n"})
    out = tmp_path / "out"
    p = own_root.cli("build", "--progress=plain", "-o", f"type=local,dest={out}", str(ok))
    assert p.returncode == 0, p.stderr
    assert (out / "f").read_text() == "fine\n"
    assert own_root.ctr("tasks", "ls", "-q") == [] and own_root.ctr("containers", "ls", "-q") == []
    for db in own_root.root.rglob("*.db"):
        if "containerd" not in db.parts:
            con = sqlite3.connect(db)
            try:
                assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", db
            finally:
                con.close()


def test_daemon_stop_during_a_build_leaves_nothing(build_env, own_root, tmp_path):
    """Issue 11 gap (a live build's network pool on ``mason daemon stop``): ``mason daemon stop``
    while a build's RUN runs on its own network stops the step, the build ends with one error
    line, and once it has exited nothing is mounted under the root (its network namespaces, pool
    included, its rootfs and scratch mounts), no process of it or shim is left, and no scratch
    directory."""
    env = build_env
    marker = f"mason-ds-{os.getpid()}"
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\nRUN echo started; sh -c 'sleep 300; echo {marker}'; sleep 300\n")})
    with child_signals(default=[signal.SIGINT, signal.SIGTERM, signal.SIGHUP]):
        proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(ctx)],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=own_root.env(), text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + WAIT
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if line.rstrip().endswith(" started") or time.monotonic() > deadline:
                break
        assert lines and lines[-1].rstrip().endswith(" started"), "".join(lines)
        assert any("/network/" in m for m in _mounts_under(own_root.root)), "the step should have a netns"
        stop = own_root.cli("daemon", "stop")
        assert stop.returncode == 0 and stop.stdout.strip() == "stopped", stop.stderr
        _, rest = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + rest
    assert proc.returncode == 1, text
    assert "Traceback" not in text and "internal error" not in text, text
    assert "did not complete successfully: exit code: 137" in rest, text  # the step was killed
    assert _pids_with(marker) == []
    assert [p for p in _pids_with(str(own_root.root)) if "containerd" in _cmdline(p)] == []
    assert _mounts_under(own_root.root) == []
    assert list((own_root.root / "solver" / "tmp").glob("build-*")) == []
