"""``mason frontends``: the build languages mason knows — the built-ins and the plugins installed
as Python entry points in the group ``mason.frontends`` — with where each comes from."""

from __future__ import annotations

import click


@click.command("frontends")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="A table, or one JSON object per frontend in a list (for tools).")
def frontends(fmt: str) -> None:
    """List the frontends: name, origin (built-in or the plugin's distribution), what it reads."""
    import json

    from mason.frontends import registry

    rows: list[dict[str, str | bool]] = []
    for info in registry.available():
        try:
            desc = registry.load(info.name).description
            ok = True
        except Exception as e:  # noqa: BLE001 - a broken plugin is listed, not fatal to the listing
            desc, ok = f"cannot be loaded: {getattr(e, 'message', None) or e}", False
        rows.append({"name": info.name, "origin": info.origin, "entry_point": info.target,
                     "description": desc, "loadable": ok})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("NAME", "ORIGIN", "DESCRIPTION")] + [(str(r["name"]), str(r["origin"]), str(r["description"]))
                                                   for r in rows]
    w0 = max(len(r[0]) for r in table)
    w1 = max(len(r[1]) for r in table)
    for name, origin, desc in table:
        click.echo(f"{name:<{w0}}   {origin:<{w1}}   {desc}".rstrip())
