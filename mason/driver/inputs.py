"""What the driver reads from a command line or an API call before any work: build args,
platform lists, the Dockerfile's text, and the pass pipeline a lowering runs."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Mapping

from mason.ir.errors import MasonError
from mason.ir.resolver import PlatformSpec


def parse_build_args(items: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``K=V`` pairs; a bare ``K`` takes its value from the environment (and is skipped when the
    environment has none), like ``docker build --build-arg``."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k:
            raise MasonError(f"invalid --build-arg {item!r}: expected KEY=VALUE")
        if eq:
            out[k] = v
        elif k in env:
            out[k] = env[k]
    return out


def read_dockerfile(path: str) -> str:
    """The text of a Dockerfile (``-``: stdin); bytes that are not UTF-8 are kept."""
    try:
        if path == "-":
            stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
            data = stdin.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise MasonError(f"cannot read {path}: {e.strerror or e}") from None
    return data if isinstance(data, str) else data.decode("utf-8", "surrogateescape")


def pipeline_for(level: int, passes: str | None, target: str | None) -> str:
    """The pipeline to run: ``passes`` as given, else the ``-O<level>`` preset with ``prune``
    narrowed to the target (``default`` without one: a build has one result)."""
    from mason.passes import pipeline_for_level

    if passes is not None:
        return passes
    pipeline = pipeline_for_level(level)
    want = target or "default"
    if "prune" in pipeline.split(","):
        return ",".join(f"prune{{targets={_quote(want)}}}" if p == "prune" else p
                        for p in pipeline.split(","))
    return pipeline


def _quote(name: str) -> str:
    import json

    if all(c.isalnum() or c in "-_." for c in name):
        return name
    return json.dumps(name)


def parse_platforms(text: str | None) -> list[PlatformSpec]:
    """``--platform``: one platform or a comma-separated list (each once, normalized); [] for
    none (the host's)."""
    if text is None or not text.strip():
        return []
    out: list[PlatformSpec] = []
    for part in text.split(","):
        if not part.strip():
            raise MasonError(f"invalid --platform {text!r}: an empty platform in the list")
        p = PlatformSpec.parse(part)
        if p not in out:
            out.append(p)
    return out

