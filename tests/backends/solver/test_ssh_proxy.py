"""The per-mount ssh agent socket: owned and moded as the mount asks, relaying to the agent."""

from __future__ import annotations

import os
import socket
import stat
import threading

from mason.backends.solver.secrets import Secrets


def _echo_agent(path: str) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                while data := c.recv(4096):
                    c.sendall(b"agent:" + data)

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_proxy_socket_has_the_mount_owner_and_mode_and_relays(tmp_path):
    agent = str(tmp_path / "agent.sock")
    srv = _echo_agent(agent)
    secrets = Secrets(ssh={"default": [agent]})
    try:
        path = secrets.ssh_proxy("default", 1000, 1000, 0o660)
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o660)
        for msg in (b"hello", b"again"):  # each connection is relayed on its own
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(path)
                c.sendall(msg)
                c.shutdown(socket.SHUT_WR)
                got = b""
                while chunk := c.recv(4096):
                    got += chunk
            assert got == b"agent:" + msg
    finally:
        secrets.close()
        srv.close()
    assert not os.path.exists(path)


def test_no_socket_for_an_unknown_id(tmp_path):
    secrets = Secrets(ssh={})
    try:
        assert secrets.ssh_proxy("default", 0, 0, 0o600) is None
    finally:
        secrets.close()
