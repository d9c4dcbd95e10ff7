"""A build's secrets, SSH agents and registry credentials as the client's session serves them
(``buildctl --secret``, ``--ssh``, its Docker config): BuildKit's
``moby.buildkit.secrets.v1.Secrets``, ``moby.sshforward.v1.SSH`` and ``moby.filesync.v1.Auth``.

A secret is fetched from the client the first time a step asks for it and kept in memory for
the build (redacted from every log line from then on); it is written, like a local one, only to
the build's tmpfs directory for a ``secret`` mount. An ``ssh`` mount gets a socket of the
mount's owner and mode whose every connection is relayed to the client's agent through the
session (one ``ForwardAgent`` stream per connection).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from typing import Any

from mason.backends.solver.secrets import MAX_SECRET_SIZE, Secrets
from mason.backends.sources.auth import Credentials, CredentialStore, _host_of, _is_docker_hub
from mason.server.session import Session


class SessionSecrets(Secrets):
    def __init__(self, session: Session, stubs: Any):
        super().__init__()
        self.session, self.pb = session, stubs
        self._fetched: dict[str, bytes | None] = {}
        self._fetch_lock = threading.Lock()

    def _get(self, sid: str) -> bytes | None:
        with self._fetch_lock:
            if sid not in self._fetched:
                value = self.session.get_secret(self.pb, sid, MAX_SECRET_SIZE)
                if value is not None:
                    self.redactor.add(value)
                    self._values[sid] = value
                self._fetched[sid] = value
            return self._fetched[sid]

    def has(self, sid: str) -> bool:
        return self._get(sid) is not None

    def value(self, sid: str) -> bytes | None:
        return self._get(sid)

    def ssh_socket(self, sid: str) -> str | None:
        return None  # no agent socket on this machine: the client's is reached through the session

    def ssh_proxy(self, sid: str, uid: int, gid: int, mode: int) -> str | None:
        if not self.session.has_agent(self.pb, sid):
            return None
        path = self._ensure_dir() / f"ssh-{uuid.uuid4().hex[:12]}.sock"
        proxy = _SessionAgentProxy(self.session, self.pb, sid, str(path), uid, gid, mode)
        with self._lock:
            self._proxies.append(proxy)  # type: ignore[arg-type]  # closed with the build like a local one
        return str(path)


class _SessionAgentProxy:
    """A unix socket (owner and mode as the mount asks) relaying each connection to the
    client's agent ``sid``."""

    def __init__(self, session: Session, stubs: Any, sid: str, path: str, uid: int, gid: int, mode: int):
        self.session, self.pb, self.sid, self.path = session, stubs, sid, path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        os.chown(path, uid, gid)
        os.chmod(path, mode & 0o777)
        self._sock.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, name="mason-ssh-session", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session.forward_agent, args=(self.pb, self.sid, conn),
                             name="mason-ssh-relay", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class SessionCredentials(CredentialStore):
    """Registry credentials asked from the client's session (``Auth/Credentials``), once per
    host and build; never the daemon's own Docker config (as buildkitd: a client builds with
    its own credentials, or anonymously). Without a session: anonymous."""

    def __init__(self, session: Session | None, stubs: Any):
        super().__init__(use_docker_config=False)
        self.session, self.pb = session, stubs
        self._asked: dict[str, Credentials | None] = {}
        self._ask_lock = threading.Lock()

    def get(self, host: str) -> Credentials | None:
        if self.session is None:
            return None
        h = _host_of(host)
        if _is_docker_hub(h):
            h = "registry-1.docker.io"  # the name BuildKit's clients expect for Docker Hub
        with self._ask_lock:
            if h not in self._asked:
                got = self.session.credentials(self.pb, h)
                if got is None:
                    self._asked[h] = None
                elif got[0]:
                    self._asked[h] = Credentials(got[0], got[1])
                else:  # no username: the secret is an identity (refresh) token, as buildctl sends one
                    self._asked[h] = Credentials("<token>", "", got[1])
            return self._asked[h]
