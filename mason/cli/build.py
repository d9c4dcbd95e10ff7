"""``mason build [CONTEXT]``: build a Dockerfile (defaults as ``docker build``), and the plain
progress renderer ``mason solve`` shares. The work is :func:`mason.build.build`.

``--progress=plain`` prints BuildKit's style on stderr: ``#N [stage k/n] INSTRUCTION`` when a
step starts, every line of its output as it runs prefixed ``#N ``, then ``#N DONE 1.2s``,
``#N CACHED`` or ``#N ERROR: …``. ``auto`` is plain for now (a live tty view is issue 6's).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

import click

from mason.ir.errors import MasonError


class PlainProgress:
    """Renders solver events (:mod:`mason.backends.solver.events`) as BuildKit's plain
    progress. Thread-safe: the solver calls it from its workers."""

    def __init__(self, out: TextIO | None = None, *, timestamps: bool = False):
        self.out = out or sys.stderr
        self._lock = threading.Lock()
        self._partial: dict[int, bytes] = {}
        self._started: dict[int, float] = {}
        self._last = 0
        self._status_n = 0
        self.timestamps = timestamps

    def _w(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def __call__(self, e) -> None:
        from mason.backends.solver import events as ev

        with self._lock:
            if isinstance(e, ev.VertexStarted):
                self._started[e.n] = time.monotonic()
                self._status_n = max(self._status_n, e.n)
                self._w(f"\n#{e.n} {e.name}\n")
                self._last = e.n
            elif isinstance(e, ev.VertexCached):
                self._status_n = max(self._status_n, e.n)
                self._w(f"\n#{e.n} {e.name}\n#{e.n} CACHED\n")
                self._last = e.n
            elif isinstance(e, ev.VertexLog):
                buf = self._partial.get(e.n, b"") + e.data
                *lines, rest = buf.split(b"\n")
                self._partial[e.n] = rest
                for line in lines:
                    self._line(e.n, line)
            elif isinstance(e, ev.VertexDone):
                rest = self._partial.pop(e.n, b"")
                if rest:
                    self._line(e.n, rest)
                if e.cancelled:
                    self._w(f"#{e.n} CANCELED\n")
                elif e.error is not None:
                    first = e.error.splitlines()[0] if e.error else ""
                    self._w(f"#{e.n} ERROR: {first}\n")
                else:
                    self._w(f"#{e.n} DONE {e.duration:.1f}s\n")
            elif isinstance(e, ev.Warning):
                self._w(f"WARNING: {e.message}\n")
            elif isinstance(e, ev.Status):
                self._status_n += 1
                self._w(f"\n#{self._status_n} {e.message}\n#{self._status_n} DONE\n")

    def _line(self, n: int, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        if self.timestamps and n in self._started:
            self._w(f"#{n} {time.monotonic() - self._started[n]:.3f} {text}\n")
        else:
            self._w(f"#{n} {text}\n")


def renderer(progress: str):
    if progress in ("plain", "auto", "tty"):
        return PlainProgress()
    if progress == "quiet":
        return None
    raise MasonError(f"unknown --progress {progress!r} (auto, plain, quiet)")


def common_solve_options(f):
    """Options shared by ``mason build`` and ``mason solve``."""
    for opt in reversed([
        click.option("-t", "--tag", "tags", multiple=True, metavar="NAME", help="Name the image in mason's image store."),
        click.option("-o", "--output", "outputs", multiple=True, metavar="SPEC",
                     help="type=image|oci|docker|local|tar|registry,…"),
        click.option("--secret", "secrets", multiple=True, metavar="id=ID,src=FILE|env=VAR",
                     help="A secret for RUN --mount=type=secret."),
        click.option("--ssh", "ssh", multiple=True, metavar="default[=SOCKET]", help="An SSH agent socket for RUN --mount=type=ssh."),
        click.option("--allow", "allow", multiple=True, metavar="ENTITLEMENT",
                     help="network.host or security.insecure."),
        click.option("--no-cache", is_flag=True, help="Run every step; do not use the cache."),
        click.option("--progress", default="auto", show_default=True, type=click.Choice(["auto", "plain", "tty", "quiet"]),
                     help="Progress output on stderr."),
        click.option("--insecure-registry", "insecure_registries", multiple=True, metavar="HOST",
                     help="Plain HTTP for this registry."),
        click.option("--root", envvar="MASON_ROOT", metavar="DIR", help="mason's state directory."),
        click.option("--containerd-address", envvar="MASON_CONTAINERD_ADDRESS", metavar="ADDR",
                     help="Use this containerd instead of mason's own."),
        click.option("--jobs", type=int, default=4, show_default=True, help="Steps run at the same time at most."),
        click.option("--network-default", type=click.Choice(["default", "host"]), default="default",
                     show_default=True, help="What RUN's default network is: an own namespace on a bridge, or the host's."),
    ]):
        f = opt(f)
    return f


def report(result, quiet: bool) -> None:
    if result.image is not None:
        click.echo(result.image.manifest_digest if quiet else
                   f"{result.image.manifest_digest}" + (f" {' '.join(result.names)}" if result.names else ""))


@click.command("build")
@click.argument("context", default=".", metavar="[CONTEXT]")
@click.option("-f", "--file", "dockerfile", metavar="FILE", help="The Dockerfile (default: CONTEXT/Dockerfile).")
@click.option("--target", metavar="STAGE", help="Build this stage.")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE", help="A build argument.")
@click.option("--platform", metavar="OS/ARCH", help="The target platform.")
@click.option("-O", "level", type=click.IntRange(0, 2), default=1, show_default=True, help="Optimization level.")
@click.option("--passes", metavar="PIPELINE", help="A pass pipeline instead of -O.")
@common_solve_options
def build(context: str, dockerfile: str | None, target: str | None, build_args: tuple[str, ...], platform: str | None,
          level: int, passes: str | None, tags, outputs, secrets, ssh, allow, no_cache, progress,
          insecure_registries, root, containerd_address, jobs, network_default) -> None:
    """Build the Dockerfile in CONTEXT (default: .)."""
    from mason.build import BuildRequest, build as do_build, parse_build_args

    sink = renderer(progress)
    req = BuildRequest(context=context, dockerfile=dockerfile, tags=tuple(tags), outputs=tuple(outputs),
                       target=target, build_args=parse_build_args(build_args), platform=platform,
                       secrets=tuple(secrets), ssh=tuple(ssh), allow=tuple(allow), no_cache=no_cache,
                       insecure_registries=tuple(insecure_registries), root=root,
                       containerd_address=containerd_address, jobs=jobs, level=level, passes=passes,
                       network_default=network_default, events=sink)
    result = do_build(req)
    report(result, progress == "quiet")
