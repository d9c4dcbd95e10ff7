"""Go-compatible text the LLB carries: JSON as Go's ``encoding/json`` writes it (BuildKit marshals
source attributes such as ``local.followpaths`` with it)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["go_json"]


def go_json(value: Any) -> str:
    """Compact JSON as Go's ``encoding/json`` writes it (``<``, ``>``, ``&`` and U+2028/2029
    escaped, other characters as they are)."""
    s = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
