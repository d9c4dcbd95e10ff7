"""Issue 11 (gap "SIGTERM must clean up like SIGINT"): any signal that ends a build — SIGINT,
SIGTERM, SIGHUP — arriving while a RUN is running leaves nothing behind: no task (and none of its
processes), no container, no active snapshot, no build lease, no mount under the state root or
containerd's directories, no output written halfway, and a record that says the build was
cancelled. A second signal during the cleanup ends mason at once (and the next mason command
still finds a consistent state). A real ``mason build`` process gets the signal mid-RUN."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.signals import child_signals
from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def _mounts_under(*roots: Path) -> list[str]:
    prefixes = tuple(str(r.resolve()) + "/" for r in roots)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(p for p in points if p.startswith(prefixes))


def _start(env, ctx: Path, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """A real ``mason build`` whose RUN has printed ``started``; its stderr lines so far."""
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    with child_signals(default=SIGNALS):  # as from a terminal, not as this runner started
        proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", *args, str(ctx)],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=e, text=True, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # type: ignore[union-attr]
        lines.append(line)
        if line.rstrip().endswith(" started"):
            return proc, lines
        if time.monotonic() > deadline:
            break
    proc.kill()
    proc.wait()
    raise AssertionError("the RUN never started:\n" + "".join(lines))


def _step_pids(marker: str) -> list[int]:
    """Processes on the host whose command line holds ``marker`` (the RUN's own processes)."""
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


def _containerd_dir(env) -> Path:
    return Path(env.address).parent.parent  # <root>/containerd/state/containerd.sock -> <root>/containerd


def ctr_empty(env) -> None:
    """An independent look (containerd's own ``ctr``): no task and no container in mason's
    namespace."""
    for what in ("tasks", "containers"):
        p = subprocess.run(["ctr", "--address", env.address, "-n", "mason", what, "ls", "-q"],
                           capture_output=True, text=True, check=True, timeout=60)
        assert p.stdout.split() == [], f"ctr {what} ls: {p.stdout}"


def _db_ok(root: Path) -> None:
    for db in root.rglob("*.db"):
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", db
        finally:
            con.close()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_mid_run_leaves_nothing(build_env, tmp_path, sig):
    env = build_env
    marker = f"mason-sig-{int(sig)}-{os.getpid()}"
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\nRUN echo started; sh -c 'sleep 300; echo {marker}'; sleep 300\n")})
    out = tmp_path / "out.tar"
    mounts_before = _mounts_under(env.root, _containerd_dir(env))
    proc, before = _start(env, ctx, "-o", f"type=oci,dest={out}")
    try:
        assert _step_pids(marker), "the RUN's processes should be running now"
        proc.send_signal(sig)
        rest = proc.stderr.read()  # type: ignore[union-attr]
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(before) + rest
    assert rc == 128 + int(sig) if sig != signal.SIGINT else rc == 130, text
    assert "Traceback" not in text and "internal error" not in text, text
    assert any(w in rest for w in ("interrupted", "aborted", "terminated", "hangup")), rest
    assert clean(env.leftovers()), env.leftovers()
    ctr_empty(env)
    assert _step_pids(marker) == [], "the RUN's processes outlived the build"
    assert _mounts_under(env.root, _containerd_dir(env)) == mounts_before
    assert not out.exists(), "a half-written output was left behind"
    assert not list(tmp_path.glob("out.tar*")), list(tmp_path.iterdir())
    _db_ok(env.root)
    hist = env.cli("history", env={"MASON_ROOT": str(env.root)})
    assert "cancelled" in hist.stdout, hist.stdout + hist.stderr


def test_second_signal_exits_at_once_and_next_build_recovers(build_env, tmp_path):
    """A second signal while cleaning up ends mason at once; whatever the cleanup had not done yet
    is swept by the next mason command (the crash-recovery path), which then builds."""
    env = build_env
    marker = f"mason-sig2-{os.getpid()}"
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\nRUN echo started; trap '' TERM; sh -c 'sleep 300; echo {marker}'\n")})
    proc, _ = _start(env, ctx)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        proc.stderr.read()  # type: ignore[union-attr]
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 128 + signal.SIGTERM
    ok = write(tmp_path / "ok", {"Dockerfile": f"FROM {env.base}\nRUN echo fine > /f\n"})
    p = env.cli("build", "--progress=plain", str(ok), env={"MASON_ROOT": str(env.root),
                                                         "MASON_CONTAINERD_ADDRESS": env.address})
    assert p.returncode == 0, p.stderr
    assert _step_pids(marker) == [], "the first build's step was never reaped"
    assert clean(env.leftovers()), env.leftovers()
    ctr_empty(env)
    _db_ok(env.root)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_second_signal_during_cleanup_exits_at_once(sig):
    """Deterministic form of the above: the cleanup (an ``except`` after the first signal) gets a
    second one and the process ends there with 128+N, without finishing the cleanup."""
    code = (
        "import os, signal, sys, time\n"
        "from mason.cli.main import _signals_cancel, Signalled\n"
        "with _signals_cancel():\n"
        "    try:\n"
        f"        os.kill(os.getpid(), {int(sig)}); time.sleep(30)\n"
        "    except Signalled as e:\n"
        "        print('cleaning', e.signum, flush=True)\n"
        f"        os.kill(os.getpid(), {int(sig)}); time.sleep(30)\n"
        "        print('cleanup finished', flush=True)\n")
    with child_signals(default=SIGNALS):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 128 + int(sig), p.stderr
    assert p.stdout == f"cleaning {int(sig)}\n"
    assert "again; exiting without cleaning up" in p.stderr


def test_nohup_keeps_sighup_ignored():
    code = (
        "import os, signal\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "from mason.cli.main import _signals_cancel\n"
        "with _signals_cancel():\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "    print('still here', flush=True)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "still here\n", p.stderr
