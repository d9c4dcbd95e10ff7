"""binfmt_misc and QEMU: the probe executables really run (natively, and through the host's
emulator), and status/install/require read and write a binfmt_misc directory in the kernel's
format — a private copy (MASON_BINFMT_MISC) for the states a test must not impose on the
machine (a disabled entry, one without F, binfmt_misc off)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mason.backends.containerd import binfmt as bf
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.resolver import PlatformSpec

AMD64, ARM64, RISCV = (PlatformSpec.parse(p) for p in ("linux/amd64", "linux/arm64", "linux/riscv64"))
HOST = PlatformSpec.default()
AARCH64_MAGIC = bytes.fromhex("7f454c460201010000000000000000000200b700")
AARCH64_MASK = bytes.fromhex("ffffffffffffff00fffffffffffffffffeffffff")
RISCV_MAGIC = bytes.fromhex("7f454c460201010000000000000000000200f300")


def _esc(b: bytes) -> str:
    return "".join(f"\\x{c:02x}" for c in b)


@pytest.fixture
def misc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private binfmt_misc directory and definitions directory (interpreters exist)."""
    d = tmp_path / "misc"
    d.mkdir()
    (d / "register").write_text("")
    (d / "status").write_text("enabled\n")
    defs = tmp_path / "defs"
    defs.mkdir()
    interp = tmp_path / "qemu-aarch64-static"
    interp.write_text("")
    (defs / "qemu-aarch64.conf").write_text(
        f"# a comment\n:qemu-aarch64:M::{_esc(AARCH64_MAGIC)}:{_esc(AARCH64_MASK)}:{interp}:OC\n")
    monkeypatch.setenv(bf.MISC_ENV, str(d))
    monkeypatch.setenv(bf.DEFINITIONS_ENV, str(defs))
    return d


def _entry(d: Path, name: str, magic: bytes, *, enabled: bool = True, flags: str = "POF") -> None:
    (d / name).write_text(f"{'enabled' if enabled else 'disabled'}\ninterpreter /usr/bin/{name}-static\n"
                          f"flags: {flags}\noffset 0\nmagic {magic.hex()}\nmask {AARCH64_MASK.hex()}\n")


def _run(data: bytes, tmp_path: Path) -> int:
    p = tmp_path / "probe"
    p.write_bytes(data)
    p.chmod(0o755)
    return subprocess.run([str(p)], timeout=30).returncode


def test_host_probe_runs_natively(tmp_path: Path) -> None:
    data = bf.probe_binary(HOST.architecture)
    assert data is not None and data[:4] == b"\x7fELF"
    assert _run(data, tmp_path) == 42
    assert bf.status(HOST).state == "native"


def test_probe_headers_match_their_entries() -> None:
    arm = bf.probe_binary("arm64")
    assert arm is not None
    e = bf.Entry("qemu-aarch64", True, "/x", "F", 0, AARCH64_MAGIC, AARCH64_MASK)
    assert e.matches(arm)
    assert not e.matches(bf.probe_binary("riscv64") or b"")
    assert not e.matches(b"\x7fELF")  # too short
    assert bf.probe_binary("sparc") is None


def test_emulated_platform_really_runs_through_qemu(tmp_path: Path) -> None:
    """The machine's own binfmt_misc: mason registers Debian's qemu-user-static when it is not
    registered yet (what `mason binfmt --install` does), then an arm64 executable runs."""
    if bf.status(ARM64).state != "emulated":
        bf.install([ARM64])
    st = bf.status(ARM64)
    assert st.state == "emulated", st.reason
    assert st.entry is not None and "F" in st.entry.flags
    assert _run(bf.probe_binary("arm64") or b"", tmp_path) == 42


def test_enabled_entry_with_f_is_emulated(misc: Path) -> None:
    _entry(misc, "qemu-aarch64", AARCH64_MAGIC)
    st = bf.status(ARM64, AMD64)
    assert (st.state, st.entry.name if st.entry else None) == ("emulated", "qemu-aarch64")


def test_disabled_entry_is_unavailable_and_left_disabled(misc: Path) -> None:
    _entry(misc, "qemu-aarch64", AARCH64_MAGIC, enabled=False)
    st = bf.status(ARM64, AMD64)
    assert st.state == "unavailable" and "qemu-aarch64 is disabled" in st.reason
    assert f"echo 1 > {misc}/qemu-aarch64" in st.fix
    with pytest.raises(bf.EmulationUnavailable) as ei:
        bf.require([(ARM64, SourceLoc("Dockerfile", 3, 1))], auto_install=True, host=AMD64)
    assert "cannot run RUN steps for linux/arm64 on this linux/amd64 host" in ei.value.message
    assert ei.value.loc is not None and ei.value.loc.line == 3
    assert (misc / "register").read_text() == ""  # a build does not re-register what someone disabled
    assert (misc / "qemu-aarch64").read_text().startswith("disabled")


def test_entry_without_f_is_unavailable(misc: Path) -> None:
    _entry(misc, "qemu-aarch64", AARCH64_MAGIC, flags="P")
    st = bf.status(ARM64, AMD64)
    assert st.state == "unavailable" and "lacks the F flag" in st.reason and st.installable


def test_binfmt_misc_switched_off(misc: Path) -> None:
    _entry(misc, "qemu-aarch64", AARCH64_MAGIC)
    (misc / "status").write_text("disabled\n")
    st = bf.status(ARM64, AMD64)
    assert st.state == "unavailable" and "binfmt_misc is disabled" in st.reason


def test_missing_emulator_names_the_package(misc: Path) -> None:
    st = bf.status(RISCV, AMD64)  # no riscv64 definition in the private definitions
    assert st.state == "unavailable" and not st.installable
    assert "apt-get install qemu-user-static" in st.fix
    assert bf.status("windows/amd64", AMD64).state == "unavailable"


def test_install_registers_the_definition_with_f(misc: Path) -> None:
    st = bf.status(ARM64, AMD64)
    assert st.state == "unavailable" and st.installable and "not registered" in st.reason
    assert bf.install([ARM64]) == ["qemu-aarch64"]
    line = (misc / "register").read_text()
    assert line.startswith(":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46") and line.endswith(":OCF")


def test_install_replaces_an_entry_without_f(misc: Path) -> None:
    _entry(misc, "qemu-aarch64", AARCH64_MAGIC, flags="P")
    assert bf.install([ARM64]) == ["qemu-aarch64"]
    assert (misc / "qemu-aarch64").read_text().startswith("-1")  # taken out first (the kernel's remove)
    assert (misc / "register").read_text().endswith(":OCF")


def test_unmounted_private_dir_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, misc: Path) -> None:
    (misc / "register").unlink()
    with pytest.raises(MasonError, match="not a mounted binfmt_misc"):
        bf.install([ARM64])


def test_binfmts_format_definition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    interp = tmp_path / "riscv64-binfmt-P"
    interp.write_text("")
    (tmp_path / "qemu-riscv64").write_text(
        f"package qemu-user-static\ninterpreter {interp}\nmagic {_esc(RISCV_MAGIC)}\noffset 0\n"
        f"mask {_esc(AARCH64_MASK)}\ncredentials no\nfix_binary yes\npreserve yes\n")
    monkeypatch.setenv(bf.DEFINITIONS_ENV, str(tmp_path))
    e = bf.definition("riscv64")
    assert e is not None and e.interpreter == str(interp) and e.flags == "PF" and e.magic == RISCV_MAGIC


def test_cli_reports_each_platform(misc: Path) -> None:
    _entry(misc, "qemu-aarch64", AARCH64_MAGIC, enabled=False)
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-m", "mason", "binfmt", f"{HOST},linux/arm64"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:2] == [str(HOST), "native"]
    assert lines[1].split()[:2] == ["linux/arm64", "unavailable"] and "disabled" in lines[1]
    bad = subprocess.run([sys.executable, "-m", "mason", "binfmt", "linux/nope"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "nope" in bad.stderr


def test_a_build_registers_a_missing_emulator_by_itself(misc: Path) -> None:
    """What a build does as root (require with auto_install): an emulator that is installed but
    not registered is registered with F; without auto_install nothing is written. (A private
    directory is no kernel: the entry does not appear, so the build still fails — clearly.)"""
    need = [(ARM64, SourceLoc("Dockerfile", 2, 1))]
    with pytest.raises(bf.EmulationUnavailable, match="not registered"):
        bf.require(need, auto_install=False, host=AMD64)
    assert (misc / "register").read_text() == ""
    with pytest.raises(bf.EmulationUnavailable):
        bf.require(need, auto_install=True, host=AMD64)
    line = (misc / "register").read_text()
    assert line.startswith(":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46") and line.endswith(":OCF")


def test_cli_install_registers_the_platforms_asked_for(misc: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "mason", "binfmt", "--install", "linux/arm64"],
                       capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "registered qemu-aarch64" in p.stderr
    assert (misc / "register").read_text().endswith(":OCF")


def test_install_mounts_binfmt_misc_when_it_is_not_mounted() -> None:
    """In a private mount namespace whose binfmt_misc is unmounted, ``mason binfmt --install``
    mounts it (as root; the machine's own mounts are untouched) and linux/arm64 is then emulated."""
    if bf.status(ARM64).state != "emulated":
        bf.install([ARM64])
    env = {k: v for k, v in os.environ.items() if k not in (bf.MISC_ENV, bf.DEFINITIONS_ENV)}
    script = (f"umount {bf.DEFAULT_MISC} && ! test -e {bf.DEFAULT_MISC}/register && "
              f"{sys.executable} -m mason binfmt linux/arm64 && "
              f"{sys.executable} -m mason binfmt --install --json linux/arm64 && "
              f"test -e {bf.DEFAULT_MISC}/register")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    before, after = p.stdout.splitlines()
    assert before.split()[:2] == ["linux/arm64", "unavailable"] and "not mounted" in before
    assert json.loads(after)["state"] == "emulated"
    assert bf.status(ARM64).state == "emulated"  # the machine's binfmt_misc is still mounted
