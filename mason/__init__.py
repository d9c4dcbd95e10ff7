"""mason: a compiler toolchain for container images.

Frontends (``mason.frontends``) parse build languages and lower them to LLB, the typed IR in
``mason.ir``; passes (``mason.passes``) optimize it; backends (``mason.backends``) execute it on
containerd, export images and draw graphs. ``mason.build`` is the driver the CLI
(``mason.cli``) and the Python API share.
"""

__version__ = "0.1.0"
