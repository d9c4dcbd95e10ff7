"""``mason daemon``: manage mason's private containerd (status, start, stop, address).

``ctr --address "$(mason daemon address)" -n mason images ls`` looks into mason's image store.
"""

from __future__ import annotations

import click

from mason.backends.containerd.daemon import ADDRESS_ENV, ROOT_ENV, ManagedContainerd

# Shared with the commands that build: ``resolve_address(containerd_address, root)``.
containerd_address_option = click.option(
    "--containerd-address", envvar=ADDRESS_ENV, default=None, metavar="SOCKET",
    help=f"Use the containerd at this socket (default: ${ADDRESS_ENV}, else mason's own, started when needed).",
)
root_option = click.option(
    "--root", type=click.Path(file_okay=False), envvar=ROOT_ENV, default=None,
    help=f"mason's state directory (default: ${ROOT_ENV}, /var/lib/mason as root, ~/.local/share/mason otherwise).",
)
# On the subcommands too, without the environment variable (the group reads that), so that
# both `mason daemon --root X status` and `mason daemon status --root X` work.
_sub_root_option = click.option("--root", type=click.Path(file_okay=False), default=None,
                                help="mason's state directory (as for `mason daemon --root`).")


@click.group()
@root_option
@click.pass_context
def daemon(ctx: click.Context, root: str | None) -> None:
    """Manage mason's private containerd."""
    ctx.obj = root


def _daemon(root: str | None) -> ManagedContainerd:
    """The subcommand's --root, else the group's (``mason daemon --root X status`` works too)."""
    return ManagedContainerd.at(root if root is not None else click.get_current_context().obj)


@daemon.command()
@_sub_root_option
def status(root: str | None) -> None:
    """Say whether mason's containerd runs, with its PID and address."""
    st = _daemon(root).status()
    if st["running"]:
        click.echo(f"running (pid {st['pid']}) at {st['address']}")
    elif st["pid"] is not None:
        click.echo(f"not answering (pid {st['pid']}) at {st['address']}; see {st['log']}")
    else:
        click.echo(f"not running ({st['address']})")


@daemon.command()
@_sub_root_option
def start(root: str | None) -> None:
    """Start mason's containerd unless it runs (builds do this by themselves)."""
    d = _daemon(root)
    d.ensure_running()
    click.echo(f"running (pid {d.pid()}) at {d.address}")


@daemon.command()
@_sub_root_option
def stop(root: str | None) -> None:
    """Stop mason's containerd (killing any task it still runs)."""
    d = _daemon(root)
    click.echo("stopped" if d.stop() else "not running")


@daemon.command()
@_sub_root_option
def address(root: str | None) -> None:
    """Print the socket path of mason's containerd (for ctr --address)."""
    click.echo(_daemon(root).address)
