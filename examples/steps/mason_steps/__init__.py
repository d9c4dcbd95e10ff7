"""Stepfile: base IMAGE / env K=V / copy SRC DEST / run CMD / entry CMD, one a line."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

from lark import Lark, Transformer, UnexpectedInput, v_args

from mason.frontends.base import BaseFrontend, FrontendRequest, FrontendResult
from mason.ir import builder as llb
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph
from mason.ir.imageconfig import empty_image_config
from mason.ir.resolver import pinned_ref

GRAMMAR = r"""
start: (_step? _NL)* _step?
_step: base | env | copy | run | entry
base: "base" WORD
env: "env" NAME "=" REST
copy: "copy" WORD WORD
run: "run" REST
entry: "entry" REST
NAME: /[A-Za-z_][A-Za-z0-9_]*/
WORD: /[^\s#]+/
REST: /[^\n]+/
COMMENT: /#[^\n]*/
_NL: /\r?\n/
%ignore /[ \t]+/
%ignore COMMENT
"""


@dataclass(frozen=True)
class Step:  # one line of a Stepfile: its kind, its arguments, where it is
    kind: str
    args: tuple[str, ...]
    line: int
    column: int


@v_args(meta=True)
class _ToSteps(Transformer):
    def __default__(self, kind, children, meta):
        return Step(kind, tuple(str(c).strip() for c in children), meta.line, meta.column)

    def start(self, meta, steps):
        return list(steps)


PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True)


def parse(text: str, filename: str) -> list[Step]:
    try:
        return _ToSteps().transform(PARSER.parse(text))
    except UnexpectedInput as e:
        where = SourceLoc(filename, e.line, e.column)
        raise MasonError("unexpected input: expected base, env, copy, run or entry", where,
                         text.splitlines()[e.line - 1] if e.line > 0 else None) from None


class StepsFrontend(BaseFrontend):
    name = "steps"
    description = "Stepfile: base/env/copy/run/entry lines (docs/writing-a-build-language.md)"

    def claims(self, path: str, text: str) -> bool:
        return os.path.basename(path) == "Stepfile"

    def lower(self, request: FrontendRequest) -> FrontendResult:
        lines = request.text.splitlines()
        state, config = None, empty_image_config()
        for s in parse(request.text, request.filename):
            loc = SourceLoc(request.filename, s.line, s.column)
            if s.kind == "base":
                got = request.resolver.resolve_image_config(s.args[0], request.platform) if request.resolver else None
                config = copy.deepcopy(got.config) if got else empty_image_config()
                ref = pinned_ref(s.args[0], got.digest) if got else s.args[0]
                state = llb.image(ref, platform=request.platform and str(request.platform),
                                  config=config, loc=loc)
                for e in config.get("config", {}).get("Env") or []:
                    state = state.with_env(*e.split("=", 1))
            elif state is None:
                raise MasonError(f"'{s.kind}' before 'base': the first step names the base image", loc,
                                 lines[s.line - 1])
            elif s.kind == "env":
                state = state.with_env(s.args[0], s.args[1])
                config.setdefault("config", {}).setdefault("Env", []).append(f"{s.args[0]}={s.args[1]}")
            elif s.kind == "copy":
                state = state.file(llb.copy(llb.local("context"), s.args[0], s.args[1], create_dest_path=True),
                                   loc=loc)
            elif s.kind == "run":
                state = state.run(["/bin/sh", "-c", s.args[0]], loc=loc).root()
            else:  # entry
                config.setdefault("config", {})["Entrypoint"] = ["/bin/sh", "-c", s.args[0]]
        if state is None:
            raise MasonError("nothing to build: no 'base' step", SourceLoc(request.filename, 1, 1))
        return FrontendResult(Graph((state.with_image_config(config).output(),)))
