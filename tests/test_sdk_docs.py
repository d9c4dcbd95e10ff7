"""docs/writing-a-build-language.md shows the example's code as it is: every python/toml block is
a verbatim part of examples/steps (so the page and the tested example cannot drift apart); the
caps docs/frontend-protocol.md lists are the ones mason's bridge answers Ping with."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "writing-a-build-language.md"
EXAMPLE = ROOT / "examples" / "steps"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_code_blocks_are_the_example() -> None:
    text = DOC.read_text()
    source = (EXAMPLE / "mason_steps" / "__init__.py").read_text()
    project = (EXAMPLE / "pyproject.toml").read_text()
    py = _blocks(text, "python")
    assert len(py) >= 4
    for block in py:
        assert block in source, block
    toml = _blocks(text, "toml")
    assert toml and all(b in project for b in toml)


def test_protocol_doc_lists_the_caps() -> None:
    from mason.gateway.bridge import CAPS

    text = (ROOT / "docs" / "frontend-protocol.md").read_text()
    listed = set(re.findall(r"^\| `([a-z.]+)` \| yes", text, re.M))
    assert listed == set(CAPS)
