"""mason._codecache: dataclasses' generated methods compiled once and kept between runs (issue 17).
The classes it makes behave as stock dataclasses; a process started after priming compiles none
of the methods of the modules a build imports, PYTHONDONTWRITEBYTECODE or not; a damaged cache
file is ignored."""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mason import _codecache

needs_hook = pytest.mark.skipif(sys.version_info[:2] not in _codecache._VERSIONS,
                                reason="the hook is for CPython 3.11/3.12 only")

REPO = Path(__file__).resolve().parents[1]


@needs_hook
def test_installed_in_every_mason_process() -> None:
    assert dataclasses._create_fn is _codecache._create_fn  # type: ignore[attr-defined]


@needs_hook
def test_classes_behave_as_stock_dataclasses() -> None:
    def make():
        @dataclasses.dataclass(frozen=True, slots=True, order=True)
        class P:
            a: int
            b: str = "x"
            c: tuple[int, ...] = dataclasses.field(default=(), compare=False)

            def __post_init__(self) -> None:
                if self.a < 0:
                    raise ValueError("negative")

        return P

    before = _codecache.stats()["used"]
    P = make()
    assert _codecache.stats()["used"] > before  # its methods went through the cache
    Q = make()  # the second time every text is found
    for cls in (P, Q):
        p = cls(1)
        assert repr(p) == "test_classes_behave_as_stock_dataclasses.<locals>.make.<locals>.P(a=1, b='x', c=())"
        assert p == cls(1, "x", (5,)) and p != cls(2) and p < cls(2) and hash(p) == hash(cls(1, c=(9,)))
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.a = 3  # type: ignore[misc]
        with pytest.raises(ValueError, match="negative"):
            cls(-1)
        with pytest.raises(TypeError):
            cls()  # type: ignore[call-arg]
        assert cls.__init__.__annotations__ == {"a": "int", "b": "str", "c": "tuple[int, ...]", "return": None}


def test_a_damaged_or_foreign_cache_file_is_ignored(tmp_path: Path) -> None:
    bad = tmp_path / "c.marshal"
    for data in (b"", b"\x00garbage", marshal.dumps([1, 2]), marshal.dumps({"x": 1})):
        bad.write_bytes(data)
        assert _codecache._load(str(bad)) == {}
    assert _codecache._load(str(tmp_path / "missing")) == {}
    code = compile("x = 1", "<string>", "exec")
    bad.write_bytes(marshal.dumps({"x = 1": code}))
    assert _codecache._load(str(bad)) == {"x = 1": code}


CHILD = """
import json, sys
import mason
from mason import _codecache
import mason.cli.main, mason.driver, mason.frontends.dockerfile.frontend, mason.backends.solver.solver
import mason.backends.sources.store_resolver, mason.backends.exporters.export, mason.cli.progress
print(json.dumps(_codecache.stats()))
"""


@needs_hook
def test_after_priming_a_build_process_compiles_nothing(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, "-c", "import mason._codecache as c; c.prime()"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    path = Path(_codecache.cache_path())
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o644
    before = path.stat().st_mtime_ns
    p = subprocess.run([sys.executable, "-c", CHILD], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["compiled"] == 0 and got["used"] > 300, got
    assert path.stat().st_mtime_ns == before  # nothing new: not rewritten
