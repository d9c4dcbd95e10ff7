"""``mason serve`` against buildkitd v0.32.2, both driven by the same ``buildctl`` (BuildKit's
client from ``../shared/tools/buildkit``), in one run: ``bench/peers.py``'s cases (parallel and
chain20 cold and no-op, a content edit, a 200 MB context cold and warm), medians, the RUN counts
and a mason-serve/buildkit ratio column.

* mason serve: ``.venv/bin/mason serve --addr unix://…`` (bytecode caching on:
  ``PYTHONDONTWRITEBYTECODE`` is removed from its environment) under a temporary ``MASON_ROOT``
  with mason's own containerd; busybox from ``mason load -i`` (as ``docker.io/library/busybox``).
  buildctl runs ``build --frontend dockerfile.v0 --local context=… --local dockerfile=…
  --output type=image,name=…``. Cold: ``mason rmi`` of the case's image, then ``buildctl prune
  --all`` through the daemon.
* BuildKit: ``peers.BuildKit`` (OCI worker, its own root, host network, busybox as a named
  context from an OCI layout).

* mason-host: mason's own client (``mason build --host unix://… -t …``, issue 15's client mode)
  against a mason serve of its own (own root and containerd: an edit's reruns are its own):
  the session, progress and outputs done by mason instead of buildctl, so its column next to
  mason-serve's is the client's cost.

A ``no-op`` row is the rebuild of an unchanged context: the figure issue 15 targets (≤ 0.10 s
and ≤ BuildKit's). The whole ``buildctl`` process is timed on both sides.

    .venv/bin/python bench/serve_bench.py [--rounds 5] [--cases parallel,chain20,cachebust,metadata,bigcontext]
                                          [--builders mason-serve,mason-host,buildkit] [--keep]

Prints figures; asserts nothing. Starts and stops its own daemons (mason serve, containerd, buildkitd).
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from peers import MASON, TOOLS, Builder, BuildKit, Mason, _run, drive, timed  # noqa: E402


class MasonServe(Builder):
    """``mason serve`` on its own root, driven by buildctl."""

    name = "mason-serve"

    def __init__(self, work: Path, archive: Path, name: str = "mason-serve"):
        self.cli = Mason(work, archive, name)  # the root, busybox loaded, the CLI for rmi
        self.dir = work / name
        self.dir.mkdir()
        self.sock = self.dir / "mason.sock"
        self.addr = f"unix://{self.sock}"
        self.log = open(self.dir / "serve.log", "wb")
        self.proc = subprocess.Popen([str(MASON), "serve", "--addr", self.addr], env=self.cli.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mason serve did not start; see {self.dir / 'serve.log'}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(self.sock))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def ctl(self, *args: str) -> list[str]:
        return [str(TOOLS / "buildctl"), "--addr", self.addr, *args]

    def build(self, ctx: Path, tag: str) -> tuple[float, int]:
        return timed(self.ctl("build", "--progress=plain", "--frontend", "dockerfile.v0",
                               "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                               "--output", f"type=image,name={tag}"), None, f"buildctl build {ctx.name} (mason serve)")

    def reset(self, tags: list[str]) -> None:
        for t in tags:
            subprocess.run([str(MASON), "rmi", t], env=self.cli.env, capture_output=True)
        _run(self.ctl("prune", "--all"), what="buildctl prune (mason serve)")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.cli.close()


class MasonHost(Builder):
    """mason's CLI as the client (``mason build --host``) of its own :class:`MasonServe`."""

    name = "mason-host"

    def __init__(self, work: Path, archive: Path):
        self.serve = MasonServe(work, archive, "mason-host-serve")

    def build(self, ctx: Path, tag: str) -> tuple[float, int]:
        return timed([str(MASON), "build", "--host", self.serve.addr, "--progress=plain", "-t", tag, str(ctx)],
                     self.serve.cli.env, f"mason build --host {ctx.name}")

    def reset(self, tags: list[str]) -> None:
        self.serve.reset(tags)

    def close(self) -> None:
        self.serve.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cases", default="parallel,chain20,cachebust,metadata,bigcontext")
    ap.add_argument("--builders", default="mason-serve,mason-host,buildkit")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (its path is printed)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mason-serve-bench-"))

    def add(builders: list[Builder], layout: Path, digest: str, archive: Path) -> None:
        for n in args.builders.split(","):
            if n == "mason-serve":
                builders.append(MasonServe(work, archive))
            elif n == "mason-host":
                builders.append(MasonHost(work, archive))
            elif n == "buildkit":
                builders.append(BuildKit(work, layout, digest))
            else:
                raise SystemExit(f"unknown builder {n!r} (mason-serve, mason-host, buildkit)")

    return drive(args, work, add, lambda builders: (
        f"both driven by {TOOLS / 'buildctl'}; mason serve: {MASON} serve; "
        f"BuildKit: {TOOLS / 'buildkitd'} (OCI worker, host network)"))


if __name__ == "__main__":
    sys.exit(main())
