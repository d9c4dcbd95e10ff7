"""Running RUN steps of another architecture: the kernel's ``binfmt_misc`` and QEMU user mode.

A container of a foreign platform runs through an interpreter registered with ``binfmt_misc``:
Debian's ``qemu-user-static`` ships the interpreters (``/usr/bin/qemu-aarch64-static``, …) and
their entry definitions (``/usr/lib/binfmt.d/qemu-*.conf`` in systemd's format, and
``/usr/share/binfmts/qemu-*`` for ``binfmt-support``). mason registers those definitions
itself, with the ``F`` flag (the kernel opens the interpreter at registration, so it works in
a container whose root filesystem has no QEMU): :func:`install` does (``mason binfmt
--install``), and :func:`require` does when a build needs it and mason runs as root, mounting
``binfmt_misc`` first if it is not mounted. An entry someone *disabled* is left disabled, and an
entry registered without ``F`` is not replaced, except by an explicit ``mason binfmt --install``.

:func:`status` says how a platform runs here: ``native`` (the host's architecture, or one its
kernel runs directly — i386 on amd64 — checked by running a tiny probe executable),
``emulated`` (an enabled ``binfmt_misc`` entry with ``F`` matches its ELF header) or
``unavailable`` (with the reason and what to do). Entries are matched by their magic and mask
against the probe's ELF header, not by name, so an entry registered by ``binfmt-support``,
systemd or ``tonistiigi/binfmt`` counts as well.

Two environment variables point mason elsewhere (tests use them; they change nothing
machine-wide): ``MASON_BINFMT_MISC`` — the ``binfmt_misc`` directory to read and register in
(default ``/proc/sys/fs/binfmt_misc``); ``MASON_BINFMT_DEFINITIONS`` — colon-separated
directories holding the entry definitions (default the two Debian directories above).
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mason.ir.errors import MasonError, SourceLoc
from mason.ir.resolver import PlatformSpec

__all__ = ["ArchStatus", "Entry", "EmulationUnavailable", "KNOWN_PLATFORMS", "status", "report", "install",
           "require", "binfmt_dir", "probe_binary"]

DEFAULT_MISC = "/proc/sys/fs/binfmt_misc"
DEFAULT_DEFINITIONS = ("/usr/lib/binfmt.d", "/usr/share/binfmts")
MISC_ENV = "MASON_BINFMT_MISC"
DEFINITIONS_ENV = "MASON_BINFMT_DEFINITIONS"
INSTALL_HINT = "apt-get install qemu-user-static"

# OCI architecture → QEMU's name for it (the entry is "qemu-<name>")
QEMU_NAMES = {
    "amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm", "riscv64": "riscv64",
    "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "mips64le": "mips64el", "mips64": "mips64",
    "mipsle": "mipsel", "mips": "mips", "loong64": "loongarch64",
}
KNOWN_PLATFORMS = ("linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/riscv64",
                   "linux/ppc64le", "linux/s390x", "linux/mips64le", "linux/loong64")
# what a host's kernel may run without an interpreter (the probe decides)
_COMPAT = {"amd64": ("386",), "arm64": ("arm",)}

# ---------------------------------------------------------------- probe executables
# A minimal static ELF per architecture whose only code is exit(42): run on the host, it tells
# whether the kernel (natively or through binfmt_misc) really runs that architecture, and its
# header is what a binfmt_misc entry's magic is matched against.

_BASE = 0x400000
_PROBE_EXIT = 42


def _words(order: str, *ws: int) -> bytes:
    return b"".join(struct.pack(order + "I", w) for w in ws)


# arch → (ELF class bits, little-endian, e_machine, code, e_flags)
_PROBES: dict[str, tuple[int, bool, int, bytes, int]] = {
    "amd64": (64, True, 62, bytes.fromhex("b83c000000bf2a0000000f05"), 0),  # mov eax,60; mov edi,42; syscall
    "386": (32, True, 3, bytes.fromhex("b801000000bb2a000000cd80"), 0),  # mov eax,1; mov ebx,42; int 0x80
    "arm64": (64, True, 183, _words("<", 0xD2800BA8, 0xD2800540, 0xD4000001), 0),  # x8=93; x0=42; svc 0
    "arm": (32, True, 40, _words("<", 0xE3A07001, 0xE3A0002A, 0xEF000000), 0x05000000),  # r7=1; r0=42; svc 0
    "riscv64": (64, True, 243, _words("<", 0x05D00893, 0x02A00513, 0x00000073), 0),  # a7=93; a0=42; ecall
    "ppc64le": (64, True, 21, _words("<", 0x38000001, 0x3860002A, 0x44000002), 2),  # r0=1; r3=42; sc
    "s390x": (64, False, 22, bytes.fromhex("a729002a0a01"), 0),  # lghi r2,42; svc 1
}


def probe_binary(arch: str) -> bytes | None:
    """The probe executable for OCI architecture ``arch`` (None when mason has none)."""
    spec = _PROBES.get(arch)
    if spec is None:
        return None
    bits, little, machine, code, flags = spec
    e = "<" if little else ">"
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if little else 2, 1, 0]) + bytes(8)
    if bits == 64:
        eh, ph = 64, 56
        total = eh + ph + len(code)
        hdr = ident + struct.pack(e + "HHIQQQIHHHHHH", 2, machine, 1, _BASE + eh + ph, eh, 0, flags, eh, ph, 1,
                                  0, 0, 0)
        phdr = struct.pack(e + "IIQQQQQQ", 1, 5, 0, _BASE, _BASE, total, total, 0x1000)
    else:
        eh, ph = 52, 32
        total = eh + ph + len(code)
        hdr = ident + struct.pack(e + "HHIIIIIHHHHHH", 2, machine, 1, _BASE + eh + ph, eh, 0, flags, eh, ph, 1,
                                  0, 0, 0)
        phdr = struct.pack(e + "IIIIIIII", 1, 0, _BASE, _BASE, total, total, 5, 0x1000)
    return hdr + phdr + code


_probe_cache: dict[str, bool] = {}
_probe_lock = threading.Lock()


def _runs(arch: str) -> bool:
    """Whether the probe for ``arch`` runs here and exits 42 (cached per process)."""
    with _probe_lock:
        if arch in _probe_cache:
            return _probe_cache[arch]
    data = probe_binary(arch)
    ok = False
    if data is not None:
        with tempfile.TemporaryDirectory(prefix="mason-binfmt-") as d:
            p = Path(d) / f"probe-{arch}"
            p.write_bytes(data)
            p.chmod(0o755)
            try:
                ok = subprocess.run([str(p)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=20).returncode == _PROBE_EXIT
            except (OSError, subprocess.SubprocessError):
                ok = False
    with _probe_lock:
        _probe_cache[arch] = ok
    return ok


# ---------------------------------------------------------------- binfmt_misc entries

def binfmt_dir() -> Path:
    return Path(os.environ.get(MISC_ENV) or DEFAULT_MISC)


def _definition_dirs() -> list[Path]:
    raw = os.environ.get(DEFINITIONS_ENV)
    return [Path(p) for p in (raw.split(":") if raw is not None else DEFAULT_DEFINITIONS) if p]


@dataclass(frozen=True)
class Entry:
    """A ``binfmt_misc`` entry (registered) or definition (to register)."""

    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes | None

    def matches(self, header: bytes) -> bool:
        chunk = header[self.offset:self.offset + len(self.magic)]
        if len(chunk) != len(self.magic):
            return False
        mask = self.mask or b"\xff" * len(self.magic)
        return all((a & m) == (b & m) for a, b, m in zip(chunk, self.magic, mask, strict=False))

    def register_line(self) -> str:
        def esc(b: bytes) -> str:
            return "".join(f"\\x{c:02x}" for c in b)

        flags = self.flags if "F" in self.flags else self.flags + "F"
        mask = esc(self.mask) if self.mask else ""
        return f":{self.name}:M:{self.offset}:{esc(self.magic)}:{mask}:{self.interpreter}:{flags}"


def _read_entry(path: Path) -> Entry | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    if not lines or lines[0] not in ("enabled", "disabled"):
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.replace(":", " ", 1).partition(" ") if line.startswith("flags:") else line.partition(" ")
        fields[k.strip()] = v.strip()
    if "magic" not in fields:
        return None  # an extension match (E), not ELF
    try:
        magic = bytes.fromhex(fields["magic"])
        mask = bytes.fromhex(fields["mask"]) if fields.get("mask") else None
        offset = int(fields.get("offset", "0"))
    except ValueError:
        return None
    return Entry(path.name, lines[0] == "enabled", fields.get("interpreter", ""), fields.get("flags", ""), offset,
                 magic, mask)


def _entries(d: Path) -> list[Entry]:
    out: list[Entry] = []
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return out
    for n in names:
        if n in ("register", "status"):
            continue
        e = _read_entry(d / n)
        if e is not None:
            out.append(e)
    return out


def _unescape(s: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        if s.startswith("\\x", i) and i + 4 <= len(s):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += s[i].encode()
            i += 1
    return bytes(out)


def _parse_systemd(text: str) -> Entry | None:
    """A ``binfmt.d`` line ``:name:M:offset:magic:mask:interpreter:flags``."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        parts = line[1:].split(line[0])
        if len(parts) < 6 or parts[1] != "M":
            return None
        try:
            return Entry(parts[0], True, parts[5], parts[6] if len(parts) > 6 else "", int(parts[2] or 0),
                         _unescape(parts[3]), _unescape(parts[4]) if parts[4] else None)
        except ValueError:
            return None
    return None


def _parse_binfmts(name: str, text: str) -> Entry | None:
    """A ``binfmt-support`` format file (``interpreter …``, ``magic …``, ``fix_binary yes``…)."""
    f: dict[str, str] = {}
    for line in text.splitlines():
        k, _, v = line.strip().partition(" ")
        f[k] = v.strip()
    if "magic" not in f or "interpreter" not in f:
        return None
    flags = ("P" if f.get("preserve") == "yes" else "") + ("C" if f.get("credentials") == "yes" else "") + "F"
    try:
        return Entry(name, True, f["interpreter"], flags, int(f.get("offset") or 0), _unescape(f["magic"]),
                     _unescape(f["mask"]) if f.get("mask") else None)
    except ValueError:
        return None


def definition(arch: str) -> Entry | None:
    """The entry to register for ``arch``, from the installed definitions (None: QEMU for it is
    not installed)."""
    q = QEMU_NAMES.get(arch)
    if q is None:
        return None
    for d in _definition_dirs():
        for fname, parse in ((f"qemu-{q}.conf", _parse_systemd), (f"qemu-{q}", None)):
            p = d / fname
            try:
                text = p.read_text()
            except OSError:
                continue
            e = parse(text) if parse is not None else _parse_binfmts(f"qemu-{q}", text)
            if e is not None and os.path.exists(e.interpreter):
                return e
    return None


# ---------------------------------------------------------------- status

@dataclass(frozen=True)
class ArchStatus:
    """How ``platform`` runs on this host: ``state`` is ``native``, ``emulated`` or
    ``unavailable``; ``entry`` names the binfmt_misc entry used (or in the way); ``reason`` says
    why it is unavailable and ``fix`` what to do; ``installable``: :func:`install` would make
    it run."""

    platform: PlatformSpec
    state: str
    entry: Entry | None = None
    reason: str = ""
    fix: str = ""
    installable: bool = False

    @property
    def runs(self) -> bool:
        return self.state != "unavailable"


def _mounted(d: Path) -> bool:
    return (d / "register").exists()


def status(platform: PlatformSpec | str, host: PlatformSpec | None = None) -> ArchStatus:
    """How ``platform`` runs here (see the module docstring)."""
    p = PlatformSpec.parse(platform) if isinstance(platform, str) else platform.normalized()
    h = host or PlatformSpec.default()
    if p.os != "linux":
        return ArchStatus(p, "unavailable", reason=f"mason runs Linux containers only, not {p.os}")
    if p.architecture == h.architecture:
        return ArchStatus(p, "native")
    d = binfmt_dir()
    have = definition(p.architecture)
    header = probe_binary(p.architecture)
    if header is None and have is not None:  # no probe: match entries against the definition's magic
        header = bytes(have.offset) + have.magic
    mounted = _mounted(d)
    off = mounted and _read_text(d / "status") == "disabled"
    matching = [e for e in _entries(d) if header is not None and e.matches(header)] if mounted and not off else []
    usable = next((e for e in matching if e.enabled and "F" in e.flags), None)
    if usable is not None:
        return ArchStatus(p, "emulated", usable)
    if p.architecture in _COMPAT.get(h.architecture, ()) and not any(e.enabled for e in matching) \
            and _runs(p.architecture):
        return ArchStatus(p, "native")
    q = QEMU_NAMES.get(p.architecture)
    if q is None or header is None:
        return ArchStatus(p, "unavailable", reason=f"mason knows no emulator for {p.architecture}")
    install_fix = "run 'mason binfmt --install' as root"
    if off:
        return ArchStatus(p, "unavailable", reason=f"binfmt_misc is disabled ({d}/status)",
                          fix=f"enable it (echo 1 > {d}/status)")
    disabled = next((e for e in matching if not e.enabled), None)
    if disabled is not None:
        return ArchStatus(p, "unavailable", disabled, reason=f"its binfmt_misc entry {disabled.name} is disabled",
                          fix=f"enable it (echo 1 > {d}/{disabled.name}) or {install_fix}",
                          installable=have is not None)
    no_f = next((e for e in matching if "F" not in e.flags), None)
    if no_f is not None:
        return ArchStatus(p, "unavailable", no_f,
                          reason=f"its binfmt_misc entry {no_f.name} lacks the F flag, so containers cannot "
                                 "reach the interpreter",
                          fix=f"{install_fix} (it registers qemu-{q} again with F)", installable=have is not None)
    if have is None:
        return ArchStatus(p, "unavailable", reason=f"no emulator for {p.architecture} is installed",
                          fix=f"install QEMU user-mode emulation ({INSTALL_HINT}), then {install_fix}")
    where = "binfmt_misc is not mounted" if not mounted else f"no binfmt_misc entry runs {p.architecture}"
    return ArchStatus(p, "unavailable", reason=f"{where} (qemu-{q} is installed but not registered)",
                      fix=install_fix, installable=True)


def _read_text(p: Path) -> str:
    try:
        return p.read_text().strip()
    except OSError:
        return ""


def report(platforms: Iterable[str | PlatformSpec] = KNOWN_PLATFORMS) -> list[ArchStatus]:
    return [status(p) for p in platforms]


# ---------------------------------------------------------------- registering

def _mount_misc(d: Path) -> None:
    if _mounted(d):
        return
    if str(d) != DEFAULT_MISC:
        raise MasonError(f"{d} is not a mounted binfmt_misc ({MISC_ENV} points there)")
    from mason.backends.containerd.rootfs import mount_fs

    try:
        mount_fs("binfmt_misc", str(d))
    except MasonError as e:
        raise MasonError(f"cannot mount binfmt_misc: {e.message}") from None


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def install(platforms: Iterable[str | PlatformSpec] | None = None, *, replace: bool = True) -> list[str]:
    """Register QEMU for ``platforms`` (default: every known one that is installed and does not
    run yet) with the ``F`` flag; returns the entries registered. ``replace``: also re-register
    an entry that is disabled or lacks ``F`` (``mason binfmt --install``); without it those are
    left alone (what a build does on its own). Needs root."""
    wanted = [s for s in report(platforms if platforms is not None else KNOWN_PLATFORMS) if not s.runs]
    todo = [s for s in wanted if s.installable and (replace or s.entry is None)]
    if not todo:
        return []
    if os.geteuid() != 0:
        what = ", ".join(str(s.platform) for s in todo)
        raise MasonError(f"registering emulators in binfmt_misc needs root ({what})")
    d = binfmt_dir()
    _mount_misc(d)
    done: list[str] = []
    for s in todo:
        e = definition(s.platform.architecture)
        if e is None or e.name in done:
            continue
        if s.entry is not None:  # disabled, or without F: take it out first
            with contextlib.suppress(OSError):
                _write(d / s.entry.name, "-1")
        try:
            _write(d / "register", e.register_line())
        except OSError as err:
            if err.errno != errno.EEXIST:  # EEXIST: another process registered it meanwhile
                raise MasonError(f"cannot register {e.name} in {d}: {err.strerror or err}") from None
        done.append(e.name)
    return done


# ---------------------------------------------------------------- what a build asks

class EmulationUnavailable(MasonError):
    """RUN steps for a platform this host cannot run."""


_install_lock = threading.Lock()


def require(platforms: Iterable[tuple[PlatformSpec, SourceLoc | None]], *, auto_install: bool | None = None,
            host: PlatformSpec | None = None) -> list[ArchStatus]:
    """Make sure every platform (each with the location of a RUN that needs it) runs here,
    registering QEMU first when that helps and mason is root (``auto_install`` None: as root).
    Raises :class:`EmulationUnavailable` naming each platform that cannot run and what to do."""
    firsts: dict[PlatformSpec, SourceLoc | None] = {}
    for p, loc in platforms:
        firsts.setdefault(p.normalized(), loc)
    got = {p: status(p, host) for p in firsts}
    bad = [s for s in got.values() if not s.runs]
    if bad and (auto_install if auto_install is not None else os.geteuid() == 0):
        if any(s.installable and s.entry is None for s in bad):
            with _install_lock, contextlib.suppress(MasonError):
                install([s.platform for s in bad], replace=False)
            got = {p: status(p, host) for p in firsts}
            bad = [s for s in got.values() if not s.runs]
    if bad:
        h = host or PlatformSpec.default()
        lines = [f"{s.platform}: {s.reason}" + (f"; {s.fix}" if s.fix else "") for s in bad]
        what = ", ".join(str(s.platform) for s in bad)
        msg = (f"cannot run RUN steps for {what} on this {h} host: " + lines[0] if len(lines) == 1 else
               f"cannot run RUN steps for {what} on this {h} host:\n  " + "\n  ".join(lines))
        raise EmulationUnavailable(msg, firsts[bad[0].platform])
    return list(got.values())
