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
