"""Passes over the LLB IR and the pass manager. Imports only ``mason.ir``.

``run_pipeline(graph, "verify,hoist-config,dedupe,prune{targets=app}")`` runs a pipeline;
``pipeline_for_level(n)`` gives the ``-O<n>`` presets; :data:`PASSES` maps names to pass classes.
One module per pass, named after it: ``verify``, ``hoist-config``, ``dedupe``, ``prune``,
``merge``. How image config and history ride through the graph: :mod:`mason.ir.layers`.
"""

from mason.passes import dedupe, hoist_config, merge, prune, verify  # noqa: E402,F401  (register the passes)
from mason.passes.manager import (
    LEVELS,
    PASSES,
    Pass,
    format_pipeline,
    parse_pipeline,
    pipeline_for_level,
    register_pass,
    run_pipeline,
)

__all__ = [
    "LEVELS", "PASSES", "Pass", "format_pipeline", "parse_pipeline", "pipeline_for_level", "register_pass",
    "run_pipeline",
]
