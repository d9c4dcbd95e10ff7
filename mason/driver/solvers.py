"""The solver a build runs on: :class:`open_solver` (mason's private containerd by default,
started if needed, or the one an address names) and :class:`LazySolver`, which opens it on
first use."""

from __future__ import annotations

import os
from pathlib import Path


class open_solver:  # noqa: N801 - used as a context manager, like open()
    """A :class:`~mason.backends.solver.solver.Solver` on the containerd that ``address`` /
    ``root`` select (mason's private one by default, started if needed)."""

    def __init__(self, root: str | None = None, address: str | None = None):
        from mason.backends.containerd.client import Client
        from mason.backends.containerd.daemon import ADDRESS_ENV, ManagedContainerd, resolve_address, state_root
        from mason.backends.solver.solver import Solver

        state = state_root(root)
        explicit = address or os.environ.get(ADDRESS_ENV)
        addr = resolve_address(address, state)
        self.client = Client(addr)
        try:
            self.client.ensure_namespace()
            if explicit:
                self.solver = Solver(self.client, state)
            else:
                d = ManagedContainerd.at(state)
                self.solver = Solver(self.client, state, runc_root=str(d.runc_root), io_dir=str(d.io_dir),
                                     restart=d.restart_if_died)
        except BaseException:
            self.client.close()
            raise

    def __enter__(self):
        return self.solver

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.solver.close()
        self.client.close()


class LazySolver:
    """Opens :class:`open_solver` on first use: lowering asks it for the image store only when a
    ``FROM`` needs resolving, and a Dockerfile error never waits for containerd. With
    ``solver``, that open Solver is used (and left open)."""

    def __init__(self, root: str | None, address: str | None, solver=None):
        self.root, self.address = root, address
        self._opened: open_solver | Given | None = Given(solver) if solver is not None else None

    def get(self):
        if self._opened is None:
            self._opened = open_solver(self.root, self.address)
        return self._opened

    def close(self) -> None:
        if self._opened is not None and not isinstance(self._opened, Given):
            self._opened.close()
            self._opened = None


class Given:
    """An open Solver handed in by the caller, shaped like :class:`open_solver`."""

    def __init__(self, solver):
        self.solver, self.client = solver, solver.client


def state_root(root: str | None) -> Path:
    """:func:`mason.backends.containerd.daemon.state_root` (imported when first used)."""
    from mason.backends.containerd.daemon import state_root as resolve

    return resolve(root)
