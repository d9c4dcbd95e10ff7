"""The frontend-image pieces that need no daemon: the gateway client's option parsing and what
``mason frontend-image`` puts into the image (tests/integration/test_frontend_image_package.py
builds and runs the images on mason and BuildKit)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mason.gateway import package
from mason.gateway.client import frontend_opts
from mason.ir.errors import MasonError


def test_frontend_opts_in_order_of_n() -> None:
    env = {"BUILDKIT_FRONTEND_OPT_10": "target=late", "BUILDKIT_FRONTEND_OPT_2": "target=early",
           "BUILDKIT_FRONTEND_OPT_0": "build-arg:A=x=y", "BUILDKIT_FRONTEND_OPT_X": "filename=no",
           "BUILDKIT_FRONTEND_OPT_3": "novalue", "PATH": "/bin"}
    assert frontend_opts(env) == {"build-arg:A": "x=y", "target": "late"}


def test_contents_of_a_builtin() -> None:
    c = package.contents("mockerfile")
    assert {"lark", "grpcio", "protobuf", "pyyaml"} <= set(c.dists)
    assert "pytest" not in c.dists and "mason" not in c.dists  # extras left out; mason copied as a package
    assert list(c.paths.values()) == ["mason"]
    assert c.filename == "Mockerfile.yaml"


def test_unknown_frontend_is_one_error() -> None:
    with pytest.raises(MasonError, match="no frontend 'nosuchlang'"):
        package.contents("nosuchlang")
    p = subprocess.run([sys.executable, "-m", "mason", "frontend-image", "nosuchlang", "-t", "x/y:1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "no frontend 'nosuchlang'" in p.stderr


def test_dockerfile_sets_gateway_conventions() -> None:
    text = package.dockerfile(package.contents("dockerfile"), "example/python:3", "/usr/bin/python3")
    lines = text.splitlines()
    assert lines[0] == "FROM example/python:3"
    assert 'ENTRYPOINT ["/usr/bin/python3", "-m", "mason.gateway.client", "dockerfile"]' in lines
    assert "CMD []" in lines  # the base's CMD is not appended to the entrypoint
    label = next(ln for ln in lines if ln.startswith("LABEL "))
    assert 'moby.buildkit.frontend.network.none="true"' in label
    caps = 'moby.buildkit.frontend.caps="moby.buildkit.frontend.contexts,moby.buildkit.frontend.subrequests"'
    assert caps in label  # --build-context, and it answers --call
    run = json.loads(next(ln for ln in lines if ln.startswith("RUN "))[4:])
    assert run[3:5] == ["--prepare", "dockerfile"]


def test_write_context_carries_stubs_inputs(tmp_path) -> None:
    c = package.Contents("mockerfile", {}, ["pyyaml"])
    package.write_context(c, tmp_path, base="b")
    root = tmp_path / "mason"
    assert (root / "site" / "yaml" / "__init__.py").is_file()
    assert not list((root / "site").rglob("*.pyc"))
    assert list((root / "gocode").rglob("gateway.proto"))
    assert list((root / "cache" / "buildkit-stubs").iterdir()) and list((root / "cache" / "llb-pb").iterdir())
