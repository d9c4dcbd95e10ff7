"""Dockerfile parsing speed: mason's syntax layer (and the instructions layer, when present)
against the ``dockerfile-parse`` package, on a generated 10,000-instruction Dockerfile with mixed
RUN/ENV/COPY/LABEL/exec-form/continuation lines.

    .venv/bin/python bench/parse_bench.py [--instructions N] [--repeat R] [--whole-file]

Prints the median wall time of each and the ratio; never asserts anything. Also shown: the
hand-written reference parser the lark syntax layer replaced (what the lark structure costs),
the one-time cost of building the lark parser, and with ``--whole-file`` one lark parse of the
whole file without replaying item shapes (what lark costs without them).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mason.frontends.dockerfile import syntax  # noqa: E402
from mason.frontends.dockerfile.syntax import parse_dockerfile  # noqa: E402
from tests.frontends.dockerfile import handwritten_parser as syntax_handwritten  # noqa: E402


def generate(count: int) -> str:
    """A Dockerfile with ``count`` instructions (one stage per 500)."""
    out = []
    kinds = 12
    for i in range(count):
        k = i % kinds
        if i % 500 == 0:
            out.append(f"FROM busybox:1.{i % 37} AS stage{i // 500}")
        elif k == 0:
            out.append(f"RUN echo step {i} && mkdir -p /opt/app{i} && touch /opt/app{i}/marker")
        elif k == 1:
            out.append(f"ENV APP_HOME_{i}=/opt/app{i} APP_MODE_{i}=\"release build\" PATH=/opt/app{i}/bin:$PATH")
        elif k == 2:
            out.append(f"COPY --chown=app:app --chmod=0644 src/file{i}.txt /opt/app{i}/")
        elif k == 3:
            out.append(f"LABEL org.example.step{i}=\"value {i}\" org.example.kind=mixed")
        elif k == 4:
            out.append(f'CMD ["/opt/app{i}/bin/server", "--port", "80{i % 100:02d}", "--verbose"]')
        elif k == 5:
            out.append(f"RUN set -eux; \\\n    apt-get update; \\\n    apt-get install -y pkg{i}; \\\n"
                       f"    rm -rf /var/lib/apt/lists/*")
        elif k == 6:
            out.append(f"# a comment about step {i}")
            out.append(f"WORKDIR /opt/app{i}")
        elif k == 7:
            out.append(f"ENV LEGACY_{i} some legacy value {i}")
        elif k == 8:
            out.append(f'ENTRYPOINT ["/bin/sh", "-c", "exec /opt/app{i}/run \\"$@\\"", "--"]')
        elif k == 9:
            out.append(f"ARG VERSION_{i}=1.{i}")
        elif k == 10:
            out.append(f"RUN --mount=type=cache,target=/root/.cache pip install pkg{i}")
        else:
            out.append(f"EXPOSE {8000 + i % 1000}/tcp")
        if i % 50 == 49:
            out.append("")
    return "\n".join(out) + "\n"


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instructions", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--whole-file", action="store_true", help="also time one whole-file lark parse")
    opts = ap.parse_args()

    text = generate(opts.instructions)
    data = text.encode()
    t0 = time.perf_counter()
    syntax._parser()
    build = time.perf_counter() - t0
    result = parse_dockerfile(text)
    print(f"input: {len(result.nodes)} instructions, {text.count(chr(10))} lines, {len(data)} bytes")
    print(f"lark parser build (once per process): {build:.4f} s; "
          f"{len(syntax._SHAPES)} item shapes parsed by lark")

    layer = median_time(lambda: parse_dockerfile(text), opts.repeat)
    print(f"mason syntax layer:        {layer:.4f} s")
    reference = median_time(lambda: syntax_handwritten.parse_dockerfile(text), opts.repeat)
    print(f"hand-written reference:    {reference:.4f} s  (lark syntax layer / reference: "
          f"{layer / reference:.2f})")
    if opts.whole_file:
        whole = median_time(lambda: parse_dockerfile(text, replay=False), 1)
        print(f"one whole-file lark parse: {whole:.4f} s")

    try:
        from mason.frontends.dockerfile.instructions import parse_instructions
    except ImportError:
        parse_instructions = None
    if parse_instructions is not None:
        both = median_time(lambda: parse_instructions(parse_dockerfile(text), text), opts.repeat)
        print(f"mason syntax+instructions: {both:.4f} s")

    try:
        from dockerfile_parse import DockerfileParser
    except ImportError:
        print("dockerfile-parse is not installed: no comparison")
        return

    def other() -> None:
        _ = DockerfileParser(fileobj=io.BytesIO(data)).structure

    ref = median_time(other, opts.repeat)
    print(f"dockerfile-parse:          {ref:.4f} s")
    print(f"ratio mason syntax / dockerfile-parse: {layer / ref:.2f}")
    if parse_instructions is not None:
        print(f"ratio mason both layers / dockerfile-parse: {both / ref:.2f}")


if __name__ == "__main__":
    main()
