"""Build secrets (``--secret id=…,src=FILE|env=VAR``) and SSH agent sockets (``--ssh``).

A secret's value is read once at the start of a build and kept in memory. For a ``secret``
mount it is written to a file in a per-build directory on a tmpfs (``/dev/shm``, else a tmpfs
mason mounts), never inside a snapshot, and that file is bind-mounted read-only into the step;
the directory is removed at the end of the build. Values never enter a cache key (only the
secret's id, which the op carries), a layer, the image config or a log: :class:`Redactor`
replaces every value in step output with ``****`` before it reaches an event, an error
message or a stored log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mason.ir.errors import MasonError

MASK = b"****"
MIN_REDACT = 3  # shorter values would mangle every log without protecting anything
MAX_SECRET_SIZE = 500 * 1024  # BuildKit's limit (secretsprovider.MaxSecretSize)


@dataclass(frozen=True, slots=True)
class SecretSpec:
    id: str
    src: str | None = None  # a file
    env: str | None = None  # an environment variable


def parse_secret(text: str) -> SecretSpec:
    """``id=NAME[,src=FILE|source=FILE][,env=VAR][,type=file|env]`` as ``docker buildx``; with
    neither src nor env, the variable named ``id`` if set, else the file ``id``."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise MasonError(f"--secret {text!r}: expected key=value pairs (id=…,src=…|env=…)")
        fields[k.strip().lower()] = v
    sid = fields.pop("id", "")
    src = fields.pop("src", None)
    source = fields.pop("source", None)
    src = source if src is None else src
    env = fields.pop("env", None)
    typ = fields.pop("type", None)
    if fields:
        raise MasonError(f"--secret {text!r}: unknown key {sorted(fields)[0]!r} (valid: id, src, env, type)")
    if not sid:
        raise MasonError(f"--secret {text!r}: id= is required")
    if typ is not None and typ not in ("file", "env"):
        raise MasonError(f"--secret {text!r}: unsupported type {typ!r} (valid: file, env)")
    if src == "" or env == "":
        raise MasonError(f"--secret {text!r}: {'src' if src == '' else 'env'}= needs a value")
    if typ == "env" and env is None:
        env, src = src or sid, None
    if src is None and env is None:
        if typ != "file" and sid in os.environ:
            env = sid
        else:
            src = sid
    return SecretSpec(sid, src, env)


def parse_ssh(text: str) -> tuple[str, list[str]]:
    """``default[=SOCKET|KEY…]`` → (id, paths); without paths, ``$SSH_AUTH_SOCK``. Like buildx,
    every path must exist now (whether it is a socket is checked when a step uses it)."""
    sid, _, rest = text.partition("=")
    sid = sid.strip() or "default"
    if any(c.isspace() or c == "," for c in sid):
        raise MasonError(f"--ssh {text!r}: invalid id {sid!r}")
    paths = [p for p in rest.split(",") if p] if rest else []
    if not paths:
        sock = os.environ.get("SSH_AUTH_SOCK")
        if not sock:
            raise MasonError(f"--ssh {text!r}: no socket given and SSH_AUTH_SOCK is not set")
        paths = [sock]
    for p in paths:
        try:
            os.stat(os.path.expanduser(p))
        except (OSError, ValueError) as e:
            raise MasonError(f"--ssh {sid}: cannot use {p}: {getattr(e, 'strerror', None) or e}") from None
    return sid, paths


class Secrets:
    """The secrets and SSH sockets of one build."""

    def __init__(self, specs: Iterable[SecretSpec] = (), ssh: Mapping[str, list[str]] | None = None,
                 values: Mapping[str, bytes] | None = None):
        self._values: dict[str, bytes] = dict(values or {})
        for s in specs:
            self._values[s.id] = _load(s)
        self.ssh: dict[str, list[str]] = dict(ssh or {})
        self._dir: Path | None = None
        self._lock = threading.Lock()
        self._proxies: list[_AgentProxy] = []
        self.redactor = Redactor(self._values.values())

    def has(self, sid: str) -> bool:
        return sid in self._values

    def has_any(self) -> bool:
        """Whether any secret was given (a client session offers the service only then)."""
        return bool(self._values)

    def value(self, sid: str) -> bytes | None:
        return self._values.get(sid)

    def ssh_socket(self, sid: str) -> str | None:
        paths = self.ssh.get(sid)
        if not paths:
            return None
        for p in paths:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.stat(p).st_mode):
                    return p
        raise MasonError(f"--ssh {sid}: {paths[0]} is not a socket (agent forwarding needs a running ssh-agent)")

    def ssh_proxy(self, sid: str, uid: int, gid: int, mode: int) -> str | None:
        """A socket for one ssh mount, owned and moded as the mount asks (like BuildKit's
        per-mount agent socket): every connection to it is relayed to the agent socket
        ``sid``. None when no socket was given for ``sid``. Lives until :meth:`close`."""
        agent = self.ssh_socket(sid)
        if agent is None:
            return None
        d = self._ensure_dir()
        path = d / f"ssh-{uuid.uuid4().hex[:12]}.sock"
        proxy = _AgentProxy(agent, str(path), uid, gid, mode)
        with self._lock:
            self._proxies.append(proxy)
        return str(path)

    def materialize(self, sid: str, uid: int, gid: int, mode: int) -> str:
        """A file holding secret ``sid`` on a tmpfs, owned and moded as asked."""
        value = self._values[sid]
        d = self._ensure_dir()
        path = d / f"{uuid.uuid4().hex}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)
        os.chown(path, uid, gid)
        os.chmod(path, mode & 0o7777)
        return str(path)

    def _ensure_dir(self) -> Path:
        with self._lock:
            if self._dir is None:
                base = Path("/dev/shm")
                if not (base.is_dir() and _is_tmpfs(base)):
                    raise MasonError("secrets need a tmpfs at /dev/shm (so they never touch a disk)")
                self._dir = base / f"mason-secrets-{uuid.uuid4().hex[:16]}"
                self._dir.mkdir(mode=0o711)
            return self._dir

    def close(self) -> None:
        with self._lock:
            proxies, self._proxies = self._proxies, []
        for p in proxies:
            p.close()
        with self._lock:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None


class _AgentProxy:
    """A unix socket at ``path`` (uid/gid/mode as asked) relaying each connection to the ssh
    agent at ``agent``, byte for byte, on daemon threads. The agent itself only ever sees
    mason's uid, so a step running as another user can use it."""

    def __init__(self, agent: str, path: str, uid: int, gid: int, mode: int):
        self.agent = agent
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        os.chown(path, uid, gid)
        os.chmod(path, mode & 0o777)
        self._sock.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, name="mason-ssh-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(self.agent)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _is_tmpfs(path: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if parts[4] == str(path):
                    return parts[parts.index("-") + 1] == "tmpfs"
    except (OSError, ValueError, IndexError):
        return False
    return False


def _load(s: SecretSpec) -> bytes:
    if s.env is not None:
        v = os.environ.get(s.env)
        if v is None:
            raise MasonError(f"secret {s.id}: environment variable {s.env} is not set")
        return v.encode()
    assert s.src is not None
    try:
        # read at most one byte past the limit: /dev/zero or a huge file is refused, not loaded
        with open(os.path.expanduser(s.src), "rb") as f:
            value = f.read(MAX_SECRET_SIZE + 1)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise MasonError(f"secret {s.id}: cannot read {s.src}: {getattr(e, 'strerror', None) or e}") from None
    if len(value) > MAX_SECRET_SIZE:
        raise MasonError(f"secret {s.id}: {s.src} is too big (the limit is {MAX_SECRET_SIZE // 1024} KiB)")
    return value


@dataclass
class Redactor:
    """Replaces secret values in output with ``****``."""

    values: Iterable[bytes] = ()
    _needles: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        values, self.values = self.values, ()
        for v in values:
            self.add(v)

    def add(self, value: bytes) -> None:
        """Redact ``value`` too from now on (a secret fetched while the build runs)."""
        needles = set(self._needles)
        for cand in (value, value.strip(), *value.splitlines()):
            cand = cand.strip()
            if len(cand) >= MIN_REDACT:
                needles.add(cand)
        self._needles = sorted(needles, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._needles)

    def __call__(self, data: bytes) -> bytes:
        for n in self._needles:
            if n in data:
                data = data.replace(n, MASK)
        return data

    def text(self, s: str) -> str:
        return self(s.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")


class LineRedactor:
    """Redacts a byte stream line by line (a value cut across two chunks is still caught);
    ``flush`` emits the last partial line."""

    def __init__(self, redact: Redactor, emit):
        self.redact, self.emit = redact, emit
        self._buf: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, stream: str, data: bytes) -> None:
        if not self.redact:
            self.emit(stream, data)
            return
        with self._lock:
            buf = self._buf.get(stream, b"") + data
            cut = buf.rfind(b"\n") + 1
            self._buf[stream] = buf[cut:]
        if cut:
            self.emit(stream, self.redact(buf[:cut]))

    def flush(self) -> None:
        with self._lock:
            rest, self._buf = self._buf, {}
        for stream, data in rest.items():
            if data:
                self.emit(stream, self.redact(data))
