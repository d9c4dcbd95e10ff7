"""mason's private containerd: `mason daemon status|start|stop|address`, missing binaries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mason.backends.containerd.client import Client
from mason.backends.containerd.daemon import ManagedContainerd, resolve_address
from mason.cli.main import main
from mason.ir.errors import MasonError
from tests.fixtures.containerd import short_tmp_root

pytestmark = pytest.mark.integration


def test_cli_status_address_stop(tmp_path_factory, capsys: pytest.CaptureFixture[str]) -> None:
    root = short_tmp_root(tmp_path_factory, "cli")
    d = ManagedContainerd.at(root)
    assert main(["daemon", "address", "--root", str(root)]) == 0
    assert capsys.readouterr().out == f"{root}/containerd/state/containerd.sock\n"
    assert main(["daemon", "--root", str(root), "address"]) == 0
    assert capsys.readouterr().out == f"{root}/containerd/state/containerd.sock\n"
    assert main(["daemon", "status", "--root", str(root)]) == 0
    assert capsys.readouterr().out.startswith("not running")

    address = resolve_address(root=root)  # a build's way in: starts it
    pid = d.pid()
    try:
        assert address == d.address and pid is not None
        assert "containerd" in Path(f"/proc/{pid}/cmdline").read_text()
        assert os.getsid(pid) == pid  # its own session: a Ctrl-C in mason's terminal misses it
        with Client(address) as c:
            assert c.version()
        assert resolve_address(root=root) == address and d.pid() == pid  # left running, reused
        assert main(["daemon", "status", "--root", str(root)]) == 0
        assert capsys.readouterr().out == f"running (pid {pid}) at {address}\n"
        cfg = d.config_file.read_text()
        assert '"io.containerd.grpc.v1.cri"' in cfg and str(root / "containerd" / "opt") in cfg
    finally:
        assert main(["daemon", "stop", "--root", str(root)]) == 0
    assert capsys.readouterr().out == "stopped\n"
    assert not d.running() and not d.pid_file.exists()
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    assert main(["daemon", "stop", "--root", str(root)]) == 0
    assert capsys.readouterr().out == "not running\n"


def test_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("MASON_ROOT", str(tmp_path))
    assert main(["daemon", "address"]) == 0
    assert capsys.readouterr().out == f"{tmp_path}/containerd/state/containerd.sock\n"


@pytest.mark.parametrize("binary,package", [("containerd", "containerd"), ("runc", "runc")])
def test_missing_binaries_name_the_package(binary, package, tmp_path: Path, monkeypatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("containerd", "runc", "containerd-shim-runc-v2"):
        if name != binary:
            (bindir / name).symlink_to(f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else f"/usr/sbin/{name}")
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(MasonError) as e:
        ManagedContainerd.at(tmp_path / "root").ensure_running()
    assert e.value.message == f"`{binary}` is not on PATH; install the Debian package {package}"


def test_too_deep_root_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 90)
    with pytest.raises(MasonError, match="too deep for a unix socket"):
        ManagedContainerd.at(deep).ensure_running()
