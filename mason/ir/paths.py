"""Where mason keeps files it can regenerate (generated protobuf modules, parser tables):
``$MASON_CACHE``, else ``$XDG_CACHE_HOME/mason``, else ``~/.cache/mason``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    env = os.environ.get("MASON_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mason"
