"""The Mockerfile frontend: r2d4/mockerfile's YAML images lowered to LLB (see :mod:`.lower`)."""

from mason.frontends.mockerfile.frontend import MockerfileFrontend, read_mockerfile

__all__ = ["MockerfileFrontend", "read_mockerfile"]
