"""The checks that need only the syntax tree: keyword and stage-name casing, stage names,
empty continuation lines, MAINTAINER, legacy ``ENV k v`` and description comments."""

from __future__ import annotations

from mason.frontends.dockerfile.checks.report import Collector
from mason.frontends.dockerfile.nodes import Node, ParseResult

__all__ = ["check_syntax"]

_RESERVED = ("context", "scratch")


def keyword(node: Node) -> str:
    """The instruction keyword as written (``EntryPoint``)."""
    words = node.original.split(None, 1)
    return words[0] if words else node.name


def _is_as(word: str) -> bool:
    return word.lower() == "as"


def check_syntax(result: ParseResult, out: Collector) -> None:
    for msg, loc in result.warnings:
        if msg.startswith("Empty continuation line"):
            out.warn("NoEmptyContinuation", "Empty continuation line", loc=loc)
    _casing(result.nodes, out)
    names: dict[str, Node] = {}
    for node in result.nodes:
        if node.name == "from":
            _from(node, names, out)
        elif node.name == "maintainer":
            out.warn("MaintainerDeprecated",
                     "Maintainer instruction is deprecated in favor of using label", node)
        elif node.name in ("env", "label"):
            _legacy(node, out)


def _casing(nodes: tuple[Node, ...], out: Collector) -> None:
    """ConsistentInstructionCasing: the majority casing of the file's keywords (upper on a tie)
    is the expected one; every keyword not in it warns (mixed-case ones always do)."""
    if not out.on("ConsistentInstructionCasing"):
        return
    kws = [(n, keyword(n)) for n in nodes]  # (ONBUILD triggers do not count, as in BuildKit)
    upper = sum(1 for _, k in kws if k.isupper())
    lower = sum(1 for _, k in kws if k.islower())
    majority = "lowercase" if lower > upper else "uppercase"
    for n, k in kws:
        ok = k.islower() if majority == "lowercase" else k.isupper()
        if not ok:
            out.warn("ConsistentInstructionCasing",
                     f"Command '{k}' should match the case of the command majority ({majority})",
                     n, loc=n.loc)


def _from(node: Node, names: dict[str, Node], out: Collector) -> None:
    args = node.args
    if len(args) != 3 or not _is_as(args[1]):
        return
    kw, as_kw, name = keyword(node), args[1], args[2]
    if (kw.isupper() and not as_kw.isupper()) or (kw.islower() and not as_kw.islower()):
        out.warn("FromAsCasing", f"'{as_kw}' and '{kw}' keywords' casing do not match", node,
                 as_kw)
    if name != name.lower():
        out.warn("StageNameCasing", f"Stage name '{name}' should be lowercase", node, name)
    low = name.lower()
    if low in _RESERVED:
        out.warn("ReservedStageName",
                 f'Stage name should not use the same name as reserved stage "{low}"', node, name)
    if low in names:
        out.warn("DuplicateStageName",
                 f'Duplicate stage name "{low}", stage names should be unique', node, name)
    else:
        names[low] = node
    _description(node, low, "FROM", out)


def _description(node: Node, name: str, what: str, out: Collector) -> None:
    """InvalidDefinitionDescription (experimental): the comment line right above a named stage
    or a one-name ARG (the last of the comment block, which empty lines do not end; an empty
    ``#`` line does) must read ``# <name> <description>``."""
    if not node.comments or not out.on("InvalidDefinitionDescription"):
        return
    last = node.comments[-1].strip()
    if last != name and not last.startswith(name + " "):
        out.warn("InvalidDefinitionDescription", f"Comment for {what} should follow the format: "
                 f"`# {name} <description>`", node, loc=node.loc)


def check_arg_description(node: Node, names: list[str], out: Collector) -> None:
    if len(names) == 1:
        _description(node, names[0], "ARG", out)


def _legacy(node: Node, out: Collector) -> None:
    """LegacyKeyValueFormat: ``ENV k v`` / ``LABEL k v`` (the parser keeps an empty separator)."""
    args = node.args
    if any(args[i + 2] == "" for i in range(0, len(args) - 2, 3)):
        kw = node.name.upper()
        out.warn("LegacyKeyValueFormat",
                 f'"{kw} key=value" should be used instead of legacy "{kw} key value" format',
                 node, loc=node.loc)
