"""Lowering a project descriptor: the CNB lifecycle as LLB, through :mod:`mason.ir.builder`.

* the app: ``local://context`` filtered by include/exclude (and ``.dockerignore``);
* the buildpacks staged in one FileOp (``/cnb/mason/bp/K``): a context directory (``uri``),
  ``/cnb/buildpacks/<id>/<version>`` of an image (``docker://``) or of the builder (``id`` and
  ``version`` only), an unpacked ``http(s)://`` .tgz, or an inline ``script``;
* the platform directory: ``env/NAME`` files from the build env;
* **detect**: one ExecOp on the builder running every group's ``bin/detect`` in order (exit 0
  pass, 100 fail, other an error; the first group whose non-optional buildpacks pass); its
  output mount holds the chosen group and each buildpack's build plan;
* **build**: one ExecOp per buildpack on the builder (skipped at run time when detection did not
  choose it), the app at ``/workspace`` and ``/layers`` as writable mounts chained from one
  buildpack to the next, ``CNB_LAYERS_DIR``, ``CNB_PLATFORM_DIR``, ``CNB_BUILD_PLAN_PATH``,
  ``CNB_BP_PLAN_PATH``; its ``cache`` layers persist in a cache mount (``locked``), ``build``
  layers go on the PATH of the buildpacks after it;
* **export**: one ExecOp copying each buildpack's ``launch`` layers to an output of its own and
  turning ``launch.toml`` processes into ``/cnb/process/TYPE`` scripts; the image is a MergeOp of
  the run image, the app layer, the launcher, one layer per buildpack and the process layer, with
  ``Entrypoint`` the launcher (which runs the default process) and ``io.buildpacks.*`` labels.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Mapping

from mason.frontends.baseimage import BaseImages
from mason.frontends.buildpacks.model import BuildpackRef, Project
from mason.frontends.buildpacks.scripts import (
    BP_ROOT,
    LAUNCHER,
    LAUNCHER_PATH,
    build_script,
    detect_script,
    export_script,
)
from mason.ir import builder as llb
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph, Output
from mason.ir.resolver import ImageMetaResolver, PlatformSpec

__all__ = ["lower_project", "RUN_IMAGE_LABEL", "LIFECYCLE_LABEL", "BUILD_LABEL", "PROJECT_LABEL"]

RUN_IMAGE_LABEL = "io.buildpacks.run-image"  # on a builder: the run image to use
LIFECYCLE_LABEL = "io.buildpacks.lifecycle.metadata"
BUILD_LABEL = "io.buildpacks.build.metadata"
PROJECT_LABEL = "io.buildpacks.project.metadata"
CONTEXT = "context"


def _cjson(v: object) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _cache_id(p: Project, k: int, bp: BuildpackRef) -> str:
    key = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{p.id or p.name or 'project'}/{k}-{bp.label}")
    return f"mason-cnb-{key}"


def _stage(bp: BuildpackRef, k: int, acts: llb.FileActions, ctx: llb.State, builder: llb.State,
           images: BaseImages, pspec: PlatformSpec) -> llb.FileActions:
    dest = f"/{k}"
    if bp.script is not None:
        meta = f'api = "{bp.script.api}"\n\n[buildpack]\nid = "{bp.id}"\nversion = "{bp.version or "0.0.0"}"\n'
        return (acts.mkdir(f"{dest}/bin", 0o755, parents=True)
                .mkfile(f"{dest}/buildpack.toml", meta, 0o644)
                .mkfile(f"{dest}/bin/detect", "#!/bin/sh\nexit 0\n", 0o755)
                .mkfile(f"{dest}/bin/build", f"#!{bp.script.shell}\n{bp.script.inline}\n", 0o755))
    uri = bp.uri
    if uri is not None and uri.startswith(("http://", "https://")):
        src = llb.http(uri, filename="buildpack.tgz", platform=str(pspec))
        return acts.mkdir(dest, 0o755, parents=True).copy(src, "/buildpack.tgz", dest + "/", attempt_unpack=True)
    if uri is None or uri.startswith("docker://"):
        assert bp.id is not None and bp.version is not None
        where = f"/cnb/buildpacks/{bp.id.replace('/', '_')}/{bp.version}"
        source = builder
        if uri is not None:
            source, _, _ = images.get(uri[len("docker://"):], bp.loc)
        return acts.copy(source, where, dest, dir_copy_contents=True, create_dest_path=True, follow_symlink=True)
    path = posixpath.normpath(uri.lstrip("/") or ".")
    return acts.copy(ctx, "/" + path, dest, dir_copy_contents=True, create_dest_path=True, follow_symlink=True)


def lower_project(p: Project, *, resolver: ImageMetaResolver | None = None, platform: PlatformSpec | None = None,
                  excludes: tuple[str, ...] = (), build_args: Mapping[str, str] | None = None,
                  warnings: list[tuple[str, SourceLoc | None]] | None = None) -> Graph:
    """The image the lifecycle builds (output ``default``)."""
    warn = warnings if warnings is not None else []
    args = dict(build_args or {})
    pspec = platform or PlatformSpec.default()
    images = BaseImages(resolver, pspec, lambda m, loc: warn.append((m, loc)), "buildpacks")
    loc = p.loc
    bname, bloc = (args["BUILDER"], loc) if args.get("BUILDER") else (p.builder or (None, loc))
    if not bname:
        raise MasonError("no builder image: set 'builder' in [io.buildpacks] (schema 0.2) or [build] (0.1), "
                         "or pass --build-arg BUILDER=IMAGE", loc)
    builder, bcfg, _ = images.get(bname, bloc)
    labels = (bcfg.get("config") or {}).get("Labels") or {}
    if args.get("RUN_IMAGE"):
        rname, rloc = args["RUN_IMAGE"], loc
    elif p.run_image is not None:
        rname, rloc = p.run_image
    else:
        rname, rloc = str(labels.get(RUN_IMAGE_LABEL) or bname), bloc
    run, rcfg, rref = images.get(rname, rloc)
    groups = p.groups()
    if not groups:
        raise MasonError("no buildpacks: list them in [[io.buildpacks.group]] (schema 0.2) or "
                         "[[build.buildpacks]] (0.1); mason does not read a builder's order.toml", loc)
    bps: list[BuildpackRef] = [bp for g in groups for bp in g]

    benv = dict(str(e).partition("=")[::2] for e in (bcfg.get("config") or {}).get("Env") or ())
    owner: tuple[int, int] | None = None
    if benv.get("CNB_USER_ID", "").isdigit() and benv.get("CNB_GROUP_ID", "").isdigit():
        owner = (int(benv["CNB_USER_ID"]), int(benv["CNB_GROUP_ID"]))

    def tree(path: str = "/") -> llb.State:
        """An empty writable directory for a mount, owned by the builder's CNB user."""
        if owner is None:
            return llb.scratch()
        return llb.scratch().file(llb.mkdir("/", 0o755, owner=owner))

    app = llb.local(CONTEXT, include=p.include, exclude=tuple(p.exclude) + tuple(excludes), shared_key_hint=CONTEXT)
    dirs = sorted({posixpath.normpath(bp.uri.lstrip("/") or ".") for bp in bps
                   if bp.uri and "://" not in bp.uri})
    ctx = llb.local(CONTEXT, follow_paths=[] if "." in dirs else dirs, shared_key_hint=CONTEXT)
    acts = llb.FileActions()
    for k, bp in enumerate(bps):
        acts = _stage(bp, k, acts, ctx, builder, images, pspec)
    staged = llb.scratch().file(acts, name="[buildpacks] stage buildpacks")
    penv = llb.mkdir("/env", 0o755)
    for name, value in p.env:
        penv = penv.mkfile(f"/env/{name}", value, 0o644)
    platform_dir = llb.scratch().file(penv, name="[buildpacks] platform env")

    ro = [llb.bind(staged, BP_ROOT, readonly=True), llb.bind(platform_dir, "/platform", readonly=True)]
    k_of = {id(bp): k for k, bp in enumerate(bps)}
    det = builder.at(loc).run(detect_script([[(k_of[id(bp)], bp.label, bp.optional) for bp in g] for g in groups]),
                              mounts=ro + [llb.bind(app, "/workspace", readonly=True), llb.bind(tree(), "/detect")],
                              name="[buildpacks] detect")
    detected = det.get_mount("/detect")
    workspace = app
    layers = tree()
    for k, bp in enumerate(bps):
        es = builder.at(bp.loc).run(
            build_script(k, bp.label, list(range(k))),
            mounts=ro + [llb.bind(detected, "/detect", readonly=True), llb.bind(workspace, "/workspace"),
                         llb.bind(layers, "/layers"), llb.cache("/cache", id=_cache_id(p, k, bp), sharing="locked")],
            name=f"[buildpacks] build {bp.label}")
        workspace, layers = es.get_mount("/workspace"), es.get_mount("/layers")
    outs = [f"/out/{k}" for k in range(len(bps))] + ["/out/config"]
    export_mounts = [llb.bind(layers, "/layers", readonly=True), llb.bind(detected, "/detect", readonly=True)]
    ex = builder.at(loc).run(export_script(list(range(len(bps)))),
                             mounts=export_mounts + [llb.bind(tree(), o) for o in outs],
                             name="[buildpacks] export launch layers")
    app_layer = llb.scratch().file(llb.copy(workspace, "/", "/workspace", dir_copy_contents=True,
                                            create_dest_path=True, owner=owner), name="[buildpacks] app layer")
    launcher = llb.scratch().file(llb.mkdir("/cnb/lifecycle", 0o755, parents=True)
                                  .mkfile(LAUNCHER_PATH, LAUNCHER, 0o755), name="[buildpacks] launcher")
    image = llb.merge([run, app_layer, launcher] + [ex.get_mount(o) for o in outs], name="[buildpacks] image")
    meta_bps = [{"id": bp.id, "version": bp.version} if bp.id else {"uri": bp.uri} for bp in bps]
    project = {k: v for k, v in (("id", p.id), ("name", p.name), ("version", p.version),
                                 ("source-url", p.source_url)) if v}
    lifecycle = {"runImage": {"image": rname, "reference": rref}, "builder": bname, "buildpacks": meta_bps,
                 "launcher": LAUNCHER_PATH}
    image = image.at(loc).config(
        ("set", "Entrypoint", _cjson([LAUNCHER_PATH])), ("set", "Cmd", "null"),
        ("set", "WorkingDir", _cjson("/workspace")),
        ("label", PROJECT_LABEL, _cjson(project)), ("label", BUILD_LABEL, _cjson({"buildpacks": meta_bps})),
        ("label", LIFECYCLE_LABEL, _cjson(lifecycle)),
        created_by="buildpacks: launcher entrypoint and io.buildpacks labels")
    assert image.ref is not None
    return Graph((Output("default", image.ref, rcfg),))
