"""The Dockerfile instructions layer: generic :class:`~.nodes.Node` s → typed, validated
instructions grouped into stages (BuildKit's ``instructions`` package, written anew).

``parse_instructions(result, text)`` checks every instruction (flags, argument counts, mount
specs, modes, durations, ports, stage names, ONBUILD triggers, the FROM structure) and raises
one :class:`MasonErrors` with every mistake it found, each located at the offending flag or
argument where it can be found in the source (1-based columns), else at the instruction.
Variables are not expanded here (that needs ARG/ENV values: the lowering does it); values with
``$`` are only checked where that is possible without expanding them.
"""

from __future__ import annotations

from mason.frontends.dockerfile.instructions_commands import PARSERS, parse_node
from mason.frontends.dockerfile.instructions_context import Ctx
from mason.frontends.dockerfile.instructions_mounts import expand_mount, parse_mount
from mason.frontends.dockerfile.instructions_types import (  # noqa: F401 (re-exported)
    Add,
    Arg,
    BindMount,
    CacheMount,
    Cmd,
    Copy,
    DeferredMount,
    Dockerfile,
    Entrypoint,
    Env,
    ExecForm,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Mount,
    Onbuild,
    Run,
    SecretMount,
    Shell,
    ShellForm,
    ShellOrExec,
    SshMount,
    Stage,
    Stopsignal,
    TmpfsMount,
    User,
    Volume,
    Workdir,
)
from mason.frontends.dockerfile.instructions_values import (  # noqa: F401 (re-exported)
    check_chmod,
    check_signal,
    parse_duration,
    parse_port_spec,
    parse_size,
)
from mason.frontends.dockerfile.nodes import Node, ParseResult
from mason.ir.errors import MasonError, MasonErrors, SourceLoc

__all__ = [
    "parse_instructions", "parse_instruction", "parse_stages", "expand_mount", "parse_mount",
    "parse_port_spec", "parse_duration", "parse_size", "check_chmod", "check_signal",
    "Dockerfile", "Stage", "Instruction", "ShellOrExec", "ShellForm", "ExecForm", "Mount",
    "BindMount", "CacheMount", "TmpfsMount", "SecretMount", "SshMount", "DeferredMount",
    "From", "Run", "Cmd", "Entrypoint", "Copy", "Add", "Arg", "Env", "Label", "Expose", "User",
    "Workdir", "Volume", "Stopsignal", "Healthcheck", "Shell", "Onbuild", "Maintainer",
]

# ---------------------------------------------------------------------------------------------
# Entry points


def parse_instruction(node: Node, text: str | None = None) -> Instruction:
    """One node → its typed instruction (no stage rules); raises :class:`MasonErrors`."""
    ctx = Ctx(text, node.loc.file if node.loc else "Dockerfile")
    ctx.check_utf8(node)
    inst = parse_node(node, ctx)
    if ctx.errors or inst is None:
        raise MasonErrors(ctx.errors or [MasonError("invalid instruction", node.loc)])
    return inst


def parse_instructions(result: ParseResult, text: str | None = None) -> Dockerfile:
    """A parsed Dockerfile → the validated :class:`Dockerfile` (meta ARGs and stages).
    Raises :class:`MasonErrors` with every error found; ``text`` (the source) lets each error
    carry its source line."""
    file = result.loc.file if result.loc is not None else None
    if file is None:
        file = next((n.loc.file for n in result.nodes if n.loc is not None), "Dockerfile")
    ctx = Ctx(text, file)
    parsers = PARSERS
    instructions: list[Instruction] = []
    meta_args: list[Arg] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    names: dict[str, From] = {}
    stage_parts: list[tuple[From, list[Instruction]]] = []
    check_utf8 = ctx.check_utf8
    for node in result.nodes:
        check_utf8(node)
        parser = parsers.get(node.name)
        inst = parser(node, ctx) if parser is not None else parse_node(node, ctx)
        if inst is None:
            continue
        instructions.append(inst)
        cls = type(inst)
        if current is not None and cls is not From:
            current.append(inst)
        elif cls is From:
            current = []
            stage_parts.append((inst, current))  # type: ignore[arg-type]
            name = inst.stage_name  # type: ignore[union-attr]
            if name is not None:
                first = names.get(name)
                if first is not None:
                    ctx.error(node, f"duplicate stage name {name!r} (first defined on line "
                              f"{first.loc.line if first.loc else '?'})", node.args[1],
                              node.args[2])
                else:
                    names[name] = inst  # type: ignore[assignment]
        elif cls is Arg:
            meta_args.append(inst)  # type: ignore[arg-type]
        else:
            ctx.error(node, f"{node.name.upper()} before the first FROM: only ARG may come "
                      "before FROM")
    if not stage_parts and not ctx.errors:
        first = result.nodes[0] if result.nodes else None
        loc = first.loc if first is not None and first.loc is not None else SourceLoc(file, 1, 1)
        err = MasonError("the Dockerfile has no FROM: there is no stage to build", loc)
        lines = ctx.lines
        if lines is not None and 1 <= loc.line <= len(lines):
            err.source_line = lines[loc.line - 1]
        ctx.errors.append(err)
    if ctx.errors:
        # In source order (one instruction's checks do not run left to right).
        ctx.errors.sort(key=lambda e: (e.loc.line, e.loc.col) if e.loc else (0, 0))
        raise MasonErrors(ctx.errors)
    for f, insts in stage_parts:
        stages.append(Stage(f.stage_name, f.image, f.platform, tuple(insts), f, f.loc))
    return Dockerfile(tuple(meta_args), tuple(stages), tuple(instructions), result.directives,
                      result.escape, result.loc)


def parse_stages(result: ParseResult, text: str | None = None) -> tuple[tuple[Arg, ...],
                                                                       tuple[Stage, ...]]:
    """(meta ARGs, stages) of a parsed Dockerfile, like BuildKit's ``instructions.Parse``."""
    df = parse_instructions(result, text)
    return df.meta_args, df.stages
