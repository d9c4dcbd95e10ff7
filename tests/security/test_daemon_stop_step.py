"""Issue 11 (`mason daemon stop` with a build running): the stop kills the tasks containerd
runs, so the running step ends with SIGKILL; its error says why instead of a bare
``exit code: 137``. A build on a root of its own (mason's own containerd, started by the build)
is stopped from the outside while its step runs."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

WAIT = 120  # a hang guard, not a timing


def _env(root: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "MASON_CONTAINERD_ADDRESS"}
    e["MASON_ROOT"] = str(root)
    return e


@pytest.fixture
def own_root():
    d = Path(tempfile.mkdtemp(prefix="mason-ds-"))  # short: containerd's socket lives below
    try:
        yield d / "root"
    finally:
        subprocess.run([sys.executable, "-m", "mason", "daemon", "stop"], env=_env(d / "root"),
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


def test_step_killed_by_daemon_stop_says_so(build_env, own_root, tmp_path):
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {build_env.base}\nRUN echo step-started && sleep 600\n"})
    proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(ctx)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=_env(own_root), text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for ln in proc.stderr:
            lines.put(ln)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        while True:  # the step runs once its output shows
            ln = lines.get(timeout=WAIT)
            assert ln is not None, "".join(seen)
            seen.append(ln)
            if "step-started" in ln and "echo" not in ln:
                break
        stop = subprocess.run([sys.executable, "-m", "mason", "daemon", "stop"], env=_env(own_root),
                              capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL)
        assert stop.returncode == 0 and stop.stdout.strip() == "stopped", stop.stderr
        proc.wait(timeout=WAIT)
        while (ln := lines.get(timeout=WAIT)) is not None:
            seen.append(ln)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert errors and errors[-1].endswith(
        'did not complete successfully: exit code: 137 (killed: `mason daemon stop` stopped containerd '
        'while the step ran)'), err


def test_stopped_since_only_a_stop_during_the_step(tmp_path):
    """A step killed otherwise (its own SIGKILL, the OOM killer) keeps the plain message: only a
    stop at or after the step's start counts."""
    import time

    from mason.backends.containerd.daemon import STOP_MARK, stopped_since

    assert not stopped_since(tmp_path, time.time())  # never stopped
    (tmp_path / "containerd").mkdir()
    mark = tmp_path / "containerd" / STOP_MARK
    mark.write_text("x\n")
    past = time.time() - 3600
    os.utime(mark, (past, past))
    assert not stopped_since(tmp_path, time.time())  # stopped before the step began
    assert stopped_since(tmp_path, past)
