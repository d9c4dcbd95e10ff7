"""``mason serve``: a build daemon that speaks BuildKit's client API (``buildctl`` drives it)."""

from __future__ import annotations

import click

from mason.cli.daemon import containerd_address_option, root_option


@click.command()
@click.option("--addr", default=None, metavar="ADDRESS", envvar="MASON_SERVE_ADDR",
              help="Where to listen: unix:///PATH or tcp://HOST:PORT (default: unix:///run/mason/mason.sock).")
@click.option("--tlscacert", type=click.Path(dir_okay=False), default=None,
              help="CA that client certificates must chain to.")
@click.option("--tlscert", type=click.Path(dir_okay=False), default=None, help="The server's certificate.")
@click.option("--tlskey", type=click.Path(dir_okay=False), default=None, help="The server's private key.")
@containerd_address_option
@root_option
def serve(addr: str | None, tlscacert: str | None, tlscert: str | None, tlskey: str | None,
          containerd_address: str | None, root: str | None) -> None:
    """Run a build daemon for BuildKit clients (buildctl --addr ADDRESS ...), until SIGTERM."""
    from mason.server.daemon import DEFAULT_ADDR, TLS, Daemon, parse_addr

    address = parse_addr(addr or DEFAULT_ADDR)
    d = Daemon(address, root=root, containerd_address=containerd_address,
               tls=TLS(tlscacert, tlscert, tlskey))
    d.start()
    click.echo(f"mason serve: listening on {addr or DEFAULT_ADDR}", err=True)
    d.wait()
