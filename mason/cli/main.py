"""Entry point of the ``mason`` command.

Subcommands live in their own modules and are imported only when invoked, so ``mason --help``
and quick commands stay fast. To add one, put a click command in ``mason/cli/<module>.py`` and
name it in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys

import click

from mason.ir.errors import MasonError

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": ("mason.cli.build", "build", "Build a Dockerfile into an image (like docker build)."),
    "daemon": ("mason.cli.daemon", "daemon", "Manage mason's private containerd (status, stop, address)."),
    "du": ("mason.cli.du", "du", "Show what the build cache holds, by record (like docker buildx du)."),
    "images": ("mason.cli.images", "images", "List the images in mason's image store."),
    "load": ("mason.cli.images", "load", "Load images from an OCI or Docker archive (like docker load)."),
    "history": ("mason.cli.history", "history", "List recorded builds (id, time, status, steps, duration)."),
    "llb": ("mason.cli.llb", "llb", "Inspect LLB Definitions (dump as json, text, dot, svg)."),
    "logs": ("mason.cli.logs", "logs", "Show the stored output of a build or one of its steps."),
    "lower": ("mason.cli.lower", "lower", "Lower a Dockerfile to LLB."),
    "opt": ("mason.cli.opt", "opt", "Run passes over an LLB Definition."),
    "prune": ("mason.cli.prune", "prune", "Free build cache and what no record or image references."),
    "parse": ("mason.cli.parse", "parse", "Parse a Dockerfile and report errors (or --dump its syntax tree)."),
    "rmi": ("mason.cli.images", "rmi", "Remove images from mason's image store."),
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a MasonError becomes its message on stderr and exit code 1."""
    try:
        rv = cli.main(args=argv, prog_name="mason", standalone_mode=False)
    except MasonError as e:
        click.echo(e.format(), err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return 1 if e.exit_code == 2 else e.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
