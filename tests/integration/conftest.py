"""Fixtures for whole builds: a fresh mason state root per test on the session containerd
(``--containerd-address``), the fixture registry's busybox as the base image, and helpers to
run ``mason build`` (in-process through the Python API, or as a real process for exit codes
and printed output) and to inspect what containerd holds afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.signals import child_signals


@dataclass
class BuildEnv:
    root: Path
    address: str
    client: object  # Client in namespace mason (no lease)
    lease_client: object  # bound to the session lease (for views)
    base: str  # the busybox reference in the fixture registry

    def build(self, context, **kw):
        from mason.backends.solver.events import Recorder
        from mason.driver import BuildRequest, build

        rec = kw.pop("events", None) or Recorder()
        req = BuildRequest(context=str(context), root=str(self.root), containerd_address=self.address,
                           events=rec, **kw)
        return build(req), rec

    def cli(self, *args, env=None, check=False, timeout=300):
        e = dict(os.environ)
        e.update(env or {})
        e["MASON_ROOT"] = str(self.root)
        e["MASON_CONTAINERD_ADDRESS"] = self.address
        p = subprocess.run([sys.executable, "-m", "mason", *args], capture_output=True, text=True,
                           env=e, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"mason {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
        return p

    def interrupt(self, context, *, sigint_ignored: bool = False) -> tuple[int, str, str]:
        """Run ``mason build --progress=plain CONTEXT`` as a real process and send it SIGINT once
        a RUN has printed ``started``; return (exit code, output before, output after).
        The process starts with SIGINT at its default, or ignored (as a shell without job control
        starts a background command) — not with whatever this test process happens to have."""
        e = dict(os.environ, MASON_ROOT=str(self.root), MASON_CONTAINERD_ADDRESS=self.address)
        sigint = {"ignored" if sigint_ignored else "default": [signal.SIGINT]}
        with child_signals(**sigint):
            proc = subprocess.Popen([sys.executable, "-m", "mason", "build", "--progress=plain", str(context)],
                                    stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                    env=e, text=True)
        lines = []
        deadline = time.monotonic() + 60
        try:
            for line in proc.stderr:  # type: ignore[union-attr]
                lines.append(line)
                if line.rstrip().endswith(" started"):
                    break
                assert time.monotonic() < deadline, "the RUN never started"
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            rest = proc.stderr.read()  # type: ignore[union-attr]
            rc = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return rc, "".join(lines), rest

    def leftovers(self) -> dict:
        """What a finished build must not leave: tasks, containers, non-committed snapshots of
        mason steps, build leases."""
        c = self.client
        active = [s.name for s in c.list_snapshots() if s.kind != "committed" and "mason.owner" in s.labels]
        leases = [k for k, v in c.list_leases().items() if v.get("mason.build")]
        return {"tasks": c.list_tasks(), "containers": [x for x in c.list_containers() if "anchor" not in x or True],
                "active_snapshots": active, "build_leases": leases}


def clean(d: dict) -> bool:
    return not any(d.values())


@pytest.fixture
def build_env(containerd_env, busybox_image):
    root = Path(tempfile.mkdtemp(prefix="mason-it-"))
    env = BuildEnv(root, containerd_env.address, containerd_env.client,
                   containerd_env.client.with_lease(containerd_env.lease), busybox_image.ref)
    yield env
    shutil.rmtree(root, ignore_errors=True)


def write(dirpath: Path, files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        p = dirpath / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        if modes and name in modes:
            os.chmod(p, modes[name])
    return dirpath
