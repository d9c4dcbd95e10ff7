"""``mason llb dump --format html`` in a real browser: headless Chromium (Debian's ``chromium``)
opens the page from disk, a vertex is clicked with real mouse events, and the side panel shows
that op's fields; the page needs no network (the browser gets no other URL than the file). A
screenshot is kept under the test's tmp_path (never in the repository)."""

from __future__ import annotations

import json

import pytest

from mason.backends.dump import dump_definition
from tests.backends.dump.llbdata import CORPUS
from tests.fixtures.chromium import Browser


def _centre(b: Browser, element_id: str) -> tuple[float, float]:
    r = b.evaluate(f"(function () {{ var e = document.getElementById({json.dumps(element_id)});"
                   " e.scrollIntoView({block: 'center', inline: 'center'});"
                   " var r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    return r[0], r[1]


@pytest.mark.timeout(180)
def test_clicking_a_vertex_shows_its_op(tmp_path) -> None:
    page = tmp_path / "multistage.html"
    page.write_text(dump_definition((CORPUS / "multistage.llb").read_bytes(), "html"))
    ops = [json.loads(line) for line in (CORPUS / "multistage.json").read_text().splitlines()]
    run = next(o for o in ops if "exec" in o["Op"].get("Op", {})
               and "cat /final/a.txt" in " ".join(o["Op"]["Op"]["exec"]["meta"]["args"]))
    copy = next(o for o in ops if "file" in o["Op"].get("Op", {})
                and "COPY --from=builder-b" in o["OpMetadata"]["description"]["llb.customname"])
    with Browser() as b:
        b.open(page.as_uri())
        assert b.evaluate("document.querySelectorAll('#graph svg g.node').length") == len(ops)
        assert "Click a vertex" in b.evaluate("document.getElementById('panel').innerText")
        # hover text: the SVG <title> of the vertex is its short digest
        rid = "op-" + run["Digest"].split(":")[1]
        assert b.evaluate(f"document.getElementById('{rid}').querySelector('title').textContent") == \
            run["Digest"][:len("sha256:") + 12]
        for op in (run, copy):
            vid = "op-" + op["Digest"].split(":")[1]
            x, y = _centre(b, vid)
            b.click(x, y)
            b.wait_for(f"document.getElementById('panel').innerText.indexOf({json.dumps(op['Digest'])}) >= 0")
            text = b.evaluate("document.getElementById('panel').innerText")
            assert op["OpMetadata"]["description"]["llb.customname"] in text
            assert b.evaluate(f"document.getElementById('{vid}').classList.contains('selected')")
            if op is run:
                assert "exec" in text and '"/bin/sh"' in text and "cat /final/a.txt" in text
                assert "stage-2" in text
            else:
                assert '"copy"' in text and "/src/b.sum" in text and '"dest": "/final/"' in text
        b.screenshot(tmp_path / "clicked.png")
        # the page asked for nothing but itself: no network, every resource inline
        urls = {e["params"]["request"]["url"] for e in b.events if e.get("method") == "Network.requestWillBeSent"}
        assert urls == {page.as_uri()}
    png = (tmp_path / "clicked.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_the_page_is_self_contained_and_escapes_fields() -> None:
    from mason.ir.llb_pb import pb
    from tests.backends.dump.llbdata import build_definition

    P = pb()
    evil = "</script><img src=x onerror=alert(1)>"
    a = P.Op(source=P.SourceOp(identifier=f"local://{evil}"))
    out = dump_definition(build_definition([a]), "html")
    assert out.startswith("<!DOCTYPE html>") and "<?xml" not in out
    assert evil not in out  # neither in the JSON block nor in the SVG text
    assert "http://" not in out.replace("http://www.w3.org/", "")  # nothing to fetch
    assert "<script src" not in out and "<link" not in out
