"""A loopback HTTP server that demands basic auth, for the credential tests: static files
under ``/files/`` and git's smart HTTP protocol (``git http-backend`` as a CGI) under
``/git/``. Every request's path and ``Authorization`` header are recorded."""

from __future__ import annotations

import base64
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path


class AuthServer:
    def __init__(self, root: Path, user: str, password: str):
        self.root, self.user, self.password = root, user, password
        self.files = root / "files"
        self.git = root / "git"
        self.files.mkdir(parents=True)
        self.git.mkdir()
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _authorized(self) -> bool:
                got = self.headers.get("Authorization")
                with server.lock:
                    server.requests.append((self.path, got))
                want = "Basic " + base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
                if got is not None and got.lower() == want.lower():
                    return True
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="mason-test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def do_GET(self):
                if not self._authorized():
                    return
                if self.path.startswith("/git/"):
                    return self._git()
                p = server.files / self.path.split("?", 1)[0].removeprefix("/files/")
                if not self.path.startswith("/files/") or not p.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = p.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                if self._authorized():
                    self._git()

            def _git(self):
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(server.git), "GIT_HTTP_EXPORT_ALL": "1",
                       "PATH_INFO": path.removeprefix("/git"), "QUERY_STRING": query,
                       "REQUEST_METHOD": self.command, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                       "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": server.user, "GIT_CONFIG_NOSYSTEM": "1",
                       "HOME": str(server.root)}
                for h in ("Content-Encoding", "Git-Protocol"):
                    if self.headers.get(h):
                        env["HTTP_" + h.upper().replace("-", "_")] = self.headers[h]
                out = subprocess.run([shutil.which("git") or "git", "http-backend"], input=body, env=env,
                                     capture_output=True, check=False).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    k, _, v = line.partition(":")
                    if k.lower() == "status":
                        status = int(v.split()[0])
                    elif k:
                        headers.append((k, v.strip()))
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, userinfo: str | None = None) -> str:
        ui = f"{self.user}:{self.password}" if userinfo is None else userinfo
        return f"http://{ui + '@' if ui else ''}127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
