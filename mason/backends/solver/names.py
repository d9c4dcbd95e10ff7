"""How the solver names and groups vertices: the progress name of an op (``llb.customname``, else
a summary, URL credentials masked) and the Dockerfile stage it belongs to (``--no-cache-filter``)."""

from __future__ import annotations

from mason.ir.ops import DiffOp, ExecOp, FileOp, MergeOp, Op, SourceOp
from mason.ir.urls import redact_text

CUSTOM_NAME = "llb.customname"
STAGE_KEY = "mason.stage"  # the Dockerfile lowering's stage of an op (name, or index)


def stage_of(op: Op) -> str | None:
    """The Dockerfile stage an op belongs to: the lowering's ``mason.stage`` description, else
    the ``[stage k/n]`` prefix of its progress name."""
    s = op.metadata.describe(STAGE_KEY)
    if s is not None:
        return s
    name = op.metadata.describe(CUSTOM_NAME) or ""
    if name.startswith("["):
        head = name[1:name.find("]")] if "]" in name else ""
        parts = head.split(" ")
        if len(parts) == 2 and "/" in parts[1]:
            return normalize_stage(parts[0])
    return None


def normalize_stage(name: str) -> str:
    """A stage as ``--no-cache-filter`` names it: its name (case-insensitive, as FROM … AS
    names are), or its index, also spelled ``stage-N``."""
    name = name.strip().lower()
    if name.startswith("stage-") and name[6:].isdigit():
        return name[6:]
    return name

# -- names and configs --------------------------------------------------------------------------

def vertex_name(op: Op) -> str:
    """The progress name: ``llb.customname`` (``[stage 2/4] RUN …`` from the Dockerfile
    frontend), else a summary of the op — with the credentials of any URL in it masked
    (``user:xxxxx@``): the name goes to the progress output, the history, the cache database."""
    return redact_text(_vertex_name(op))


def _vertex_name(op: Op) -> str:
    custom = op.metadata.describe(CUSTOM_NAME)
    if custom:
        return custom
    if isinstance(op, SourceOp):
        return op.identifier
    if isinstance(op, ExecOp):
        from mason.backends.solver.execop import describe_exec

        return describe_exec(op)
    if isinstance(op, FileOp):
        from mason.backends.solver.fileop import describe_action

        return "; ".join(describe_action(a.action) for a in op.actions)
    if isinstance(op, MergeOp):
        return f"merge ({len(op.merge_inputs)} inputs)"
    if isinstance(op, DiffOp):
        return "diff"
    return type(op).__name__


__all__ = ["CUSTOM_NAME", "STAGE_KEY", "vertex_name", "stage_of", "normalize_stage"]
