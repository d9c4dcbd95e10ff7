"""A plugin frontend for mason's tests: the 'toy' language, one instruction a line.

    # syntax=toy            (or a file named Toyfile)
    from busybox            the base image (the first line that is not a comment)
    run echo hi > /hi       a command, through /bin/sh -c
    write /greeting hello   a file with the rest of the line and a newline

It uses only mason's public frontend interface and the builder API, as a third-party plugin would.
"""

from __future__ import annotations

import os

from mason.frontends.base import BaseFrontend, FrontendRequest, FrontendResult, TargetInfo, Targets
from mason.ir import builder
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph, Output
from mason.ir.imageconfig import empty_image_config


class ToyFrontend(BaseFrontend):
    name = "toy"
    description = "toy: from/run/write lines (mason's plugin test)"

    def claims(self, path: str, text: str) -> bool:
        return os.path.basename(path) == "Toyfile"

    def lower(self, request: FrontendRequest) -> FrontendResult:
        state = None
        platform = str(request.platform) if request.platform else None
        for lineno, raw in enumerate(request.text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            loc = SourceLoc(request.filename, lineno, 1)
            if word == "from":
                state = builder.image(rest.strip(), platform=platform)
            elif state is None:
                raise MasonError("the first instruction must be 'from IMAGE'", loc, raw)
            elif word == "run":
                state = state.run(["/bin/sh", "-c", rest]).root()
            elif word == "write":
                path, _, data = rest.partition(" ")
                state = state.mkfile(path, data + "\n")
            else:
                raise MasonError(f"unknown instruction {word!r} (from, run, write)", loc, raw)
        if state is None or state.ref is None:
            raise MasonError("nothing to build: no 'from' line", SourceLoc(request.filename, 1, 1))
        config = empty_image_config()
        return FrontendResult(Graph((Output("default", state.ref, config),)))

    def targets(self, request: FrontendRequest) -> Targets:
        return Targets((TargetInfo("default", "the only target", default=True),))
