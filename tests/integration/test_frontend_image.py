"""Frontend images over BuildKit's gateway protocol: BuildKit v0.32.2's own Dockerfile frontend
(../shared/tools/buildkit/dockerfile-frontend), packaged into an image by mason, builds through
mason's LLBBridge (``# syntax=<that image>``, ``--frontend``, ``BUILDKIT_SYNTAX``); the
Definition it returns for the corpus Dockerfiles is compared with mason's built-in lowering;
misbehaving frontend images fail with one clear error and leave nothing in containerd."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import clean, write

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT.parent / "shared" / "tools" / "buildkit" / "dockerfile-frontend"
CORPUS = ROOT.parent / "shared" / "corpus" / "buildkit-llb-v0.32"
TAG = "localhost/mason-test/dockerfile-frontend:v0.32.2"

FRONTEND_DOCKERFILE = """FROM scratch
COPY dockerfile-frontend /bin/dockerfile-frontend
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/bin/dockerfile-frontend"]
"""


@pytest.fixture
def frontend_image(build_env, tmp_path) -> str:
    """BuildKit's Dockerfile frontend as an image in mason's store, built by mason."""
    ctx = tmp_path / "fe-ctx"
    write(ctx, {"Dockerfile": FRONTEND_DOCKERFILE})
    shutil.copy(FRONTEND, ctx / "dockerfile-frontend")
    res, _ = build_env.build(ctx, tags=(TAG,))
    assert res.digest
    return TAG


def _statuses(rec) -> list[str]:
    from mason.backends.solver.events import Status

    return [e.message for e in rec.events if isinstance(e, Status)]


def _gateway_calls(rec) -> str:
    line = next(m for m in _statuses(rec) if m.startswith("frontend image ") and "gateway calls" in m)
    return line.split("gateway calls: ", 1)[1]


def test_syntax_image_builds(build_env, frontend_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": f"# syntax={frontend_image}\nFROM {build_env.base}\nARG MSG=none\n"
                      "COPY hello.txt /hello.txt\nRUN echo \"$MSG\" > /msg\nENV FROM_GATEWAY=1\n",
        "hello.txt": "hello from the context\n"})
    out = tmp_path / "out"
    res, rec = build_env.build(ctx, outputs=(f"type=local,dest={out}",), build_args={"MSG": "gateway"})
    assert (out / "hello.txt").read_text() == "hello from the context\n"
    assert (out / "msg").read_text() == "gateway\n"
    assert "FROM_GATEWAY=1" in res.image_config["config"]["Env"]
    calls = _gateway_calls(rec)
    # BuildKit v0.32's frontend resolves FROM with ResolveSourceMeta when Ping says source.metaresolver
    assert calls.startswith("Ping 1,") and "ReadFile" in calls and "ResolveSourceMeta 1" in calls, calls
    assert "ResolveImageConfig" not in calls
    assert calls.endswith("Return 1)")
    assert clean(build_env.leftovers())


# ------------------------------------------------------------------ the corpus, compared

BASE_DIGEST = "sha256:a026ada719a4f43dacd393a814a0280695a376827a3c2234c09888fd57d7625c"
VOLATILE = ("local.unique", "local.session")  # random per build in BuildKit (the corpus drops them too)


def _digests(graph, strip: bool = False, file_platform: bool = True) -> list[str]:
    """The sorted op digests of ``graph`` (with ``strip``: BuildKit's random local attrs dropped
    first, as the corpus drops them; without ``file_platform``: FileOps' platform dropped)."""
    from mason.ir.codec import digest_of, encode_graph
    from mason.ir.graph import Graph
    from mason.ir.llb_pb import pb
    from mason.ir.ops import FileOp, Ref, SourceOp
    from mason.passes._rewrite import map_output, rebuild

    if strip or not file_platform:
        memo: dict[int, object] = {}
        for op in graph.ops():
            inputs = tuple(Ref(memo[id(r.op)], r.index) for r in op.inputs)  # type: ignore[arg-type]
            changes = {}
            if not file_platform and isinstance(op, FileOp):
                changes["platform"] = None
            if strip and isinstance(op, SourceOp) and op.identifier.startswith("local://"):
                changes["attrs"] = tuple((k, v) for k, v in op.attrs if k not in VOLATILE)
            memo[id(op)] = rebuild(op, inputs, **changes)
        graph = Graph(tuple(map_output(o, Ref(memo[id(o.ref.op)], o.ref.index)) for o in graph.outputs))  # type: ignore[arg-type]
    d = pb().Definition.FromString(encode_graph(graph)[0])
    return sorted(digest_of(b) for b in getattr(d, "def"))


def _corpus_digests(name: str) -> list[str]:
    from mason.ir.codec import digest_of
    from mason.ir.llb_pb import pb

    d = pb().Definition.FromString((CORPUS / f"{name}.llb").read_bytes())
    return sorted(digest_of(b) for b in getattr(d, "def"))


CORPUS_NAMES = sorted(p.name.removesuffix(".Dockerfile") for p in CORPUS.glob("*.Dockerfile"))


def test_corpus_through_the_gateway_matches(build_env, frontend_image, tmp_path):
    """Each corpus Dockerfile lowered by BuildKit's frontend image through mason's LLBBridge
    (every FROM resolved to the corpus's fixed config) gives exactly the corpus's LLB (what
    df2llb wrote) and image config, and the same LLB as mason's built-in Dockerfile frontend but
    for one difference, a bug of the built-in: it gives FileOps a platform, BuildKit v0.32.2's
    frontend gives them none (4 of the 5 corpus files; cachemount has no FileOp)."""
    from mason.backends.sources.store_resolver import StoreResolver
    from mason.driver import LowerRequest, lower_request, open_solver
    from mason.frontends.base import FrontendRequest
    from mason.gateway.driver import lower_with_image
    from mason.ir.resolver import FixedResolver, PlatformSpec

    config = json.loads((CORPUS / "base-image-config.json").read_text())
    fixed = FixedResolver(config, BASE_DIGEST)
    with open_solver(str(build_env.root), build_env.address) as solver:
        store = StoreResolver(lambda: solver.client)
        for name in CORPUS_NAMES:
            ctx = write(tmp_path / name, {"Dockerfile": (CORPUS / f"{name}.Dockerfile").read_text(),
                                          "hello.txt": "hello\n"})
            text = (ctx / "Dockerfile").read_text()
            runs: list = []
            low = lower_with_image(frontend_image, FrontendRequest(text, str(ctx / "Dockerfile"),
                                                                   platform=PlatformSpec.parse("linux/amd64"),
                                                                   resolver=fixed),
                                   path=str(ctx / "Dockerfile"), solver=solver,
                                   locals={"context": str(ctx), "dockerfile": str(ctx)}, image_resolver=store,
                                   on_run=runs.append)
            gw = _digests(low.graph, strip=True)
            assert gw == _corpus_digests(name), name
            builtin = lower_request(LowerRequest(context=str(ctx), platform="linux/amd64"),
                                    resolver=fixed)
            assert _digests(builtin.graph, file_platform=False) == _digests(low.graph, True, file_platform=False), name
            img = json.loads((CORPUS / f"{name}.image.json").read_text())
            assert low.graph.outputs[0].image_config["config"] == img["config"], name
            assert runs[0].exit_code == 0 and runs[0].calls[0] == "Ping" and runs[0].calls[-1] == "Return"
    assert clean(build_env.leftovers())


# ------------------------------------------------------------------ other ways to choose it


def test_frontend_option_and_syntax_arg_choose_the_image(build_env, frontend_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base}\nRUN echo via > /via\n"})
    for kw in ({"frontend": frontend_image}, {"build_args": {"BUILDKIT_SYNTAX": frontend_image}}):
        out = tmp_path / f"out-{len(kw['build_args']) if 'build_args' in kw else 0}"
        res, rec = build_env.build(ctx, outputs=(f"type=local,dest={out}",), **kw)
        assert (out / "via").read_text() == "via\n"
        assert "Return 1" in _gateway_calls(rec)
    # --frontend gateway forces the # syntax= image even when it names the built-in
    (ctx / "Dockerfile").write_text(f"# syntax={frontend_image}\nFROM {build_env.base}\nRUN echo via > /via\n")
    p = build_env.cli("build", "--progress=plain", "--frontend", "dockerfile", "-o",
                      f"type=local,dest={tmp_path / 'o3'}", str(ctx))
    assert p.returncode == 0, p.stderr
    assert "running frontend image" not in p.stderr  # --frontend dockerfile: the built-in
    assert (tmp_path / "o3" / "via").read_text() == "via\n"


def test_frontend_image_errors_come_back(build_env, frontend_image, tmp_path):
    """The frontend's own error (a Dockerfile mistake) is the build's error; one line, exit 1."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"# syntax={frontend_image}\nFROM {build_env.base}\nBOGUS x\n"})
    p = build_env.cli("build", "-o", f"type=local,dest={tmp_path / 'out'}", str(ctx))
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert f"frontend image {frontend_image}:" in p.stderr and "unknown instruction: BOGUS" in p.stderr
    assert clean(build_env.leftovers())


def test_missing_frontend_image_lists_frontends(build_env, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "# syntax=localhost/mason-test/no-such-frontend:1\nFROM scratch\n"})
    p = build_env.cli("build", "-o", f"type=local,dest={tmp_path / 'out'}", str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "frontend image localhost/mason-test/no-such-frontend:1 cannot be found" in p.stderr
    assert "frontends: " in p.stderr and "dockerfile" in p.stderr


# ------------------------------------------------------------------ misbehaving frontend images

BAD = {
    "exit1": '["sh", "-c", "echo frontend is broken >&2; exit 1"]',
    "garbage": '["sh", "-c", "echo this is not http2; sleep 600"]',
    "silent": '["sleep", "600"]',
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_misbehaving_frontend_image(build_env, tmp_path, kind):
    fe = write(tmp_path / "fe", {"Dockerfile": f"FROM {build_env.base}\nENTRYPOINT {BAD[kind]}\n"})
    tag = f"localhost/mason-test/bad-frontend:{kind}"
    build_env.build(fe, tags=(tag,))
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"# syntax={tag}\nFROM scratch\n"})
    p = build_env.cli("build", "--frontend-timeout", "5", "-o", f"type=local,dest={tmp_path / 'out'}", str(ctx),
                      timeout=120)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    msg = {"exit1": f"frontend image {tag} exited with code 1 without a result",
           "garbage": f"frontend image {tag} broke the gateway protocol",
           "silent": f"frontend image {tag} did not return within --frontend-timeout 5s"}[kind]
    assert msg in p.stderr
    if kind == "exit1":
        assert "frontend is broken" in p.stderr  # its stderr, in the error
    assert not (tmp_path / "out").exists()
    left = build_env.leftovers()
    assert clean(left), left
    assert build_env.client.list_tasks() == [] and build_env.client.list_containers() == []
    for what in ("tasks", "containers"):  # and as containerd's own client sees it
        out = subprocess.run(["ctr", "--address", build_env.address, "-n", "mason", what, "ls", "-q"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert out.strip() == "", (what, out)


def test_named_context_replaces_the_syntax_image(build_env, frontend_image, tmp_path):
    """--build-context docker/dockerfile:1=docker-image://IMG runs IMG for # syntax=docker/dockerfile:1
    (as BuildKit), where mason would otherwise use its built-in Dockerfile frontend."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"# syntax=docker/dockerfile:1\nFROM {build_env.base}\n"
                                                 "RUN echo replaced > /r\n"})
    out = tmp_path / "out"
    res, rec = build_env.build(ctx, outputs=(f"type=local,dest={out}",),
                               build_contexts=(f"docker/dockerfile:1=docker-image://{frontend_image}",))
    assert (out / "r").read_text() == "replaced\n"
    assert "Return 1" in _gateway_calls(rec)
    # without it, the built-in
    res, rec = build_env.build(ctx, outputs=(f"type=local,dest={tmp_path / 'o2'}",))
    assert not any("gateway calls" in m for m in _statuses(rec))


def test_a_frontend_image_calls_frontends(build_env, frontend_image, tmp_path):
    """``--frontend IMAGE`` sends no ``cmdline`` option (as ``buildctl --frontend gateway.v0 --opt
    source=IMAGE``), so BuildKit's frontend forwards to its Dockerfile's ``# syntax=`` with a
    ``Solve`` naming the frontend ``gateway.v0``: ``docker/dockerfile:1`` is mason's built-in
    Dockerfile frontend, an image is that image run in the same session (with ``cmdline`` now,
    so it lowers the file itself); the result and its image config come back through the outer one."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"# syntax=docker/dockerfile:1\nFROM {build_env.base}\n"
                                                 "ENV LEVEL=inner\nRUN echo builtin > /via\n"})
    out = tmp_path / "out"
    p = build_env.cli("build", "--progress=plain", "--frontend", frontend_image, "-o", f"type=local,dest={out}",
                      str(ctx))
    assert p.returncode == 0, p.stderr
    assert (out / "via").read_text() == "builtin\n"
    assert f"frontend image {frontend_image} calls gateway.v0 docker/dockerfile:1: mason's built-in dockerfile" \
        in p.stderr
    assert "Frontend 1" in p.stderr.split("gateway calls: ", 1)[1].split("\n", 1)[0]
    (ctx / "Dockerfile").write_text(f"# syntax={frontend_image}\nFROM {build_env.base}\nENV LEVEL=nested\n"
                                    "RUN echo nested > /via\n")
    out2 = tmp_path / "out2"
    res, rec = build_env.build(ctx, outputs=(f"type=local,dest={out2}",), frontend=frontend_image)
    assert (out2 / "via").read_text() == "nested\n"
    assert "LEVEL=nested" in res.image_config["config"]["Env"]
    assert f"frontend image {frontend_image} calls gateway.v0 {frontend_image}: running that image" in _statuses(rec)
    assert clean(build_env.leftovers())


def test_named_context_dirs_are_served_to_the_image(build_env, frontend_image, tmp_path):
    """``--build-context NAME=DIR`` reaches the frontend image as ``context:NAME=local:NAME`` and
    the directory is served as ``local://NAME`` (its ``.dockerignore`` applied), to what the
    frontend reads while lowering and to the build."""
    extra = write(tmp_path / "extra", {"data.txt": "from the named context\n", "secret.txt": "ignored\n",
                                       ".dockerignore": "secret.txt\n"})
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base}\nCOPY --from=extra / /extra/\n"})
    out = tmp_path / "out"
    res, rec = build_env.build(ctx, outputs=(f"type=local,dest={out}",), frontend=frontend_image,
                               build_contexts=(f"extra={extra}",))
    assert (out / "extra" / "data.txt").read_text() == "from the named context\n"
    assert not (out / "extra" / "secret.txt").exists()
    assert "Return 1" in _gateway_calls(rec)
    assert clean(build_env.leftovers())


CALL_DOCKERFILE = """\
FROM {base} AS build
ARG VERSION=1.0
# the app
FROM build AS app
ARG PORT
RUN --mount=type=secret,id=token true
"""


@pytest.mark.parametrize("call", ["targets", "outline"])
def test_call_through_the_image(build_env, frontend_image, tmp_path, call):
    """``--call targets|outline`` with a frontend image asks it BuildKit's subrequest
    (``requestid=frontend.<call>``) and prints its ``result.txt`` — here BuildKit's own answer,
    which is what mason's built-in prints for the same Dockerfile; ``--format json`` its
    ``result.json``."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": CALL_DOCKERFILE.format(base=build_env.base)})
    p = build_env.cli("build", "--call", call, "--frontend", frontend_image, str(ctx), check=True)
    builtin = build_env.cli("build", "--call", call, str(ctx), check=True)
    assert p.stdout == builtin.stdout
    assert ("VERSION" in p.stdout) if call == "outline" else ("app" in p.stdout and "build" in p.stdout)
    p = build_env.cli("build", "--call", call, "--format", "json", "--frontend", frontend_image, str(ctx),
                      check=True)
    doc = json.loads(p.stdout)
    if call == "targets":
        assert [t["name"] for t in doc["targets"]] == ["build", "app"]  # source order
    else:
        assert {a["name"] for a in doc["args"]} >= {"VERSION", "PORT"}
    assert clean(build_env.leftovers())


def test_check_through_the_image(build_env, frontend_image, tmp_path):
    """``--check`` through the image: BuildKit's lint answer (``result.txt``) printed, the exit
    code its ``result.statuscode``: 0 for a clean Dockerfile, 1 when a check fired (BuildKit's
    frontend says 1 for any warning, without ``# check=error=true`` too)."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {build_env.base} AS build\nRUN true\n"})
    p = build_env.cli("build", "--check", "--frontend", frontend_image, str(ctx))
    assert p.returncode == 0, p.stderr
    assert "Check complete, no warnings found." in p.stdout
    (ctx / "Dockerfile").write_text(f"FROM {build_env.base} as build\nRUN true\n")
    p = build_env.cli("build", "--check", "--frontend", frontend_image, str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "Check complete, 1 warning found" in p.stdout and "result.statuscode 1" in p.stderr
    assert "Dockerfile:1: warning: FromAsCasing: 'as' and 'FROM' keywords' casing do not match" in p.stderr
    p = build_env.cli("build", "--check", "--format", "json", "--frontend", frontend_image, str(ctx))
    assert [w["ruleName"] for w in json.loads(p.stdout)["warnings"]] == ["FromAsCasing"]
