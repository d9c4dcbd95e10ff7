"""The default seccomp filter of a build step, as BuildKit's and Docker's steps run under one.

The profile is Docker's default (``profiles/seccomp/default.json``, installed by Debian's
``golang-github-docker-docker-dev``; ``MASON_SECCOMP_PROFILE=FILE`` names another file in that
format), read on first use and turned into the OCI runtime spec's ``linux.seccomp`` the way
Docker does it: the machine's architecture and its sub-architectures from ``archMap``, and of
each syscall rule only those whose ``includes``/``excludes`` (architectures, capabilities in the
bounding set, minimum kernel) hold for this machine and step. A privileged step
(``security=insecure``) runs without a filter, as in BuildKit. No profile file is an error: a
step never runs unconfined by accident.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import platform
import re
from collections.abc import Sequence
from typing import Any

from mason.ir.errors import MasonError

__all__ = ["DEFAULT_PROFILE", "profile_path", "linux_seccomp"]

DEFAULT_PROFILE = "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json"
_ENV = "MASON_SECCOMP_PROFILE"

# uname machine -> (the profile's archMap architecture, Go's GOARCH as its includes/excludes say)
_MACHINES = {
    "x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
    "armv7l": ("SCMP_ARCH_ARM", "arm"), "armv6l": ("SCMP_ARCH_ARM", "arm"), "i686": ("SCMP_ARCH_X86", "386"),
    "s390x": ("SCMP_ARCH_S390X", "s390x"), "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"), "mips64": ("SCMP_ARCH_MIPS64", "mips64"),
}


def profile_path() -> str:
    return os.environ.get(_ENV) or DEFAULT_PROFILE


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise MasonError(f"the default seccomp profile {path} is missing: install the Debian package "
                         f"golang-github-docker-docker-dev (scripts/_setup.sh does) or set {_ENV}") from None
    except (OSError, ValueError) as e:
        raise MasonError(f"cannot read the seccomp profile {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("syscalls"), list) or "defaultAction" not in data:
        raise MasonError(f"the seccomp profile {path} is not a Docker seccomp profile")
    return data


def _kernel(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _holds(cond: dict[str, Any], arch: str, caps: Sequence[str], kernel: tuple[int, int]) -> tuple[bool, ...]:
    """Which of the condition's parts are given and true: (arches, caps, minKernel)."""
    out = []
    if cond.get("arches"):
        out.append(arch in cond["arches"])
    if cond.get("caps"):
        out.append(all(c in caps for c in cond["caps"]))
    if cond.get("minKernel"):
        out.append(kernel >= _kernel(str(cond["minKernel"])))
    return tuple(out)


def _wanted(rule: dict[str, Any], arch: str, caps: Sequence[str], kernel: tuple[int, int]) -> bool:
    exc = rule.get("excludes") or {}
    if exc.get("arches") and arch in exc["arches"]:
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    if exc.get("minKernel") and kernel >= _kernel(str(exc["minKernel"])):
        return False
    return all(_holds(rule.get("includes") or {}, arch, caps, kernel))


def linux_seccomp(caps: Sequence[str], *, machine: str | None = None, release: str | None = None,
                  path: str | None = None) -> dict[str, Any]:
    """``linux.seccomp`` for a step whose bounding capabilities are ``caps``."""
    return copy.deepcopy(_convert(path or profile_path(), tuple(caps), machine or platform.machine(),
                                  release or os.uname().release))


@functools.lru_cache(maxsize=16)
def _convert(path: str, caps: tuple[str, ...], machine: str, release: str) -> dict[str, Any]:
    try:
        return _convert_unchecked(_load(path), caps, machine, release)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise MasonError(f"the seccomp profile {path} is not a Docker seccomp profile: "
                         f"{type(e).__name__} {e}") from None


def _convert_unchecked(prof: dict[str, Any], caps: tuple[str, ...], machine: str, release: str) -> dict[str, Any]:
    scmp_arch, goarch = _MACHINES.get(machine, ("", machine))
    kernel = _kernel(release)
    arches: list[str] = []
    for a in prof.get("archMap") or ():
        if a.get("architecture") == scmp_arch:
            arches += [a["architecture"], *(a.get("subArchitectures") or ())]
    out: dict[str, Any] = {"defaultAction": prof["defaultAction"], "architectures": arches, "syscalls": []}
    if prof.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = prof["defaultErrnoRet"]
    for rule in prof["syscalls"]:
        if not _wanted(rule, goarch, caps, kernel):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names) \
                or not isinstance(rule["action"], str):
            raise ValueError(f"rule {rule!r} needs names and an action")
        sc: dict[str, Any] = {"names": list(names), "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            sc["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            sc["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a} for a in rule["args"]]
        out["syscalls"].append(sc)
    return out
