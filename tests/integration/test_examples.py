"""The SDK examples (examples/steps, examples/gockerfile; docs/writing-a-build-language.md) end to
end: each is pip-installed as a real plugin, lists in ``mason frontends``, lowers, builds on the
session's images, and the image it makes is run (a build whose step runs its entrypoint)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import write

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _install(name: str, work: Path) -> dict[str, str]:
    """pip-install examples/NAME under ``work``; the env that puts it on a mason's path."""
    src = work / f"src-{name}"
    shutil.copytree(EXAMPLES / name, src)
    site = work / f"site-{name}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}


def _code_lines(path: Path) -> int:
    return sum(1 for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#"))


def _run_image(build_env, tmp_path: Path, image: str, command: str) -> str:
    """Run ``command`` in a container of ``image`` (a one-step build on it); its output."""
    ctx = write(tmp_path / "run-ctx", {"Dockerfile": f"FROM {image}\nRUN {command} > /result.txt\n"})
    out = tmp_path / "run-out"
    build_env.cli("build", "-o", f"type=local,dest={out}", str(ctx), check=True)
    return (out / "result.txt").read_text()


def test_steps_language(build_env, tmp_path):
    assert _code_lines(EXAMPLES / "steps" / "mason_steps" / "__init__.py") < 100
    env = _install("steps", tmp_path)
    p = build_env.cli("frontends", env=env, check=True)
    assert "steps" in p.stdout and "plugin mason-steps 0.1.0" in p.stdout
    ctx = write(tmp_path / "ctx", {
        "Stepfile": f"# a Stepfile\nbase {build_env.base}\nenv GREETING=hello\ncopy greeting.txt /srv/\n"
                    "run echo \"$GREETING, $(cat /srv/greeting.txt)\" > /srv/out\nentry cat /srv/out\n",
        "greeting.txt": "steps\n"})
    # parse -> LLB
    p = build_env.cli("lower", "--no-resolve", "-S", "-f", str(ctx / "Stepfile"), str(ctx), env=env, check=True)
    assert 'source "local://context"' in p.stdout and '"Entrypoint":["/bin/sh","-c","cat /srv/out"]' in p.stdout
    # -> build -> run the image
    tag = "localhost/mason-test/steps-example:1"
    build_env.cli("build", "-f", str(ctx / "Stepfile"), "-t", tag, str(ctx), env=env, check=True)
    assert _run_image(build_env, tmp_path, tag, "/bin/sh -c 'cat /srv/out; echo $GREETING'") == \
        "hello, steps\nhello\n"
    # a mistake: located, with the line and a caret, exit 1
    (ctx / "Stepfile").write_text(f"base {build_env.base}\nfrobnicate now\n")
    p = build_env.cli("build", "-f", str(ctx / "Stepfile"), str(ctx), env=env)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "Stepfile:2:1: error: unexpected input: expected base, env, copy, run or entry" in p.stderr
    assert "    frobnicate now\n    ^" in p.stderr


def _go_toolchain(dest: Path) -> Path:
    """A minimal GOROOT from Debian's golang-go (go, compile, link, asm, the std sources)."""
    lib = Path(os.path.realpath(shutil.which("go") or "/usr/bin/go")).parents[1]
    dest.mkdir(parents=True)
    shutil.copy(lib / "VERSION", dest / "VERSION")
    (dest / "bin").mkdir()
    shutil.copy(lib / "bin" / "go", dest / "bin" / "go")
    tools = dest / "pkg" / "tool" / "linux_amd64"
    tools.mkdir(parents=True)
    for t in ("compile", "link", "asm", "buildid", "pack", "cgo", "vet"):
        shutil.copy(lib / "pkg" / "tool" / "linux_amd64" / t, tools / t)
    shutil.copytree(lib / "pkg" / "include", dest / "pkg" / "include")
    shutil.copytree(lib / "src", dest / "src", ignore=shutil.ignore_patterns("testdata", "cmd"))
    return dest


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})


def test_gockerfile(build_env, debian_image, tmp_path):
    assert _code_lines(EXAMPLES / "gockerfile" / "mason_gockerfile" / "__init__.py") < 60
    if shutil.which("go") is None:
        pytest.fail("go not found: install Debian's golang-go (./scripts/test's set-up does)", pytrace=False)
    env = _install("gockerfile", tmp_path)
    # a builder image: Debian's Go toolchain (its go binary is dynamically linked) on the session's Debian
    tc = tmp_path / "golang"
    _go_toolchain(tc / "go")
    write(tc, {"Dockerfile": f"FROM {debian_image.ref}\nCOPY go /usr/local/go\n"
                             "ENV PATH=/usr/local/go/bin:/usr/bin:/bin HOME=/root GOPATH=/go\n"})
    builder = "localhost/mason-test/golang:1"
    build_env.cli("build", "-t", builder, str(tc), check=True, timeout=600)
    # the program, in a git repository with a tag
    repo = write(tmp_path / "repo", {"go.mod": "module example.com/hello\n\ngo 1.19\n",
                                     "cmd/hello/main.go": 'package main\n\nimport "fmt"\n\n'
                                                          'func main() { fmt.Println("hello from gockerfile") }\n'})
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "hello")
    _git(repo, "tag", "v1.0.0")
    ctx = write(tmp_path / "ctx", {"Gockerfile": f"repo: file://{repo}\npath: cmd/hello\nversion: v1.0.0\n"})
    tag = "localhost/mason-test/gockerfile-example:1"
    p = build_env.cli("build", "--allow", "git.local", "-f", str(ctx / "Gockerfile"), "--build-arg",
                      f"GOCKER_BUILDER={builder}", "--build-arg", f"GOCKER_RUN={build_env.base}", "-t", tag,
                      str(ctx), env=env, timeout=900)
    assert p.returncode == 0, p.stderr
    assert _run_image(build_env, tmp_path, tag, "/app") == "hello from gockerfile\n"
    # not the three keys: one clear error
    (ctx / "Gockerfile").write_text("repo: x\npath: y\n")
    p = build_env.cli("build", "-f", str(ctx / "Gockerfile"), str(ctx), env=env)
    assert p.returncode == 1 and "a Gockerfile is a mapping of exactly repo, path, version" in p.stderr
