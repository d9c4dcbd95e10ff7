"""A build's history record (``mason history``, ``mason logs``): what it says about the build,
the event sink that writes it, and the graph it keeps."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterable, Mapping

from mason.driver.solvers import state_root
from mason.ir.graph import Graph

if TYPE_CHECKING:
    from mason.driver.requests import BuildRequest


def build_meta(req: BuildRequest, context: str, dockerfile: str) -> dict[str, object]:
    """What a build's history record says about it. Build-arg *names* only: values may be
    secrets."""
    return {"context": os.path.abspath(context) if context != "-" else "-",
            "dockerfile": os.path.abspath(dockerfile) if dockerfile != "-" else "-",
            "target": req.target, "tags": list(req.tags), "outputs": list(req.outputs), "push": req.push,
            "platform": req.platform, "build_args": sorted(req.build_args)}



@contextlib.contextmanager
def recording(root: str | None, meta: Mapping[str, object], events, enabled: bool):
    """The event sink of one build: ``events`` itself when it already records history (or
    recording is off), else a :class:`HistoryRecorder` forwarding to it. Yields (sink, recorder)."""
    from mason.backends.solver.history import HistoryRecorder

    if isinstance(events, HistoryRecorder):
        events.update(**meta)
        yield events, events
    elif not enabled:
        yield events, None
    else:
        with HistoryRecorder(state_root(root), meta=meta, forward=events) as rec:
            yield rec, rec



def attach_graph(sink, graph: Graph, names: list[str], masked: Iterable[str] = (), records=None) -> None:
    """Keep the graph about to be solved with the build's record (``mason build --graph``,
    ``mason history --graph``), drawn up on a thread while the build runs. ``records`` (a
    :class:`mason.lowering_cache.GraphRecords`, for a lowering the cache holds) gives the drawing
    an earlier build made of the same graph, and keeps this one's."""
    from mason.backends.solver.history import HistoryRecorder

    if isinstance(sink, HistoryRecorder):
        from mason.backends.dump.graph import GRAPH_FILE

        hide = tuple(masked)  # the build-arg values: the record keeps their names only
        if records is not None:
            data = records.get(names, hide)
            if data is not None:
                sink.attach(GRAPH_FILE, data)
                return

        def draw() -> object:
            from mason.backends.dump.graph import graph_from_ir
            from mason.backends.solver.history import json_bytes

            data = json_bytes(graph_from_ir(graph, names, mask_env=True, masked=hide).to_json())
            if records is not None:
                records.put(names, hide, data)
            return data

        sink.attach_later(GRAPH_FILE, draw)

