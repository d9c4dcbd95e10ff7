"""``mason binfmt``: which platforms this host runs natively, through QEMU emulation, or not at
all; ``--install`` registers Debian's ``qemu-user-static`` interpreters in ``binfmt_misc`` with the
``F`` flag (builds do it by themselves as root when a RUN needs it). The work is
:mod:`mason.backends.containerd.binfmt`."""

from __future__ import annotations

import json

import click


@click.command("binfmt")
@click.option("--install", "do_install", is_flag=True,
              help="Register QEMU for the platforms that do not run yet (root; re-registers disabled "
                   "entries and ones without the F flag).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per platform.")
@click.argument("platforms", nargs=-1, metavar="[PLATFORM...]")
def binfmt(do_install: bool, as_json: bool, platforms: tuple[str, ...]) -> None:
    """Show how each platform runs here (native, emulated, unavailable), or --install emulators."""
    from mason.backends.containerd import binfmt as bf
    from mason.ir.resolver import PlatformSpec

    wanted = [PlatformSpec.parse(p) for part in platforms for p in part.split(",") if p.strip()] or None
    if do_install:
        done = bf.install(wanted)
        click.echo(f"registered {', '.join(done)}" if done else "nothing to register", err=True)
    for s in bf.report(wanted if wanted is not None else bf.KNOWN_PLATFORMS):
        if as_json:
            click.echo(json.dumps({"platform": str(s.platform), "state": s.state,
                                   "entry": s.entry.name if s.entry else None,
                                   "interpreter": s.entry.interpreter if s.entry else None,
                                   "flags": s.entry.flags if s.entry else None,
                                   "reason": s.reason or None, "fix": s.fix or None}))
            continue
        how = ""
        if s.state == "emulated" and s.entry is not None:
            how = f"{s.entry.name}: {s.entry.interpreter} (flags {s.entry.flags})"
        elif s.state == "unavailable":
            how = s.reason + (f"; {s.fix}" if s.fix else "")
        click.echo(f"{str(s.platform):<16}{s.state:<13}{how}".rstrip())
