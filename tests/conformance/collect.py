"""Every Dockerfile the test suite has, for the conformance check against BuildKit v0.32.2
(``../shared/tools/buildkit/df2llb``): the golden lowering inputs (with their ``# golden:``
options), the fuzz seeds (BuildKit's parser test files and both LLB corpora) and the Dockerfiles
written inline in the tests' Python source (integration tests and the rest).

Inline Dockerfiles are found by reading the test modules with :mod:`ast`, never by running
them: a string literal (or f-string, or a ``.format`` template) with a line that starts with
``FROM`` is a Dockerfile. What the test would fill in at run time is replaced by fixed text: a
placeholder whose expression mentions ``base`` (or ``tag``/``image``/``ref``) becomes the
corpus's base image reference, any other one the word ``x<N>``. Docstrings are not Dockerfiles.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
CORPUS = ROOT.parent / "shared" / "corpus"
BASE = "127.0.0.1:5000/library/busybox:latest"

_FROM_LINE = re.compile(r"^[ \t]*from[ \t]+\S", re.IGNORECASE | re.MULTILINE)
_FORMAT_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_BASE_WORDS = ("base", "tag", "image", "ref", "parent")


@dataclass(frozen=True)
class Case:
    """One Dockerfile: ``id`` says where it comes from (``path`` or ``path:line``)."""

    id: str
    text: str
    kind: str  # golden, seed, corpus, inline
    build_args: tuple[tuple[str, str], ...] = ()
    excludes: tuple[str, ...] = ()
    target: str | None = None
    platform: str | None = None
    files: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """The text and the options, hashed: what names a case across edits of the file around it
        (``id`` has a line number, which moves)."""
        opts = repr((self.build_args, self.excludes, self.target, self.platform))
        return hashlib.sha256((self.text + "\0" + opts).encode("utf-8", "surrogateescape")).hexdigest()[:16]

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _placeholder(expr: str, n: int) -> str:
    low = expr.lower()
    if any(w in low for w in _BASE_WORDS):
        return BASE
    return f"x{n}"


def _render_format(template: str) -> str:
    counter = iter(range(1, 1000))

    def sub(m: re.Match) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        return _placeholder(m.group(1) or "", next(counter))

    return _FORMAT_FIELD.sub(sub, template)


def _render(node: ast.AST, format_names: set[str]) -> str | None:
    """The text of a string expression, with run-time parts replaced (module docstring)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out, n = [], 0
        for v in node.values:
            if isinstance(v, ast.Constant):
                out.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                n += 1
                out.append(_placeholder(ast.unparse(v.value), n))
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _render(node.left, format_names), _render(node.right, format_names)
        if a is not None and b is not None:
            return a + b
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        inner = _render(node.func.value, format_names)
        if inner is not None and not isinstance(node.func.value, ast.Name):
            return _render_format(inner)
        if isinstance(node.func.value, ast.Name):
            return None  # the template itself is collected (as a format template)
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            ids.add(id(body[0].value))
    return ids


def inline_cases(path: Path) -> list[Case]:
    """The Dockerfiles written in one test module."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    format_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
                and isinstance(node.func.value, ast.Name):
            format_names.add(node.func.value.id)
    templates: dict[int, str] = {}  # id(node) of a str assigned to a name used with .format
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in format_names:
            templates[id(node.value)] = node.targets[0].id
    rel = path.relative_to(ROOT)
    out: list[Case] = []
    covered: set[int] = set()
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in covered:
            continue
        if not isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp, ast.Call)):
            continue
        text = _render(node, format_names)
        if text is None or not _FROM_LINE.search(text):
            continue
        if id(node) in templates:
            text = _render_format(text)
        for sub in ast.walk(node):
            covered.add(id(sub))
        out.append(Case(f"{rel}:{node.lineno}", text, "inline"))
    return out


def golden_cases() -> list[Case]:
    out = []
    for p in sorted((TESTS / "frontends" / "dockerfile" / "golden").glob("*.Dockerfile")):
        text = p.read_text()
        args: list[tuple[str, str]] = []
        excludes: list[str] = []
        target = platform = None
        for line in text.splitlines():
            if not line.startswith("# golden:"):
                continue
            word, *rest = line[len("# golden:"):].split()
            if word == "build-arg":
                args += [tuple(r.split("=", 1)) for r in rest]  # type: ignore[misc]
            elif word == "exclude":
                excludes += rest
            elif word == "target":
                target = rest[0]
            elif word == "platform":
                platform = rest[0]
        out.append(Case(str(p.relative_to(ROOT)), text, "golden", tuple(args), tuple(excludes), target, platform))
    return out


def seed_cases() -> list[Case]:
    out = []
    for p in sorted(CORPUS.glob("dockerfile-parser/testfiles/*/Dockerfile")):
        out.append(Case(f"corpus/{p.relative_to(CORPUS)}", p.read_text(errors="surrogateescape"), "seed"))
    for d, kind in (("buildkit-llb", "seed"), ("buildkit-llb-v0.32", "corpus")):
        for p in sorted((CORPUS / d).glob("*.Dockerfile")):
            out.append(Case(f"corpus/{d}/{p.name}", p.read_text(), kind, files={"hello.txt": "hello\n"}))
    return out


def all_cases() -> list[Case]:
    """Every case once (the first place a text appears names it)."""
    cases = golden_cases() + seed_cases()
    for p in sorted(TESTS.rglob("*.py")):
        if "conformance" in p.parts:
            continue
        cases += inline_cases(p)
    seen: set[tuple] = set()
    out = []
    for c in cases:
        key = (c.text, c.build_args, c.excludes, c.target, c.platform)
        if key in seen:
            continue
        seen.add(key)
        out.append(c)
    return out
