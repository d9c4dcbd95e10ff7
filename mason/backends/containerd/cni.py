"""The CNI side of a step's network: persistent network namespaces and plugin invocation.

A *named* network namespace is a file that an ``nsfs`` inode is bind-mounted on (what
``ip netns add`` does under /run/netns): ``unshare --net=FILE true`` creates the namespace,
binds it to FILE and exits, so the namespace outlives any process until FILE is unmounted.
runc then joins it by path (``linux.namespaces[].path`` in the OCI spec).

CNI plugins are plain executables: the command and the container's identity travel in
environment variables (``CNI_COMMAND``, ``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``,
``CNI_PATH``), the network configuration as JSON on stdin; ADD prints a result JSON
(interfaces, ips, routes, dns), a failure prints ``{"code", "msg", "details"}`` and exits
non-zero. DEL must succeed for something already (partly) gone, so it is safe in cleanup
paths and repeatable. Plugins are found on ``CNI_PATH`` (a ``:``-separated list of dirs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mason.backends import libc

DEFAULT_CNI_PATH = ("/usr/lib/cni", "/opt/cni/bin")  # Debian's containernetworking-plugins; upstream
CNI_VERSION = "1.0.0"
PLUGIN_TIMEOUT = 60.0  # seconds; a plugin waits on the host-local lock at worst

_MNT_DETACH = 2


class CniError(Exception):
    """A plugin failed, or could not be run. ``str()`` is one line, fit for a warning."""


@dataclass(frozen=True, slots=True)
class CniResult:
    """What the ``bridge`` plugin's ADD reports for one interface (the others are ignored)."""

    address: str | None = None  # "10.89.0.5/24"
    gateway: str | None = None  # "10.89.0.1"
    host_interface: str | None = None  # host side of the veth pair ("veth1234abcd")
    raw: Mapping[str, Any] | None = None


def find_plugins(names: Iterable[str], cni_path: Sequence[str]) -> dict[str, str]:
    """``{name: path}`` for every plugin found; raise :class:`CniError` naming the missing ones."""
    found: dict[str, str] = {}
    for name in names:
        for d in cni_path:
            p = os.path.join(d, name)
            if os.path.isfile(p) and os.access(p, os.X_OK):
                found[name] = p
                break
    missing = [n for n in names if n not in found]
    if missing:
        raise CniError(f"CNI plugin(s) {', '.join(missing)} not found in {':'.join(cni_path) or '(empty CNI_PATH)'}"
                       " (Debian package containernetworking-plugins)")
    return found


def invoke(plugin: str, command: str, *, container_id: str, netns: str, ifname: str,
           config: Mapping[str, Any], cni_path: Sequence[str]) -> dict[str, Any]:
    """Run one plugin binary with the CNI environment and ``config`` on stdin; return its
    result JSON (``{}`` for DEL)."""
    env = dict(os.environ)
    env.update(CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS=netns,
               CNI_IFNAME=ifname, CNI_PATH=":".join(cni_path))
    env.pop("CNI_ARGS", None)
    try:
        proc = subprocess.run([plugin], input=json.dumps(config).encode(), env=env, capture_output=True,
                              timeout=PLUGIN_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CniError(f"{os.path.basename(plugin)} {command}: {e}") from None
    out = proc.stdout.strip()
    if proc.returncode != 0:
        raise CniError(f"{os.path.basename(plugin)} {command}: {_error_message(out, proc.stderr)}")
    if not out:
        return {}
    try:
        return json.loads(out)
    except ValueError:
        raise CniError(f"{os.path.basename(plugin)} {command}: unreadable result {out[:200]!r}") from None


def _error_message(stdout: bytes, stderr: bytes) -> str:
    try:
        err = json.loads(stdout)
        msg = str(err.get("msg") or "failed")
        if err.get("details"):
            msg += f": {err['details']}"
        return msg
    except (ValueError, AttributeError):
        text = (stderr or stdout).decode(errors="replace").strip().splitlines()
        return text[-1] if text else "failed"


def parse_result(result: Mapping[str, Any], ifname: str) -> CniResult:
    """Pick the address and gateway of ``ifname`` (the one with a ``sandbox``) and the host-side
    veth out of an ADD result. Works for results of CNI 0.3.x–1.0 (0.3/0.4 add ``version`` to
    each ip, which is ignored)."""
    ifaces = list(result.get("interfaces") or [])
    idx = next((i for i, it in enumerate(ifaces) if it.get("name") == ifname and it.get("sandbox")), None)
    address = gateway = None
    for ip in result.get("ips") or []:
        if idx is None or ip.get("interface") in (None, idx):
            address, gateway = ip.get("address"), ip.get("gateway")
            if address and "." in address:  # prefer IPv4 when there are several
                break
    # The bridge plugin lists the bridge, then the host veth (no sandbox), then the container side.
    host_if = next((it.get("name") for it in ifaces
                    if not it.get("sandbox") and str(it.get("name", "")).startswith("veth")), None)
    return CniResult(address, gateway, host_if, dict(result))


def iptables(*args: str, check: bool = True) -> int:
    """Run ``iptables -w ARGS`` (waiting for the xtables lock); its exit status. With ``check``,
    a non-zero status raises :class:`CniError` with iptables' message."""
    try:
        proc = subprocess.run(["iptables", "-w", *args], capture_output=True, timeout=PLUGIN_TIMEOUT, check=False)
    except FileNotFoundError:
        raise CniError("iptables not found (Debian package iptables)") from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CniError(f"iptables {' '.join(args)}: {e}") from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise CniError(f"iptables {' '.join(args)}: {msg[-1] if msg else proc.returncode}")
    return proc.returncode


# -- named network namespaces --------------------------------------------------------------


def create_netns(path: str | os.PathLike[str]) -> None:
    """A new network namespace, bind-mounted on ``path`` (which must not exist yet)."""
    path = os.fspath(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    try:
        proc = subprocess.run(["unshare", f"--net={path}", "true"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        _unlink(path)
        raise CniError(f"creating a network namespace: {e}") from None
    if proc.returncode != 0:
        _unlink(path)
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise CniError(f"creating a network namespace: {msg[-1] if msg else 'unshare failed'}")


def remove_netns(path: str | os.PathLike[str]) -> None:
    """Unmount and delete a namespace made by :func:`create_netns` (the namespace itself goes
    when no process is left in it). Fine if it is already gone or was never mounted."""
    path = os.fspath(path)
    if is_mountpoint(path):
        err = libc.umount2(path, _MNT_DETACH)
        if err:
            raise CniError(f"unmounting network namespace {path}: {os.strerror(err)}")
    _unlink(path)


def is_mountpoint(path: str | os.PathLike[str]) -> bool:
    target = os.path.realpath(os.fspath(path))
    with open("/proc/self/mountinfo") as f:
        return any(_unescape(line.split()[4]) == target for line in f)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...)
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def netns_exists(path: str | os.PathLike[str]) -> bool:
    return Path(path).exists() and is_mountpoint(path)
