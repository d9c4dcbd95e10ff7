"""The buildpacks frontend: a CNB project descriptor lowered to the lifecycle as LLB (see :mod:`.lower`)."""

from mason.frontends.buildpacks.frontend import BuildpacksFrontend, read_project

__all__ = ["BuildpacksFrontend", "read_project"]
