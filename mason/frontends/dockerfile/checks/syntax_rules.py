"""The checks that need only the syntax tree: keyword and stage-name casing, stage names,
empty continuation lines, MAINTAINER, legacy ``ENV k v``, EXPOSE formats and description
comments."""

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
    out.directive_lines = {d.loc.line for d in result.directives if d.loc is not None}
    for msg, loc in result.warnings:
        if msg.startswith("Empty continuation line"):
            out.warn("NoEmptyContinuation", msg, loc=loc)
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
        elif node.name == "expose":
            _expose(node, out)


def _casing(nodes: tuple[Node, ...], out: Collector) -> None:
    """ConsistentInstructionCasing: the majority casing of the file's keywords (upper on a tie)
    is the expected one; every keyword not in it warns (mixed-case ones always do)."""
    if not out.on("ConsistentInstructionCasing"):
        return
    kws = [(n, keyword(n)) for n in nodes]
    for n in nodes:
        if n.onbuild is not None:
            kws.append((n.onbuild, keyword(n.onbuild)))
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
                 f"'{low}' is reserved and should not be used as a stage name", node, name)
    if low in names:
        out.warn("DuplicateStageName",
                 f"Duplicate stage name '{low}', stage names should be unique", node, name)
    else:
        names[low] = node
    _description(node, low, "build stage", out)


def _description(node: Node, name: str, what: str, out: Collector) -> None:
    """InvalidDefinitionDescription (experimental): the comment block right above a named
    stage or an ARG must have a line ``# <name> <description>``."""
    if not out.on("InvalidDefinitionDescription") or node.loc is None or out.lines is None:
        return
    block: list[str] = []  # the comment lines right above, up to an empty line or a directive
    ln = node.loc.line - 1
    while ln >= 1 and ln not in out.directive_lines and out.lines[ln - 1].strip().startswith("#"):
        block.append(out.lines[ln - 1].strip()[1:].strip())
        ln -= 1
    if not block:
        return
    for c in block:
        if c == name or c.startswith(name + " "):
            return
    out.warn("InvalidDefinitionDescription",
             f"Comment for {what} should follow the format: `# <arg/stage name> <description>`. "
             "If this is not intended to be a description comment, add an empty line or "
             "comment between the instruction and the comment.", node, loc=node.loc)


def check_arg_description(node: Node, names: list[str], out: Collector) -> None:
    if len(names) == 1:
        _description(node, names[0], "arg", out)


def _legacy(node: Node, out: Collector) -> None:
    """LegacyKeyValueFormat: ``ENV k v`` / ``LABEL k v`` (the parser keeps an empty separator)."""
    args = node.args
    if any(args[i + 2] == "" for i in range(0, len(args) - 2, 3)):
        kw = node.name.upper()
        out.warn("LegacyKeyValueFormat",
                 f'"{kw} key=value" should be used instead of legacy "{kw} key value" format',
                 node, loc=node.loc)


def _expose(node: Node, out: Collector) -> None:
    for spec in node.args:
        if "$" in spec:
            continue
        port, slash, proto = spec.partition("/")
        if ":" in port:
            out.warn("ExposeInvalidFormat", "EXPOSE instruction should not define an IP address "
                     f"or host-port mapping, found '{spec}'", node, spec)
        if slash and proto != proto.lower():
            out.warn("ExposeProtoCasing",
                     f"Defined protocol '{spec}' in EXPOSE instruction should be lowercase",
                     node, spec)
