"""``mason lower [CONTEXT] [-f Dockerfile] -o out.llb``: lower a Dockerfile to LLB.

Options: ``--target T``, ``--build-arg K=V`` (repeatable), ``--build-context NAME=VALUE`` (as for
``mason build``: the named context's source in the LLB), ``--platform P``, ``-O0|-O1|-O2`` or
``--passes PIPELINE``, ``--no-resolve`` (no registry access: base images unpinned, with empty
configs; a warning says so), ``--insecure-registry HOST`` (plain HTTP), ``--image-config FILE``
(the result's image config as JSON), ``-S`` (the IR text form instead of a Definition) and the
pass manager's ``--print-after``/``--print-after-all``/``--verify-each``/``--time-passes``.
One output is written as a bare Definition (what BuildKit reads); several (``-O0`` keeps every
stage) as mason's Definition stream. The work is :func:`mason.driver.lower_request`.
"""

from __future__ import annotations

import json
import sys

import click

from mason.ir.errors import MasonError


@click.command("lower")
@click.argument("context", default=".", metavar="[CONTEXT]")
@click.option("-f", "--file", "dockerfile", metavar="PATH",
              help="The Dockerfile (default: CONTEXT/Dockerfile; '-': stdin).")
@click.option("--target", metavar="STAGE", help="The stage to build (prune keeps what it needs).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V",
              help="A build argument (repeatable; a bare K takes its value from the environment).")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="The target platform (default: the host's).")
@click.option("-O", "level", type=click.IntRange(0, 2), metavar="LEVEL",
              help="Preset: -O0 verify; -O1 (default) + hoist-config,dedupe,prune; -O2 + merge.")
@click.option("--passes", "-p", "passes", metavar="PIPELINE", help="An explicit pass pipeline.")
@click.option("--frontend", metavar="NAME",
              help="The frontend: a built-in or plugin name (default: BUILDKIT_SYNTAX, # syntax=, the file name).")
@click.option("--build-context", "build_contexts", multiple=True, metavar="NAME=VALUE",
              help="An extra build context (repeatable), as mason build: VALUE a directory, docker-image://REF, "
                   "oci-layout://DIR[:TAG|@DIGEST], an http(s) URL or a git URL.")
@click.option("--no-resolve", is_flag=True, help="Do not ask registries for base image configs.")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST",
              help="Use plain HTTP for this registry (repeatable; loopback always is).")
@click.option("-o", "output", metavar="OUT", help="Output file ('-': stdout).")
@click.option("-S", "text", is_flag=True, help="Write the IR text form instead of a Definition.")
@click.option("--image-config", "image_config", metavar="FILE",
              help="Write the result's image config (JSON) to FILE.")
@click.option("--print-after", "print_after", multiple=True, metavar="PASS",
              help="Print the IR to stderr after PASS (repeatable).")
@click.option("--print-after-all", is_flag=True, help="Print the IR to stderr after every pass.")
@click.option("--verify-each", is_flag=True, help="Run verify after every pass.")
@click.option("--time-passes", is_flag=True, help="Print each phase's and pass's time in ms to stderr.")
def lower(context: str, dockerfile: str | None, target: str | None, build_args: tuple[str, ...],
          platform: str | None, level: int | None, passes: str | None, no_resolve: bool,
          insecure: tuple[str, ...], output: str | None, text: bool, image_config: str | None,
          print_after: tuple[str, ...], print_after_all: bool, verify_each: bool,
          time_passes: bool, frontend: str | None = None, build_contexts: tuple[str, ...] = ()) -> None:
    """Lower a Dockerfile to LLB."""
    from mason.cli.main import echo_err
    from mason.cli.opt import check_writable, write_output
    from mason.driver import LowerRequest, lower_request, parse_build_args
    from mason.ir.codec import encode_graph, write_stream
    from mason.ir.text import format_graph

    if passes is not None and level is not None:
        raise MasonError("give either --passes or -O, not both")
    if output is None and not text:
        raise MasonError("no output: use -o FILE (or -o - for stdout, -S for the text form)")
    req = LowerRequest(
        context=context, dockerfile=dockerfile, target=target,
        build_args=parse_build_args(build_args), platform=platform,
        level=1 if level is None else level, passes=passes, resolve=not no_resolve,
        insecure_registries=insecure, print_after=print_after, print_after_all=print_after_all,
        verify_each=verify_each, time_passes=time_passes, frontend=frontend, build_contexts=tuple(build_contexts))
    result = lower_request(req, err=sys.stderr)
    for w in result.warnings:
        echo_err(w)
    if time_passes:
        for phase in ("parse", "instructions", "lower"):
            if phase in result.timings:
                click.echo(f"{result.timings[phase]:10.3f}  {phase}", err=True)
    if text:
        data = format_graph(result.graph).encode()
    else:
        defs = encode_graph(result.graph)
        data = defs[0] if len(defs) == 1 else write_stream(defs)
    config_data = None
    if image_config is not None:  # checked before anything is written: no half of the result
        cfg = result.image_config
        if cfg is None:
            raise MasonError("the result has no image config (several outputs: use --target)")
        config_data = (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode()
    if config_data is not None:
        check_writable(image_config)
    write_output(output or "-", data)
    if config_data is not None:
        write_output(image_config, config_data)
