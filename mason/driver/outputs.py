"""Outputs: ``--output`` specs with ``-t`` and ``--push`` folded in (checked before anything
runs), and which output of a graph a build solves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from mason.ir.errors import MasonError

if TYPE_CHECKING:
    from mason.ir.graph import Graph


def output_specs(outputs: Iterable[str] = (), tags: Iterable[str] = (), *, push: bool = False) -> list:
    """``--output`` specs with ``-t`` folded in (as buildx: without outputs, ``-t`` means
    ``type=image``; otherwise the tags name the image outputs that name nothing) and
    ``--push`` applied (the image output pushes; with outputs, the first must be an image)."""
    from dataclasses import replace

    from mason.backends.exporters.outputs import parse_outputs

    specs = parse_outputs(list(outputs), list(tags))
    if not push:
        return specs
    if not specs:
        raise MasonError("--push needs a name: give -t NAME (or --output type=registry,name=NAME)")
    first = specs[0]
    if first.type == "image":
        if not first.names:
            raise MasonError("--push needs a name: give -t NAME")
        specs[0] = replace(first, push=True)
    elif first.type != "registry":
        raise MasonError(f"--push and an output of type={first.type} cannot be used together")
    return specs



def pick_output(graph: Graph, target: str | None) -> str:
    names = graph.names()
    if target and target in names:
        return target
    if "default" in names:
        return "default"
    if len(names) == 1:
        return names[0]
    raise MasonError(f"the graph has several outputs ({', '.join(names)}): name one")



def describe_push(p) -> str:  # a PushResult
    return f"{p.ref.familiar()}@{p.digest}"
