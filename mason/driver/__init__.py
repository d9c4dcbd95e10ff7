"""The build driver the CLI and the Python API share, in layers (each imports only those above):

* :mod:`~mason.driver.inputs` — build args, platform lists, the Dockerfile's text, the pipeline;
* :mod:`~mason.driver.requests` — the request and result types;
* :mod:`~mason.driver.resolvers` — the image-metadata resolvers a lowering asks;
* :mod:`~mason.driver.frontend` — the build file read and the frontend chosen (one place);
* :mod:`~mason.driver.outputs` — ``--output`` / ``-t`` / ``--push`` and the output solved;
* :mod:`~mason.driver.solvers` — the solver on containerd, opened on first use;
* :mod:`~mason.driver.records` — the build-history record;
* :mod:`~mason.driver.lowering` — ``mason lower``: frontend, then passes (per platform);
* :mod:`~mason.driver.solving` — solve and export (``mason solve``);
* :mod:`~mason.driver.building` — ``mason build``: check, lower, solve, export, recorded.

``mason.build(...)`` is :func:`build`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mason.driver.building import build
    from mason.driver.frontend import frontend_for
    from mason.driver.inputs import parse_build_args, parse_platforms, pipeline_for, read_dockerfile
    from mason.driver.lowering import lower_request
    from mason.driver.outputs import output_specs
    from mason.driver.records import build_meta
    from mason.driver.requests import BuildRequest, BuildResult, LowerRequest, LowerResult
    from mason.driver.solvers import open_solver
    from mason.driver.solving import solve_graph

__all__ = ["LowerRequest", "LowerResult", "lower_request", "read_dockerfile", "parse_build_args",
           "parse_platforms", "pipeline_for", "frontend_for", "BuildRequest", "BuildResult", "build",
           "solve_graph", "open_solver", "output_specs", "build_meta"]

# each name from the layer that defines it, imported on first use: a caller that needs one
# layer (``mason build --host`` parses build args and outputs, nothing more) loads only that one
_HOME = {"build": "building", "frontend_for": "frontend", "parse_build_args": "inputs", "parse_platforms": "inputs",
         "pipeline_for": "inputs", "read_dockerfile": "inputs", "lower_request": "lowering",
         "output_specs": "outputs", "build_meta": "records", "BuildRequest": "requests", "BuildResult": "requests",
         "LowerRequest": "requests", "LowerResult": "requests", "open_solver": "solvers", "solve_graph": "solving"}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'mason.driver' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mason.driver.{home}"), name)
    globals()[name] = value
    return value
