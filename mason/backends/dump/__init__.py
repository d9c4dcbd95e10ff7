"""Dumpers: draw an LLB Definition as JSON (``buildctl debug dump-llb``'s shape), mason's IR
text, Graphviz DOT (``buildkit-dot``: ``dump-llb --dot``'s shape; ``dot``: the styled graph of
:mod:`.graph` / :mod:`.styled` — colours, stages, edge labels), SVG, or one self-contained HTML page (:mod:`.html`).

Input goes through the typed IR: the codec decodes and validates the Definition (bad input is a
:class:`~mason.ir.errors.MasonError` from there), then each op is turned back into its wire
message with ``op_to_pb`` and rendered. Digests are those of the op bytes in the file, as
``buildctl debug dump-llb`` prints them. A mason Definition stream (several outputs, what
``mason lower -O0`` writes) dumps as all its Definitions, each op once. Imports ``mason.ir`` only.

    from mason.backends.dump import dump_definition
    print(dump_definition(open("x.llb", "rb").read(), "dot"), end="")
"""

from __future__ import annotations

from typing import Any

from mason.backends.dump.model import DumpedOp, op_digest, terminal_op
from mason.ir.errors import MasonError

FORMATS = ("json", "text", "dot", "svg", "html", "buildkit-dot")
DRAWN = ("dot", "svg", "html")

__all__ = ["FORMATS", "DRAWN", "draw", "DumpedOp", "dump_definition", "records_from_data", "records_from_decoded",
           "render"]


def records_from_decoded(decoded: Any) -> list[DumpedOp]:
    """The records of a ``DecodedDefinition``: its ops in file order, then the terminal op
    (rebuilt from the result reference, with the terminal metadata as decoded)."""
    from mason.ir.codec import metadata_to_pb, op_to_pb

    # digests are the file's (sha256 of the bytes in ``def``), as ``buildctl debug dump-llb`` prints
    records = [DumpedOp(op.digest, op_to_pb(op), metadata_to_pb(op.metadata)) for op in decoded.ops]
    term = terminal_op(decoded.ref.op.digest, decoded.ref.index)
    tmd = decoded.terminal_metadata
    records.append(DumpedOp(decoded.terminal_digest or op_digest(term), term,
                            metadata_to_pb(tmd) if tmd is not None else None))
    return records


def records_from_data(data: bytes) -> list[DumpedOp]:
    """The records of one Definition, or of every Definition of a mason stream
    (:func:`mason.ir.codec.write_stream`) in turn, each op once (the first Definition that
    has it shows it; each output's terminal op follows its own ops)."""
    from mason.ir.codec import STREAM_MAGIC, decode_definition, read_stream

    if not data.startswith(STREAM_MAGIC):
        return records_from_decoded(decode_definition(data))
    out: list[DumpedOp] = []
    seen: set[str] = set()
    for k, rec in enumerate(read_stream(data)):
        try:
            decoded = decode_definition(rec)
        except MasonError as e:
            raise MasonError(f"Definition {k} of the stream: {e.message}") from None
        for r in records_from_decoded(decoded):
            if r.digest not in seen:
                seen.add(r.digest)
                out.append(r)
    if not out:
        raise MasonError("empty Definition stream")
    return out


def render(records: list[DumpedOp], fmt: str, *, pretty: bool = False) -> str:
    """``records`` in format ``json``, ``buildkit-dot`` or a drawn one (``dot``, ``svg``, ``html``)."""
    if fmt == "json":
        from mason.backends.dump.dumpjson import dump_json

        return dump_json(records, pretty=pretty)
    if fmt == "buildkit-dot":
        from mason.backends.dump.dot import dump_dot

        return dump_dot(records)
    if fmt in DRAWN:
        from mason.backends.dump.graph import graph_from_records

        return draw(graph_from_records(records), fmt)
    raise MasonError(f"unknown dump format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def draw(graph: Any, fmt: str) -> str:
    """A :class:`~mason.backends.dump.graph.BuildGraph` as ``dot``, ``svg`` or ``html``."""
    if fmt == "dot":
        from mason.backends.dump.styled import styled_dot

        return styled_dot(graph)
    if fmt == "svg":
        from mason.backends.dump.svg import render_svg

        return render_svg(graph)
    if fmt == "html":
        from mason.backends.dump.html import render_html

        return render_html(graph)
    raise MasonError(f"unknown graph format {fmt!r}; valid formats: {', '.join(DRAWN)}")


def dump_definition(data: bytes, fmt: str = "json", *, pretty: bool = False, metadata: bool = False) -> str:
    """The dump of the serialized Definition ``data`` in format ``fmt`` (see ``FORMATS``).
    ``pretty`` indents JSON as one array (the corpus's ``NAME.pretty.json``); ``metadata`` adds
    each op's metadata to the text form as a comment."""
    if fmt not in FORMATS:
        raise MasonError(f"unknown dump format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if fmt == "text":
        from mason.ir.codec import decode_graph
        from mason.ir.text import format_graph

        text = format_graph(decode_graph(data), metadata=metadata)
        return text if text.endswith("\n") else text + "\n"
    return render(records_from_data(data), fmt, pretty=pretty)
