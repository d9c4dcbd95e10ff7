"""The frontend registry: built-ins, plugins found as entry points in ``mason.frontends``, and
the one place a frontend is chosen (``# syntax=``, then claims, then the Dockerfile). The plugin
is a real distribution (tests/plugins/toyfrontend, its own pyproject.toml) installed with pip
into a directory on the path of a ``mason`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mason.frontends import registry
from mason.frontends.base import Frontend, FrontendRequest
from mason.frontends.dockerfile.frontend import DockerfileFrontend
from mason.ir.errors import MasonError
from tests.fixtures.plugins import install_toy_plugin


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    return install_toy_plugin(tmp_path_factory.mktemp("plugin"))


def mason(*args: str, path: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(path), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "mason", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=120)


def test_builtin_dockerfile_is_a_frontend() -> None:
    fe = registry.load("dockerfile")
    assert isinstance(fe, Frontend) and isinstance(fe, DockerfileFrontend)
    assert {i.name: i.origin for i in registry.available()}["dockerfile"] == "built-in"
    assert [i.name for i in registry.available()] == sorted(registry.BUILTINS)  # built-ins by name, no plugins here


@pytest.mark.parametrize("text", [
    "# syntax=docker/dockerfile:1.7\nFROM scratch\n",
    "# syntax=docker.io/docker/dockerfile-upstream:master\nFROM scratch\n",
    "#!/usr/bin/env buildctl\n# syntax = dockerfile\nFROM scratch\n",
    "\ufeff// syntax=docker/dockerfile@sha256:" + "a" * 64 + "\nFROM scratch\n",
    "FROM scratch\n",
])
def test_select_dockerfile(text: str) -> None:
    assert registry.select("ctx/whatever.txt", text).name == "dockerfile"


def test_unknown_syntax_is_located() -> None:
    text = "# escape=`\n# syntax=example.com/other:1\nFROM scratch\n"
    with pytest.raises(MasonError) as info:
        registry.select("Dockerfile", text)
    e = info.value
    assert e.loc is not None and (e.loc.file, e.loc.line) == ("Dockerfile", 2)
    assert "example.com/other:1" in e.message and "frontends: buildpacks, dockerfile, mockerfile" in e.message
    assert e.source_line == "# syntax=example.com/other:1"


def test_syntax_after_an_instruction_is_not_a_directive() -> None:
    assert registry.syntax_of("FROM scratch\n# syntax=x\n") is None
    assert registry.syntax_of("# syntax=x/y\nFROM a\n", "F") == ("x/y", registry.SourceLoc("F", 1, 1))


def test_dockerfile_claims_its_names() -> None:
    fe = DockerfileFrontend()
    for name in ("Dockerfile", "dockerfile", "Containerfile", "Dockerfile.dev", "api.Dockerfile", "x/y.containerfile"):
        assert fe.claims(name, ""), name
    for name in ("Toyfile", "project.toml", "Dockerfiles"):
        assert not fe.claims(name, ""), name


def test_unknown_frontend_name() -> None:
    with pytest.raises(MasonError, match="no frontend 'nope'"):
        registry.load("nope")


def test_dockerfile_frontend_lowers_through_the_interface() -> None:
    text = "FROM scratch AS a\nCOPY f /f\nFROM a\nENV X=1\n"
    res = DockerfileFrontend().lower(FrontendRequest(text, build_args={}))
    assert res.stages == ("a", "1")
    assert list(res.graph.names()) == ["a", "1", "default"]
    assert "lower" in res.timings


def test_plugin_is_listed_with_its_distribution(plugin_path: Path) -> None:
    p = mason("frontends", path=plugin_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ORIGIN", "DESCRIPTION"]
    toy = next(line for line in lines if line.startswith("toy "))
    assert "plugin mason-toy-frontend 0.1.0" in toy and "from/run/write" in toy
    rows = json.loads(mason("frontends", "--format", "json", path=plugin_path).stdout)
    assert {r["name"]: r["origin"] for r in rows} == {"buildpacks": "built-in", "dockerfile": "built-in",
                                                     "mockerfile": "built-in",
                                                     "toy": "plugin mason-toy-frontend 0.1.0"}
    # without the plugin on the path it is not there
    assert "toy" not in [r["name"] for r in json.loads(mason("frontends", "--format", "json").stdout)]


def test_plugin_lowers_by_claim_and_by_syntax(plugin_path: Path, tmp_path: Path) -> None:
    (tmp_path / "Toyfile").write_text("from busybox\nrun echo hi > /hi\nwrite /greeting hello\n")
    p = mason("lower", "--no-resolve", "-S", "-f", str(tmp_path / "Toyfile"), str(tmp_path), path=plugin_path)
    assert p.returncode == 0, p.stderr
    assert 'mkfile(%1) "/greeting"' in p.stdout and '"echo hi > /hi"' in p.stdout
    # a # syntax= line chooses it for any file name, even one the Dockerfile frontend claims
    (tmp_path / "Dockerfile").write_text("# syntax=toy\nfrom busybox\nwrite /a b\n")
    p = mason("lower", "--no-resolve", "-S", str(tmp_path), path=plugin_path)
    assert p.returncode == 0, p.stderr
    assert 'data="b\\n"' in p.stdout
    # its errors are located like mason's own
    (tmp_path / "Toyfile").write_text("from busybox\njump\n")
    p = mason("lower", "--no-resolve", "-S", "-f", str(tmp_path / "Toyfile"), str(tmp_path), path=plugin_path)
    assert p.returncode == 1 and "Toyfile:2:1: error: unknown instruction 'jump'" in p.stderr
    assert "Traceback" not in p.stderr


def test_broken_plugin_is_listed_and_refused_cleanly(tmp_path: Path) -> None:
    dist = tmp_path / "broken_frontend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-frontend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mason.frontends]\nbroken = no_such_module:Frontend\n")
    p = mason("frontends", path=tmp_path)
    assert p.returncode == 0, p.stderr
    row = next(line for line in p.stdout.splitlines() if line.startswith("broken "))
    assert "cannot be loaded" in row and "no_such_module" in row
    (tmp_path / "Dockerfile").write_text("# syntax=broken\nFROM scratch\n")
    p = mason("lower", "--no-resolve", "-S", str(tmp_path), path=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "frontend 'broken'" in p.stderr and "cannot be loaded" in p.stderr


def test_mockerfile_is_a_builtin_chosen_by_syntax_and_name() -> None:
    assert {i.name: i.origin for i in registry.available()}["mockerfile"] == "built-in"
    text = "#syntax=r2d4/mocker\napiVersion: v1alpha1\n"
    assert registry.select("any.yaml", text).name == "mockerfile"
    assert registry.select("Mockerfile.yaml", "apiVersion: v1alpha1\n").name == "mockerfile"
    assert registry.select("Dockerfile", "FROM scratch\n").name == "dockerfile"


def test_buildpacks_is_a_builtin_chosen_by_syntax_and_name() -> None:
    assert {i.name: i.origin for i in registry.available()}["buildpacks"] == "built-in"
    assert registry.select("app/project.toml", "[project]\nid = 'x'\n").name == "buildpacks"
    assert registry.select("descriptor.toml", "#syntax=mason/buildpacks\n[_]\nschema-version = '0.2'\n").name == "buildpacks"
    assert registry.select("pyproject.toml", "[project]\n").name == "dockerfile"
    assert registry.load("buildpacks").name == "buildpacks"


def test_choosing_a_frontend_parses_nothing():
    """Choosing the frontend for a Dockerfile (with or without ``# syntax=``) reads its
    directives without the parser: no lark, no syntax, instructions or lowering layer is
    imported (issue 17: a build whose lowering is cached must not pay for them)."""
    import subprocess
    import sys

    child = (
        "import sys\n"
        "from mason.build_contexts import parse_build_contexts\n"
        "from mason.resolution import choose\n"
        "parse_build_contexts(())\n"
        "for text in ('FROM a\\n', '# syntax=docker/dockerfile:1\\nFROM a\\n', '# syntax=mockerfile\\n'):\n"
        "    choose('/x/Dockerfile', text, 'Dockerfile')\n"
        "watched = ('lark', 'mason.frontends.dockerfile.syntax', 'mason.frontends.dockerfile.instructions',\n"
        "           'mason.frontends.dockerfile.lower', 'mason.frontends.mockerfile.lower', 'mason.ir.builder')\n"
        "print(sorted(m for m in watched if m in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]", p.stdout
