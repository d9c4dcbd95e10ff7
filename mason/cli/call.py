"""``mason build --call outline|targets|check`` (``--check`` is ``--call check``): BuildKit's
frontend subrequests, printed as ``docker buildx build --call …`` prints them.

* ``--format text`` (default): outline and targets as BuildKit's ``result.txt`` (tab-aligned
  tables, on stdout); check as the build checks print in a build (location, source line,
  caret, explanation, on stderr) and ``Check complete, …`` on stdout.
* ``--format json``: BuildKit's ``result.json`` of the subrequest on stdout (Go's field names
  and order, locations as ``{"ranges": [{"start": {"line": N}, "end": …}]}``, sources base64).

Nothing is built and no base image is resolved (the checks that need a base image's config
stay quiet in stages on an external image). ``check`` exits 1 when the checks are set to error
(``# check=error=true``) and one fired.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import click

from mason.frontends.base import Frontend, FrontendRequest, LintResult, Outline, Targets, answers
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["CALLS", "run_call", "tabulate", "outline_text", "outline_json", "targets_text", "targets_json",
           "lint_json"]

CALLS = ("build", "check", "outline", "targets")
_SUBREQUEST = {"check": "lint", "outline": "outline", "targets": "targets"}
_GO_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _json(value: object) -> str:
    """Indented JSON as Go's ``json.MarshalIndent(v, "", "  ")`` writes it."""
    return json.dumps(value, indent=2, ensure_ascii=False).translate(_GO_HTML)


def tabulate(rows: Sequence[Sequence[str]], padding: int) -> str:
    """Go's ``text/tabwriter`` (min width 0, padding ``padding``, spaces): every cell but a
    line's last is padded to its column's widest cell plus ``padding``."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    out = []
    for row in rows:
        cells = [cell.ljust(widths[i] + padding) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + (row[-1] if row else "") + "\n")
    return "".join(out)


def _location(loc: SourceLoc | None) -> dict | None:
    if loc is None:
        return None
    end = loc.end_line if loc.end_line is not None else loc.line
    return {"ranges": [{"start": {"line": loc.line}, "end": {"line": end}}]}


def _omit(d: dict) -> dict:
    """Go's ``omitempty``: empty strings, False, None and empty lists are left out."""
    return {k: v for k, v in d.items() if v not in ("", None, False, [])}


def outline_json(o: Outline, text: str) -> str:
    args = [_omit({"name": a.name, "description": a.description, "value": a.value or "",
                   "location": _location(a.loc)}) | {"name": a.name} for a in o.args]
    secrets = [_omit({"name": s.id, "required": s.required, "location": _location(s.loc)}) | {"name": s.id}
               for s in o.secrets]
    ssh = [_omit({"name": s.id, "required": s.required, "location": _location(s.loc)}) | {"name": s.id}
           for s in o.ssh]
    doc = _omit({"name": o.target or "", "description": o.description, "args": args, "secrets": secrets,
                 "ssh": ssh, "sources": [base64.b64encode(_bytes(text)).decode()]})
    return _json(doc)


def outline_text(o: Outline) -> str:
    out = ""
    if o.target or o.description:
        rows = [["TARGET:", o.target or "(default)"]]
        if o.description:
            rows.append(["DESCRIPTION:", o.description])
        out += tabulate(rows, 1) + "\n"
    if o.args:
        out += tabulate([["BUILD ARG", "VALUE", "DESCRIPTION"]]
                        + [[a.name, a.value or "", a.description] for a in o.args], 3) + "\n"
    if o.secrets:
        out += tabulate([["SECRET", "REQUIRED"]] + [[s.id, "true" if s.required else ""] for s in o.secrets], 3) + "\n"
    if o.ssh:
        out += tabulate([["SSH", "REQUIRED"]] + [[s.id, "true" if s.required else ""] for s in o.ssh], 3) + "\n"
    return out


def targets_json(t: Targets, text: str) -> str:
    return _json({"targets": [_omit({"name": x.name, "default": x.default, "description": x.description,
                                     "base": x.base or "", "platform": x.platform or "",
                                     "location": _location(x.loc)}) for x in t.targets],
                  "sources": [base64.b64encode(_bytes(text)).decode()]})


def targets_text(t: Targets) -> str:
    rows = [["TARGET", "DESCRIPTION"]]
    for x in t.targets:
        name = x.name
        if not name and x.default:
            name = "(default)"
        elif x.default:
            name = f"{name} (default)"
        rows.append([name, x.description])
    return tabulate(rows, 1)


def lint_json(report: LintResult, text: str, filename: str, language: str = "Dockerfile") -> str:
    warnings = []
    for w in report.warnings:
        loc = _location(w.loc) or {"ranges": []}
        warnings.append(_omit({"ruleName": w.rule, "description": w.description, "detail": w.message})
                        | {"ruleName": w.rule, "location": loc})
    doc = {"warnings": warnings,
           "sources": [{"fileName": filename, "language": language, "definition": None,
                        "data": base64.b64encode(_bytes(text)).decode()}]}
    return _json(doc)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def run_call(call: str, fe: Frontend, request: FrontendRequest, fmt: str = "text") -> int:
    """Answer ``call`` for ``request`` and print it; the exit code (1: the checks failed)."""
    what = _SUBREQUEST[call]
    if not answers(fe, what):
        raise MasonError(f"--call {call}: the {fe.name} frontend does not answer the {what!r} subrequest")
    if call == "outline":
        o = fe.outline(request)
        click.echo(outline_json(o, request.text) if fmt == "json" else outline_text(o), nl=fmt == "json")
        return 0
    if call == "targets":
        t = fe.targets(request)
        click.echo(targets_json(t, request.text) if fmt == "json" else targets_text(t), nl=fmt == "json")
        return 0
    report = fe.lint(request)
    if fmt == "json":
        click.echo(lint_json(report, request.text, request.filename,
                             "Dockerfile" if fe.name == "dockerfile" else fe.name))
    else:
        from mason.cli.main import echo_err

        for w in report.warnings:
            echo_err(w.format())
        n = len(report.warnings)
        click.echo(f"Check complete, {n} warning{'s' if n != 1 else ''} found" if n
                   else "Check complete, no warnings found.")
    if report.failed:
        rules = list(dict.fromkeys(w.rule for w in report.warnings))
        raise MasonError("lint violation found for rules: " + ", ".join(rules))
    return 0
