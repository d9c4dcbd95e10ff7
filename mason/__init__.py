"""mason: a compiler toolchain for container images.

Frontends (``mason.frontends``) parse build languages and lower them to LLB, the typed IR in
``mason.ir``; passes (``mason.passes``) optimize it; backends (``mason.backends``) execute it on
containerd, export images and draw graphs. ``mason.driver`` is the driver the CLI
(``mason.cli``) and the Python API share; ``mason.build(...)`` builds.
"""

from mason import _codecache

__version__ = "0.1.0"

_codecache.install()  # before any mason module creates its dataclasses


def build(request=None, /, **kw):
    """``mason.build(...)``: :func:`mason.driver.build` (a :class:`~mason.driver.BuildRequest` or
    its fields as keywords), imported on the first call so ``import mason`` stays cheap."""
    from mason.driver import build as run

    return run(request, **kw)
