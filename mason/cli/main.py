"""Entry point of the ``mason`` command.

Subcommands live in their own modules and are imported only when invoked, so ``mason --help``
and quick commands stay fast. To add one, put a click command in ``mason/cli/<module>.py`` and
name it in ``COMMANDS``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from typing import Iterator

import click

from mason.ir.errors import MasonError

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "binfmt": ("mason.cli.binfmt", "binfmt", "Show which platforms run natively, emulated (QEMU) or not; --install."),
    "build": ("mason.cli.build", "build", "Build a Dockerfile into an image (like docker build)."),
    "daemon": ("mason.cli.daemon", "daemon", "Manage mason's private containerd (status, stop, address)."),
    "du": ("mason.cli.du", "du", "Show what the build cache holds, by record (like docker buildx du)."),
    "frontend-image": ("mason.cli.frontend_image", "frontend_image",
                       "Package a mason frontend as a BuildKit gateway frontend image (# syntax=, gateway.v0)."),
    "frontends": ("mason.cli.frontends", "frontends", "List the frontends (build languages): built-ins and plugins."),
    "images": ("mason.cli.images", "images", "List the images in mason's image store."),
    "load": ("mason.cli.images", "load", "Load images from an OCI or Docker archive (like docker load)."),
    "history": ("mason.cli.history", "history", "List recorded builds (id, time, status, steps, duration)."),
    "llb": ("mason.cli.llb", "llb", "Inspect LLB Definitions (dump as json, text, dot, svg, html)."),
    "logs": ("mason.cli.logs", "logs", "Show the stored output of a build or one of its steps."),
    "lower": ("mason.cli.lower", "lower", "Lower a Dockerfile to LLB."),
    "opt": ("mason.cli.opt", "opt", "Run passes over an LLB Definition."),
    "prune": ("mason.cli.prune", "prune", "Free build cache and what no record or image references."),
    "parse": ("mason.cli.parse", "parse", "Parse a Dockerfile and report errors (or --dump its syntax tree)."),
    "rebase": ("mason.cli.rebase", "rebase", "Move an image's layers onto a new base image, running no build step."),
    "rmi": ("mason.cli.images", "rmi", "Remove images from mason's image store."),
    "serve": ("mason.cli.serve", "serve", "Run a build daemon that BuildKit's client (buildctl) drives."),
    "solve": ("mason.cli.solve", "solve", "Execute an LLB Definition (mason's or BuildKit's)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module, attr, _ = spec
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="mason")
def cli() -> None:
    """mason: a compiler toolchain for container images."""


def _take_sigint() -> None:
    """Ctrl-C cancels a build even when mason was started with SIGINT ignored (a shell without job
    control starts background commands so; CI runners do): as Go's signal.Notify does for docker and
    buildctl, take the signal back. Called from the main thread only (by :func:`_signals_cancel`)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Signalled(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: raised in the main thread like Ctrl-C's
    KeyboardInterrupt, so every ``finally`` and ``except BaseException`` that cleans up after
    Ctrl-C (tasks killed, snapshots removed, the record marked cancelled, partial outputs
    deleted) does the same for the other two."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


SIGNALS: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}


@contextlib.contextmanager
def _signals_cancel() -> Iterator[None]:
    """While a command runs, SIGINT, SIGTERM and SIGHUP raise :class:`Signalled`; a second one
    while the first is being cleaned up after ends the process at once (exit 128+N), as docker
    and buildctl do — the next mason command sweeps what that cleanup had not done (the solver's
    crash recovery). A signal that is ignored at start stays ignored (``nohup`` keeps SIGHUP
    away), except SIGINT (see :func:`_take_sigint`). The previous handlers come back afterwards."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _take_sigint()
    got: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if got:
            _write_err(f"error: {SIGNALS.get(signum, 'signalled')} again; exiting without cleaning up\n")
            os._exit(128 + signum)
        got.append(signum)
        raise Signalled(signum)

    old = {}
    for sig in SIGNALS:
        cur = signal.getsignal(sig)
        if cur in (signal.SIG_DFL, signal.default_int_handler):
            old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)


def _write_err(text: str) -> None:
    try:
        os.write(2, text.encode())
    except OSError:
        pass


def _signalled(e: BaseException) -> Signalled | None:
    while e is not None:
        if isinstance(e, Signalled):
            return e
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. A user's mistake — a :class:`MasonError`, a usage error, a file that cannot
    be read or written — becomes ``error: …`` on stderr and exit code 1, never a traceback.
    Anything else is a bug in mason: one ``error: internal error …`` line and exit code 70
    (``MASON_DEBUG=1`` shows the traceback). SIGINT, SIGTERM and SIGHUP cancel what runs, clean
    up and exit with 128+N (``error: interrupted`` / ``terminated`` / ``hangup``)."""
    with _signals_cancel():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        rv = cli.main(args=argv, prog_name="mason", standalone_mode=False)
    except MasonError as e:
        echo_err(e.format())
        return 1
    except click.exceptions.Abort as e:
        sig = _signalled(e)
        if sig is not None:
            click.echo(f"error: {SIGNALS.get(sig.signum, 'signalled')}", err=True)
            return 128 + sig.signum
        click.echo("error: aborted", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()  # `mason llb`: the group's help, as click prints it
        return 1
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        return 1
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        return 1 if e.exit_code == 2 else e.exit_code
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Signalled) else signal.SIGINT
        click.echo(f"error: {SIGNALS.get(signum, 'signalled')}", err=True)
        return 128 + signum
    except OSError as e:
        # the environment said no (a full disk, a permission, a vanished file) where no
        # command turned it into a MasonError: still the user's to fix, not a crash
        where = f": {e.filename}" if e.filename else ""
        click.echo(f"error: {e.strerror or e}{where}", err=True)
        return 1
    except Exception as e:  # noqa: BLE001 - the top level: a bug must not print a traceback
        if os.environ.get("MASON_DEBUG"):
            raise
        what = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        click.echo(f"error: internal error (a bug in mason; MASON_DEBUG=1 shows where): {what}", err=True)
        return INTERNAL_ERROR
    return rv if isinstance(rv, int) else 0


INTERNAL_ERROR = 70  # EX_SOFTWARE: not the user's mistake


def echo_err(text: str) -> None:
    """A line on stderr that may quote a source holding bytes that are not UTF-8 (kept as
    surrogates by the readers): they print as ``\\xNN`` escapes, never as an encoding error."""
    safe = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    try:
        sys.stderr.write(safe + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr is gone: nothing left to tell


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
