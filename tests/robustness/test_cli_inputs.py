"""Every user-facing input of the CLI, given wrong: each mistake is exit code 1 and one
``error: …`` line (or the located Dockerfile format), never a traceback, and leaves no file
behind. Commands that need containerd are tried with an address where none answers, which is
the address-error path and proves the option checks come before any connection."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.robustness.conftest import assert_user_error, files_under, run_main, run_proc

NOWHERE = "/nonexistent/containerd.sock"
GOOD = "FROM scratch\nCOPY a /a\n"


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a good context (``ctx``), odd files and a state root; the
    environment cannot point mason at a real containerd or state."""
    for k in list(os.environ):
        if k.startswith("MASON_") and k != "MASON_DEBUG":
            monkeypatch.delenv(k)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(GOOD)
    (ctx / "a").write_text("a\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "binary").write_bytes(b"\x00\x01\xff\xfe\x80garbage")
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "state").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lower(*args: str) -> list[str]:
    return ["lower", "ctx", "--no-resolve", "-o", "out.llb", *args]


def build(*args: str) -> list[str]:
    return ["build", "ctx", "--root", "state", "--containerd-address", NOWHERE, "--progress=quiet", *args]


CASES: list[tuple[str, list[str], str]] = [
    # parse
    ("parse: no file", ["parse"], r"Missing argument"),
    ("parse: missing file", ["parse", "nope"], r"^error: cannot read nope: No such file"),
    ("parse: a directory", ["parse", "adir"], r"^error: cannot read adir: Is a directory"),
    ("parse: binary", ["parse", "binary"], r"^binary:1:1: error: unknown instruction"),
    # lower: options
    ("lower: --build-arg =x", lower("--build-arg", "=x"), r"invalid --build-arg '=x'"),
    ("lower: --build-arg =", lower("--build-arg", "="), r"invalid --build-arg '='"),
    ("lower: platform 4 parts", lower("--platform", "foo/bar/baz/qux"), r"invalid platform 'foo/bar/baz/qux'"),
    ("lower: platform /", lower("--platform", "/"), r"invalid platform '/'"),
    ("lower: unclosed braces", lower("--passes", "prune{"), r"<pipeline>:1:7: error: unterminated options"),
    ("lower: unknown pass", lower("--passes", "nosuch"), r"unknown pass 'nosuch' \(valid: "),
    ("lower: unknown option", lower("--passes", "prune{bogus=1}"), r"unknown option 'bogus' for pass 'prune'"),
    ("lower: stray brace", lower("--passes", "prune}"), r"<pipeline>:1:6: error:"),
    ("lower: only commas", lower("--passes", ",,,"), r"expected a pass name"),
    ("lower: -O7", lower("-O7"), r"^error: Invalid value for '-O': 7 is not in the range"),
    ("lower: -O and --passes", lower("-O1", "--passes", "verify"), r"give either --passes or -O"),
    ("lower: unknown target", lower("--target", "nosuch"), r"target stage 'nosuch' could not be found"),
    ("lower: empty target", lower("--target", ""), r"--target needs a stage name"),
    ("lower: --print-after unknown", lower("--print-after", "nosuch"), r"--print-after: unknown pass"),
    ("lower: -f a directory", lower("-f", "adir"), r"^error: cannot read adir: Is a directory"),
    ("lower: -f missing", lower("-f", "nope"), r"^error: cannot read nope"),
    ("lower: context missing", ["lower", "nope", "--no-resolve", "-o", "out.llb"],
     r"^error: cannot read nope/Dockerfile"),
    ("lower: context missing, -f given", ["lower", "nope", "-f", "ctx/Dockerfile", "--no-resolve", "-o", "out.llb"],
     r"build context 'nope' is not a directory"),
    ("lower: context is a file", ["lower", "afile", "-f", "ctx/Dockerfile", "--no-resolve", "-o", "out.llb"],
     r"build context 'afile' is not a directory"),
    ("lower: no -o", ["lower", "ctx", "--no-resolve"], r"no output: use -o FILE"),
    ("lower: -o in a missing dir", ["lower", "ctx", "--no-resolve", "-o", "nodir/out.llb"], r"cannot write nodir/out.llb"),
    ("lower: -o a directory", ["lower", "ctx", "--no-resolve", "-o", "adir"], r"cannot write adir: Is a directory"),
    ("lower: --image-config in a missing dir", lower("--image-config", "nodir/c.json"), r"cannot write nodir/c.json"),
    # opt / llb dump
    ("opt: missing", ["opt", "nope", "-o", "out.llb"], r"cannot read nope"),
    ("opt: a directory", ["opt", "adir", "-o", "out.llb"], r"cannot read adir: Is a directory"),
    ("opt: binary", ["opt", "binary", "-o", "out.llb"], r"not an LLB Definition"),
    ("opt: a Dockerfile", ["opt", "ctx/Dockerfile", "-o", "out.llb"], r"not an LLB Definition"),
    ("opt: -O9", ["opt", "binary", "-O9", "-o", "out.llb"], r"Invalid value for '-O'"),
    ("llb dump: missing", ["llb", "dump", "nope"], r"cannot read nope"),
    ("llb dump: binary", ["llb", "dump", "binary"], r"not an LLB Definition"),
    ("llb dump: directory", ["llb", "dump", "adir"], r"Is a directory"),
    ("llb dump: bad format", ["llb", "dump", "binary", "--format", "png"], r"Invalid value for '--format'"),
    ("llb: unknown subcommand", ["llb", "nosuch"], r"No such command 'nosuch'"),
    ("unknown command", ["nosuch"], r"No such command 'nosuch'"),
    ("unknown option", ["lower", "--nosuch"], r"No such option '--nosuch'"),
    # build: every option is checked before containerd is asked
    ("build: --build-arg =x", build("--build-arg", "=x"), r"invalid --build-arg '=x'"),
    ("build: bad platform", build("--platform", "foo/bar/baz/qux"), r"invalid platform"),
    ("build: --secret without id", build("--secret", "src=a"), r"id= is required"),
    ("build: --secret id=", build("--secret", "id="), r"id= is required"),
    ("build: --secret unknown key", build("--secret", "id=x,bogus=1"), r"unknown key 'bogus'"),
    ("build: --secret src missing", build("--secret", "id=x,src=/nonexistent/x"), r"secret x: cannot read /nonexistent/x"),
    ("build: --secret src a directory", build("--secret", "id=x,src=adir"), r"secret x: cannot read adir"),
    ("build: --secret env unset", build("--secret", "id=x,env=MASON_TEST_NO_SUCH_VAR"),
     r"environment variable MASON_TEST_NO_SUCH_VAR is not set"),
    ("build: --secret empty", build("--secret", ""), r"expected key=value pairs"),
    ("build: --secret unknown type", build("--secret", "id=x,type=foo"), r"unsupported type 'foo'"),
    ("build: --secret src=", build("--secret", "id=x,src="), r"src= needs a value"),
    ("build: --ssh without a socket", build("--ssh", "default"), r"no socket given and SSH_AUTH_SOCK is not set"),
    ("build: --ssh socket missing", build("--ssh", "default=/nonexistent/agent.sock"), r"--ssh default: cannot use"),
    ("build: --ssh bad id", build("--ssh", "a b=/tmp"), r"invalid id 'a b'"),
    ("build: --allow unknown", build("--allow", "bogus"), r"unknown entitlement 'bogus'"),
    ("build: --output unknown type", build("--output", "type=nosuch"), r"unknown output type 'nosuch'"),
    ("build: --output no dest", build("--output", "type=local"), r"needs dest=PATH"),
    ("build: --output unknown key", build("--output", "type=local,dest=x,bogus=1"), r"unknown option 'bogus'"),
    ("build: --output garbage", build("--output", "="), r"invalid output '='"),
    ("build: --output commas", build("--output", ",,,"), r"invalid output ',,,'"),
    ("build: --output push=maybe", build("--output", "type=image,name=x,push=maybe"), r"push must be true or false"),
    ("build: --output dest in missing dir", build("--output", "type=oci,dest=/nonexistent/x.tar"), r"does not exist"),
    ("build: two outputs on stdout", build("--output", "type=tar,dest=-", "--output", "type=oci,dest=-"),
     r"both write to stdout"),
    ("build: -t upper case", build("-t", "UPPER"), r"repository name must be lowercase"),
    ("build: -t empty", build("-t", ""), r"invalid -t ''"),
    ("build: -t with a comma", build("-t", "a,b"), r"invalid -t 'a,b'"),
    ("build: -t bad digest", build("-t", "x@sha256:abc"), r"invalid digest"),
    ("build: -t unicode tag", build("-t", "app:v\u00e9"), r"invalid tag"),
    ("build: --push without name", build("--push"), r"--push needs a name"),
    ("build: --passes", build("--passes", "prune{"), r"unterminated options"),
    ("build: -O7", build("-O7"), r"Invalid value for '-O'"),
    ("build: --jobs 0", build("--jobs", "0"), r"Invalid value for '--jobs'"),
    ("build: --progress bogus", build("--progress", "bogus"), r"Invalid value for '--progress'"),
    ("build: unknown target", build("--target", "nosuch"), r"target stage 'nosuch' could not be found"),
    ("build: -f a directory", build("-f", "adir"), r"cannot read adir: Is a directory"),
    ("build: context missing", ["build", "nope", "--root", "state", "--containerd-address", NOWHERE],
     r"cannot read nope/Dockerfile"),
    ("build: --iidfile in a missing dir", build("--iidfile", "/nonexistent/iid"), r"cannot write --iidfile"),
    ("build: no containerd", build(), r"^error: no containerd answers at /nonexistent/containerd.sock"),
    ("build: garbage address", ["build", "ctx", "--root", "state", "--containerd-address", "garbage://x"],
     r"no containerd answers at garbage://x"),
    ("solve: binary", ["solve", "binary", "--root", "state", "--containerd-address", NOWHERE], r"not an LLB Definition"),
    ("solve: missing", ["solve", "nope", "--root", "state", "--containerd-address", NOWHERE], r"cannot read nope"),
    # the store and the cache
    ("images: no containerd", ["images", "--containerd-address", NOWHERE], r"no containerd answers"),
    ("rmi: no containerd", ["rmi", "--containerd-address", NOWHERE, "x"], r"no containerd answers"),
    ("rmi: no name", ["rmi", "--containerd-address", NOWHERE], r"Missing argument"),
    ("rebase: no containerd", ["rebase", "x", "--run-image", "y", "--root", "state", "--containerd-address", NOWHERE],
     r"no containerd answers"),
    ("rebase: no --run-image", ["rebase", "x", "--containerd-address", NOWHERE], r"Missing option '--run-image'"),
    ("rebase: bad output", ["rebase", "x", "--run-image", "y", "-o", "type=bogus", "--containerd-address", NOWHERE],
     r"unknown output type .bogus."),
    ("load: a directory", ["load", "--containerd-address", NOWHERE, "-i", "adir"], r"is a directory"),
    ("load: no -i", ["load", "--containerd-address", NOWHERE], r"Missing option '-i'"),
    ("du: no containerd", ["du", "--containerd-address", NOWHERE, "--root", "state"], r"no containerd answers"),
    ("du: --root a file", ["du", "--containerd-address", NOWHERE, "--root", "afile"], r"'afile' is a file"),
    ("prune: bad size", ["prune", "-f", "--keep-storage", "garbage", "--containerd-address", NOWHERE], r"invalid size"),
    ("prune: negative size", ["prune", "-f", "--keep-storage", "-5", "--containerd-address", NOWHERE], r"invalid size"),
    ("prune: bad filter", ["prune", "-f", "--filter", "bogus", "--containerd-address", NOWHERE], r"invalid filter"),
    ("prune: bad duration", ["prune", "-f", "--filter", "until=xyz", "--containerd-address", NOWHERE],
     r"invalid duration"),
    ("prune: no containerd", ["prune", "-f", "--containerd-address", NOWHERE, "--root", "state"], r"no containerd answers"),
    ("logs: no builds", ["logs", "--root", "state"], r"no builds recorded under"),
    ("logs: unknown build", ["logs", "nosuch", "--root", "state"], r"^error: "),
    ("logs: --step abc", ["logs", "--step", "abc", "--root", "state"], r"Invalid value for '--step'"),
    ("logs: --root a file", ["logs", "--root", "afile"], r"'afile' is a file"),
    ("history: --root a file", ["history", "--root", "afile"], r"'afile' is a file"),
    ("daemon: --root a file", ["daemon", "status", "--root", "afile"], r"'afile' is a file"),
    ("daemon: unknown subcommand", ["daemon", "nosuch"], r"No such command 'nosuch'"),
]


@pytest.mark.parametrize("argv,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line(ws: Path, capsys, argv, match):
    before = files_under(ws)
    r = run_main(argv, capsys)
    assert_user_error(r, match=match)
    assert r.out == ""
    # nothing half-written: no -o, no temp file, no record of a build that never started
    after = files_under(ws) - before
    assert after <= {"state/history"} | {p for p in after if p.startswith("state/history/")}, after
    assert not (ws / "out.llb").exists()


DOCKERFILES: list[tuple[str, bytes, str]] = [
    ("empty", b"", r"file with no instructions"),
    ("only a comment", b"# hi\n", r"file with no instructions"),
    ("binary", b"\x00\x01\xff\xfe", r"unknown instruction"),
    ("NUL in the image name", b"FROM scr\x00atch\n", r"invalid image reference"),
    ("line over 64 KiB", b"FROM scratch\nRUN echo " + b"a" * 70_000 + b"\n", r"line greater than max allowed size"),
    ("10k nested ${", b"FROM scratch\nENV B=" + b"${" * 10_000 + b"\n", r"error: "),
    ("10k nested ${A:-", b"FROM scratch\nARG A\nENV B=" + b"${A:-" * 10_000 + b"x" + b"}" * 10_000 + b"\n",
     r"nested too deeply"),
    ("10k nested [", b"FROM scratch\nCMD " + b"[" * 10_000 + b"\n", r"error: "),
    ("unterminated heredoc", b"FROM scratch\nRUN <<EOF\nnever closed\n", r"unterminated heredoc"),
    ("bad escape directive", b"# escape=x\nFROM scratch\n", r"invalid escape token"),
    ("# syntax image, lowered offline", b"# syntax=example.com/other\nFROM scratch\n",
     r"frontend image example.com/other \(chosen by # syntax\) runs on containerd"),
    ("unknown # syntax name", b"# syntax=not an/image!\nFROM scratch\n", r"unknown frontend # syntax="),
    ("self-referencing stage", b"FROM a AS a\n", r"circular dependency"),
    ("bad mount", b"FROM scratch\nRUN --mount=type=bogus x\n", r"unsupported mount type"),
    ("huge numbers", b"FROM scratch\nEXPOSE 99999999999999999999\n", r"invalid EXPOSE port"),
    ("bad ADD URL", b"FROM scratch\nADD http://[::1 /x\n", r"error: "),
    ("invalid UTF-8 in a RUN", b"FROM scratch\nRUN echo \xff\n", r"error: "),
    ("invalid UTF-8 in a LABEL", b"FROM scratch\nLABEL a=\xff\nRUN true\n", r"error: "),
]


@pytest.mark.parametrize("data,match", [d[1:] for d in DOCKERFILES], ids=[d[0] for d in DOCKERFILES])
def test_bad_dockerfile_is_a_located_error(ws: Path, capsys, data, match):
    (ws / "ctx" / "Dockerfile").write_bytes(data)
    r = run_main(["lower", "ctx", "--no-resolve", "-o", "out.llb"], capsys)
    assert_user_error(r, match=match)
    assert not (ws / "out.llb").exists()
    if b"\n" in data:  # the located form names the Dockerfile
        assert r.err.startswith("ctx/Dockerfile:"), r.err


def test_bad_dockerignore_is_located(ws: Path, capsys):
    (ws / "ctx" / ".dockerignore").write_text("ok\n# comment\n  a[\n")
    r = run_main(lower(), capsys)
    assert_user_error(r, match=r"^ctx/\.dockerignore:3:4: error: bad pattern \"a\[\": unterminated")
    (ws / "ctx" / ".dockerignore").write_text("!\n")
    r = run_main(lower(), capsys)
    assert_user_error(r, match=r'^ctx/\.dockerignore:1:1: error: illegal exclusion pattern: "!"')


def test_failed_write_keeps_the_old_file(ws: Path, capsys):
    """``-o`` is replaced whole or not at all."""
    (ws / "out.llb").write_bytes(b"old")
    (ws / "ctx" / "Dockerfile").write_text("FROM scratch\nBOGUS x\n")
    r = run_main(lower(), capsys)
    assert_user_error(r, match=r"ctx/Dockerfile:2:1: error: unknown instruction")
    assert (ws / "out.llb").read_bytes() == b"old"
    assert not [p for p in os.listdir(ws) if ".mason-" in p]


def test_logs_unknown_build_among_real_ones(ws: Path, capsys):
    from mason.backends.solver.history import HistoryRecorder

    with HistoryRecorder(ws / "state", "20240501T120000000Z-aaa111", {"target": "x"}):
        pass
    r = run_main(["logs", "nosuch", "--root", "state"], capsys)
    assert_user_error(r, match=r"^error: no build 'nosuch' under state")
    r = run_main(["logs", "--step", "7", "--root", "state"], capsys)
    assert_user_error(r, match=r"has no step 7")


# -- mason load: archives that are not what they claim (needs containerd only to get that far)


def _tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


LOAD_ARCHIVES = {
    "not a tar": b"this is not a tar archive\n" * 40,
    "empty file": b"",
    "truncated tar": _tar({"index.json": b'{"schemaVersion": 2, "manifests": []}', "oci-layout": b"{}"})[:700],
    "dot-dot entries": _tar({"../../escape": b"x", "index.json": b'{"schemaVersion":2,"manifests":[]}'}),
    "absolute entries": _tar({"/etc/evil": b"x"}),
    "index.json garbage": _tar({"index.json": b"\xff{", "oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}),
    "manifest.json garbage": _tar({"manifest.json": b"[{]"}),
}


@pytest.mark.integration
@pytest.mark.parametrize("data", list(LOAD_ARCHIVES.values()), ids=list(LOAD_ARCHIVES))
def test_load_bad_archive(containerd_env, tmp_path: Path, capsys, data):
    p = tmp_path / "in.tar"
    p.write_bytes(data)
    outside = tmp_path.parent / "escape"
    r = run_main(["load", "--containerd-address", containerd_env.address, "-i", str(p)], capsys)
    assert_user_error(r)
    assert not outside.exists() and not Path("/etc/evil").exists()


# -- real processes: what a user sees, for a representative subset


PROC_CASES = [
    ("lower: -O7", ["lower", "ctx", "--no-resolve", "-O7", "-o", "out.llb"]),
    ("lower: unclosed pipeline", ["lower", "ctx", "--no-resolve", "--passes", "prune{", "-o", "out.llb"]),
    ("lower: bad platform", ["lower", "ctx", "--no-resolve", "--platform", "a/b/c/d", "-o", "out.llb"]),
    ("build: --secret no id", ["build", "ctx", "--secret", "src=x", "--containerd-address", NOWHERE, "--root", "state"]),
    ("build: --allow unknown", ["build", "ctx", "--allow", "x", "--containerd-address", NOWHERE, "--root", "state"]),
    ("build: --output garbage", ["build", "ctx", "-o", "type=x", "--containerd-address", NOWHERE, "--root", "state"]),
    ("build: no containerd", ["build", "ctx", "--containerd-address", NOWHERE, "--root", "state"]),
    ("parse: stdin empty", ["parse", "-"]),
    ("lower: stdin empty", ["lower", "ctx", "-f", "-", "--no-resolve", "-o", "out.llb"]),
    ("opt: stdin empty", ["opt", "-", "-o", "out.llb"]),
    ("llb dump: stdin empty", ["llb", "dump", "-"]),
    ("solve: stdin empty", ["solve", "-", "--containerd-address", NOWHERE, "--root", "state"]),
    ("images: no containerd", ["images", "--containerd-address", NOWHERE]),
    ("logs: no builds", ["logs", "--root", "state"]),
    ("nosuch command", ["nosuch"]),
]


@pytest.mark.parametrize("argv", [c[1] for c in PROC_CASES], ids=[c[0] for c in PROC_CASES])
def test_real_process_no_traceback(ws: Path, argv):
    r = run_proc(argv, cwd=ws)
    assert_user_error(r)
    assert not (ws / "out.llb").exists()


def test_broken_pipe_is_quiet(ws: Path):
    """``mason lower -S | head -c1``: stdout closing early is no error and no traceback."""
    import subprocess
    import sys

    big = "FROM scratch\n" + "".join(f"COPY a /a{i}\n" for i in range(3000))
    (ws / "ctx" / "Dockerfile").write_text(big)
    p = subprocess.run(f"{sys.executable} -m mason lower ctx --no-resolve -O0 -S | head -c1",
                       shell=True, cwd=ws, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr


@pytest.mark.parametrize("sep", ["\u2028", "\x0c", "\x1c", "\x85"], ids=["U+2028", "form feed", "FS", "NEL"])
def test_source_line_shown_is_the_located_line(ws: Path, capsys, sep):
    """Dockerfile lines end at ``\\n`` only: a form feed or U+2028 in a comment does not shift the
    source line printed under the error (``str.splitlines`` would)."""
    (ws / "ctx" / "Dockerfile").write_text(f"# a{sep}b\nFROM scratch\nBOGUS x\n")
    r = run_main(lower(), capsys)
    assert_user_error(r, match=r"^ctx/Dockerfile:3:1: error: unknown instruction")
    assert r.err.splitlines()[1] == "    BOGUS x", r.err
