"""Build one Dockerfile with mason and with BuildKit v0.32.2 (the session buildkitd, through
buildctl's ``dockerfile.v0`` frontend), both to OCI archives, and list how the images differ:
root filesystem path by path (type, mode, owner, content digest, symlink target, device) and
image config field by field (tests/conformance/rootfs.py). ``type=oci`` keeps the owners a
``type=local`` export maps to the caller.

Which of the suite's Dockerfiles can be built this way (:func:`selection`): the five corpus
Dockerfiles, the golden lowering inputs (Docker Hub's busybox read as the session's) and the
integration, security and CLI tests' inline Dockerfiles (tests/conformance/collect.py) that need
nothing the session lacks — no registry image other than
the session busybox, no secret, SSH agent, host network, frontend image or failing step — and
whose result is a function of their input (no clock, no /proc, no sleep). The context gets a
small file or directory for every COPY/ADD source (:func:`synthetic_context`).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.conformance.collect import BASE, Case, all_cases
from tests.conformance.rootfs import diff_configs, diff_trees, read_image

__all__ = ["Outcome", "selection", "synthetic_context", "build_both", "excluded"]

_CORPUS_BASE = "127.0.0.1:5000/library/busybox"

# a Dockerfile using one of these cannot be built from the session's parts alone, or its result
# is not a function of its input: (pattern, reason)
_EXCLUDE = [
    (r"(?im)^#\s*syntax\s*=", "a # syntax= frontend image"),
    (r"(?i)type=(secret|ssh)\b", "needs a secret or an SSH agent"),
    (r"(?i)--network=host|--security=", "needs an entitlement"),
    (r"\bdate\b|uptime|/proc/|\$RANDOM|\bsleep\b|\bnc\b|hostname", "not a function of its input"),
    (r"(?m)^\s*RUN\b.*(\bexit [1-9]|\bfalse\s*$)|\bslee\b|BOGUS|\bnosuch", "fails on purpose"),
    (r"(?im)^\s*(ADD|COPY)\b[^\n]*(https?://|git@|\.git\b)", "downloads"),
    (r"(?i)\btype=cache\b", "a cache mount's content depends on earlier builds"),
    (r"(?i)^\s*ONBUILD\b", "ONBUILD triggers need a parent image in a registry"),
]
_DOCKER_HUB_BUSYBOX = re.compile(r"(?:docker\.io/)?(?:library/)?busybox(?::latest)?(?:\$\{?\w+\}?)?")
_FROM = re.compile(r"(?im)^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?")


def excluded(case: Case) -> str | None:
    """Why ``case`` is not built by both (None: it is)."""
    for pat, why in _EXCLUDE:
        if re.search(pat, case.text) and not (case.id.startswith("corpus/") and "cache" in why):
            return why
    stages: set[str] = set()
    for m in _FROM.finditer(case.text):
        image, name = m.group(1), m.group(2)
        if (image.lower() not in stages and image not in (BASE, "scratch") and not image.startswith(_CORPUS_BASE)
                and not image.startswith("$") and not _DOCKER_HUB_BUSYBOX.fullmatch(image)):
            return f"FROM {image}: not the session's busybox"
        if name:
            stages.add(name.lower())
    if not _FROM.search(case.text):
        return "not a Dockerfile"
    return None


SOURCES = ("corpus/buildkit-llb", "tests/integration/", "tests/security/", "tests/cli/")


def selection() -> list[Case]:
    """The corpus, golden, integration, security and CLI test Dockerfiles both builders can build
    here."""
    out = []
    for c in all_cases():
        if not (c.kind == "golden" or c.id.startswith(SOURCES)):
            continue
        if c.platform or excluded(c) is not None:
            continue
        out.append(c)
    return out


_SOURCE_FLAGS = re.compile(r"^--(chown|chmod|link|parents|exclude|keep-git-dir|checksum)\b")


def _sources(text: str) -> list[str]:
    """The context paths COPY/ADD instructions name (not --from ones, not heredocs)."""
    out = []
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = words[1:]
        if any(a.startswith("--from") for a in args) or any(a.startswith("<<") for a in args):
            continue
        args = [a for a in args if not _SOURCE_FLAGS.match(a)]
        if args and args[0].startswith("["):
            continue  # JSON form: rare in tests, left out
        out += args[:-1]
    return out


def synthetic_context(case: Case, ctx: Path) -> Path:
    """A context directory for ``case``: its Dockerfile, its own files, a file for every COPY/ADD
    source (a directory with one file for a name ending in ``/``; a wildcard matches one file)."""
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_bytes(case.text.encode("utf-8", "surrogateescape"))
    for name, data in case.files.items():
        (ctx / name).write_text(data)
    for src in sorted(_sources(case.text), key=lambda s: -s.count("/")):  # a/b/c before a
        rel = src.lstrip("/")
        if "$" in rel or ".." in rel.split("/") or rel in ("", "."):
            continue
        rel = re.sub(r"[*?]|\[[^]]*\]", "x", rel)
        p = ctx / rel
        if p.exists():
            continue
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            (p / "inside.txt").write_text(f"inside {rel}\n")
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"content of {rel}\n")
    if case.excludes:
        (ctx / ".dockerignore").write_text("\n".join(case.excludes) + "\n")
    return ctx


_TRACE_ENV = re.compile(rb"^(?:OTEL_[A-Z_]+|TRACEPARENT)=[^\n]*\n?", re.MULTILINE)


def without_trace_env(data: bytes) -> bytes:
    """``data`` without the lines BuildKit's OpenTelemetry variables leave in a dump of a step's
    environment (``OTEL_*``, ``TRACEPARENT`` — a new trace id every build), which mason does not
    set on purpose (see test_same_image.DELIBERATE)."""
    return _TRACE_ENV.sub(b"", data)


@dataclass
class Outcome:
    case: Case
    mason_error: str | None = None
    buildkit_error: str | None = None
    tree: list[str] = field(default_factory=list)
    config: list[str] = field(default_factory=list)

    @property
    def differences(self) -> list[str]:
        if self.mason_error or self.buildkit_error:
            if self.mason_error and self.buildkit_error:
                return []  # both refuse it: the same answer
            return [f"only {'mason' if self.mason_error else 'buildkit'} failed: "
                    f"{(self.mason_error or self.buildkit_error or '')[-300:]}"]
        return self.tree + self.config


def _text(case: Case, base: str) -> Case:
    text = case.text.replace(BASE, base)
    text = re.sub(re.escape(_CORPUS_BASE) + r"(?![\w:@/.-])", base, text)
    # Docker Hub's busybox (golden files) is the session's too, in FROM lines and ARG defaults
    text = re.sub(r"(?im)^(\s*(?:FROM(?:\s+--platform=\S+)?|ARG\s+\w+=)\s*)(?:docker\.io/)?(?:library/)?busybox(?::latest)?"
                  r"(?![\w.:@/-])", lambda m: m.group(1) + base, text)
    return Case(case.id, text, case.kind, case.build_args, case.excludes, case.target, case.platform,
                dict(case.files))


def build_both(build_env, buildkitd, case: Case, workdir: Path) -> Outcome:
    """Build ``case`` (its FROMs pointed at the session busybox) with both and compare."""
    from mason.ir.errors import MasonError

    case = _text(case, build_env.base)
    ctx = synthetic_context(case, workdir / "ctx")
    mine, theirs = workdir / "mason.tar", workdir / "buildkit.tar"
    out = Outcome(case)
    try:
        build_env.build(ctx, outputs=(f"type=oci,dest={mine}",), target=case.target,
                        build_args=dict(case.build_args))
    except MasonError as e:
        out.mason_error = e.format()
    opts = [f"build-arg:{k}={v}" for k, v in case.build_args] + ([f"target={case.target}"] if case.target else [])
    p = buildkitd.build_dockerfile(ctx, f"type=oci,dest={theirs}", opts=opts, check=False)
    if p.returncode != 0:
        out.buildkit_error = p.stderr.decode(errors="replace").strip()
    if out.mason_error is None and out.buildkit_error is None:
        a, b = read_image(mine, without_trace_env), read_image(theirs, without_trace_env)
        out.tree = diff_trees(a.tree, b.tree)
        out.config = diff_configs(a.config, b.config)
    shutil.rmtree(workdir, ignore_errors=True)
    return out
