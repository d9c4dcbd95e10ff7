"""mason: a compiler toolchain for container images.

Frontends (``mason.frontends``) parse build languages and lower them to LLB, the typed IR in
``mason.ir``; passes (``mason.passes``) optimize it; backends (``mason.backends``) execute it on
containerd, export images and draw graphs. ``mason.build`` is the driver the CLI
(``mason.cli``) and the Python API share.
"""

from mason import _codecache

__version__ = "0.1.0"

_codecache.install()  # before any mason module creates its dataclasses


def __getattr__(name: str):
    # ``mason.build(...)``: the driver module, callable as the build function; imported lazily
    # so ``import mason`` stays cheap.
    if name == "build":
        import importlib

        return importlib.import_module("mason.build")
    raise AttributeError(f"module 'mason' has no attribute {name!r}")
