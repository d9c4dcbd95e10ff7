"""Gockerfile: ``repo``, ``path``, ``version`` -> the Go program built from git, on a small image."""

from __future__ import annotations

import os

import yaml

from mason.frontends.base import BaseFrontend, FrontendRequest, FrontendResult
from mason.ir import builder as llb
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph
from mason.ir.imageconfig import empty_image_config

KEYS = ("repo", "path", "version")
BUILDER, RUN = "golang:1.22", "gcr.io/distroless/static-debian12"  # build args GOCKER_BUILDER/_RUN override


def _image(ref: str, request: FrontendRequest) -> llb.State:
    got = request.resolver.resolve_image_config(ref, request.platform) if request.resolver else None
    state = llb.image(ref, platform=request.platform and str(request.platform), config=got and got.config)
    for e in ((got.config.get("config") or {}).get("Env") or []) if got else ():
        state = state.with_env(*e.split("=", 1))
    return state


class GockerfileFrontend(BaseFrontend):
    name = "gockerfile"
    description = "Gockerfile: repo/path/version of a Go program -> an image running it"

    def claims(self, path: str, text: str) -> bool:
        return os.path.basename(path) in ("Gockerfile", "Gockerfile.yaml")

    def lower(self, request: FrontendRequest) -> FrontendResult:
        where = SourceLoc(request.filename, 1, 1)
        try:
            doc = yaml.safe_load(request.text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise MasonError(f"not YAML: {getattr(e, 'problem', e)}",
                             SourceLoc(request.filename, mark.line + 1, mark.column + 1) if mark else where) from None
        if not isinstance(doc, dict) or sorted(doc) != sorted(KEYS) or not all(isinstance(doc[k], str) for k in KEYS):
            raise MasonError(f"a Gockerfile is a mapping of exactly {', '.join(KEYS)} (strings)", where)
        src = llb.git(doc["repo"], doc["version"])
        go = _image(request.build_args.get("GOCKER_BUILDER", BUILDER), request)
        built = go.with_env("CGO_ENABLED", "0").with_env("GOCACHE", "/root/.cache/go-build").with_cwd("/src").run(
            ["go", "build", "-o", "/out/app", "./" + doc["path"].strip("/")],
            mounts=[llb.bind(src, "/src", readonly=True), llb.bind(llb.scratch(), "/out"),
                    llb.cache("/root/.cache/go-build", id="gockerfile-go-build")], name="go build " + doc["path"])
        app = _image(request.build_args.get("GOCKER_RUN", RUN), request).file(
            llb.copy(built.get_mount("/out"), "/app", "/app"), name="install /app")
        config = app.image_config or empty_image_config()
        inner = {k: v for k, v in (config.get("config") or {}).items() if k != "Cmd"}
        config = {**config, "config": {**inner, "Entrypoint": ["/app"]}}
        return FrontendResult(Graph((app.with_image_config(config).output(),)))
