"""Both YAML/TOML frontends' graphs drawn by ``mason llb dump --format svg``: each file lowered
by ``mason lower`` (the frontend chosen by its name or ``--frontend``) to a Definition, drawn by
graphviz; the SVG has one node per op, classed by its kind as the Definition has them, and
every vertex's name (``llb.customname``) is written on it (long ones cut short with "…")."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CORPUS = ROOT / ".." / "shared" / "corpus"
SVG = "{http://www.w3.org/2000/svg}"

CASES = [
    ("mockerfile", ROOT / "tests/frontends/mockerfile/golden/every-key.yaml"),
    ("mockerfile", CORPUS / "mockerfile/Mockerfile.yaml"),
    ("buildpacks", ROOT / "tests/frontends/buildpacks/golden/three.project.toml"),
    ("buildpacks", CORPUS / "buildpacks/spec-v0.2-example.project.toml"),
]


def mason(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mason", *args], capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("frontend", "path"), CASES, ids=[f"{f}-{p.name}" for f, p in CASES])
def test_frontend_graph_drawn_as_svg(frontend: str, path: Path, tmp_path: Path) -> None:
    llb = tmp_path / "graph.llb"
    extra = ["--build-arg", "BUILDER=busybox"] if path.name.startswith("spec-") else []
    p = mason("lower", "--no-resolve", "--frontend", frontend, "-f", str(path), "-o", str(llb), *extra,
              str(tmp_path))
    assert p.returncode == 0, p.stderr.decode()
    ops = [json.loads(line) for line in mason("llb", "dump", str(llb)).stdout.decode().splitlines()]
    kinds = Counter(next(iter(o["Op"]["Op"])) for o in ops if o["Op"].get("Op"))  # not the terminal
    names = {o["OpMetadata"]["description"]["llb.customname"] for o in ops
             if "llb.customname" in (o.get("OpMetadata") or {}).get("description", {})}
    p = mason("llb", "dump", "--format", "svg", str(llb))
    assert p.returncode == 0, p.stderr.decode()
    svg = ET.fromstring(p.stdout)
    assert svg.tag == SVG + "svg"
    classes = Counter(g.get("class", "").split()[1] for g in svg.iter(SVG + "g")
                      if g.get("class", "").startswith("node ") and g.get("class") != "node terminal")
    assert classes == kinds and sum(kinds.values()) >= 3
    texts = {t.text for t in svg.iter(SVG + "text") if t.text}
    # a long name is cut short with an ellipsis
    drawn = {n for n in names if n in texts or any(t.endswith("…") and n.startswith(t[:-1]) for t in texts)}
    assert names and drawn == names, names - drawn
