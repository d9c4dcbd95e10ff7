"""docs/builder-api.md runs: every ``>>>`` example is executed with doctest and must print what
the page shows, and every name ``mason.ir.builder`` exports is on the page (a function in an
example call, a constant or a type at least named)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

from mason.ir import builder as llb

DOC = Path(__file__).resolve().parents[2] / "docs" / "builder-api.md"


def test_the_examples_print_what_the_page_shows() -> None:
    # a code fence ends an example's expected output (doctest would read it as output)
    text = "\n".join("" if ln.startswith("```") else ln for ln in DOC.read_text().splitlines())
    test = doctest.DocTestParser().get_doctest(text, {}, DOC.name, str(DOC), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    res = runner.summarize(verbose=False)
    assert res.attempted >= 40, f"only {res.attempted} examples found in {DOC.name}"
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples in {DOC.name} differ (see the output above)"


def test_every_exported_name_is_documented() -> None:
    text = DOC.read_text()
    examples = "\n".join(ln for ln in text.splitlines() if ln.lstrip().startswith((">>> ", "... ")))
    missing = []
    for name in llb.__all__:
        obj = getattr(llb, name)
        if callable(obj) and not isinstance(obj, type):
            if not re.search(rf"\bllb\.{name}\(", examples):
                missing.append(f"{name} (no example calls llb.{name}(...))")
        elif f"`{name}`" not in text and f"llb.{name}" not in text:
            missing.append(f"{name} (not named)")
    assert not missing, f"{DOC.name} lacks: " + ", ".join(missing)
