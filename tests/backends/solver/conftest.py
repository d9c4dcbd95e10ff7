"""Fixtures for solver tests: a :class:`Solver` on the session containerd with a fresh state
root per test, and helpers to read results back (mount a result's snapshot, run a command on
it)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def state_root(tmp_path_factory):
    root = Path(tempfile.mkdtemp(prefix="mason-solve-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def solver(containerd_env, state_root):
    from mason.backends.solver.solver import Solver

    s = Solver(containerd_env.client, state_root, runc_root=str(containerd_env.daemon.runc_root),
               io_dir=str(containerd_env.daemon.io_dir))
    yield s
    s.close()


@contextlib.contextmanager
def mounted_result(client, result):
    """The result's filesystem, mounted read-only for the block."""
    from mason.backends.solver.mounts import mounted_view

    with mounted_view(client, result.snapshot) as d:  # use a leased client
        yield d
