"""Lowering a Mockerfile to LLB through :mod:`mason.ir.builder`.

Each image, in file order:

1. its base: ``from`` (resolved and pinned like a Dockerfile ``FROM``; its config seeds the
   steps' env, working directory and user) or, without ``from``, the ``parent`` image's result;
   with both, the parent's outputs are copied onto the ``from`` base (a build/run split);
2. ``workdir``: a mkdir FileOp, the steps' working directory and the image's ``WorkingDir``;
3. ``package``: each ``gpg`` key an ``http(s)://`` source copied into
   ``/etc/apt/trusted.gpg.d/``, the ``repo`` lines a file in ``/etc/apt/sources.list.d/``, then one
   ExecOp ``apt-get update && apt-get install`` with cache mounts for ``/var/cache/apt`` and
   ``/var/lib/apt/lists`` (``sharing=locked``);
4. ``external``: each ``src`` an ``http(s)://`` source (``sha256`` as its ``http.checksum``, so a
   wrong download fails in the source op) placed at ``dst`` by a FileOp — a ``.tar.gz`` unpacked
   into ``dst``, any other file copied to ``dst`` with mode 0755 — then its ``install`` commands;
5. ``steps``: one ExecOp each, with the ``input.mount`` context paths bind-mounted writable (each
   step sees the previous step's changes to them; they are not part of the image);
6. ``output``: ``src:dst`` copies into the image (``src`` may be in a mounted context path).

Outputs: one per image, by name, and ``default`` (the last image); ``--target NAME`` selects.
"""

from __future__ import annotations

import copy
import json
import posixpath
from dataclasses import dataclass
from urllib.parse import urlsplit

from mason.frontends.baseimage import BaseImages
from mason.frontends.mockerfile.model import Image, Mockerfile
from mason.ir import builder as llb
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph, Output
from mason.ir.resolver import ImageMetaResolver, PlatformSpec

__all__ = ["lower_mockerfile", "APT_CACHES", "GPG_DIR", "SOURCES_LIST", "CONTEXT"]

CONTEXT = "context"
APT_CACHES = ("/var/cache/apt", "/var/lib/apt/lists")
GPG_DIR = "/etc/apt/trusted.gpg.d"
SOURCES_LIST = "/etc/apt/sources.list.d/mockerfile.list"
APT_INSTALL = ("apt-get update && apt-get -o APT::Keep-Downloaded-Packages=true install -y "
               "--no-install-recommends {}")


@dataclass(frozen=True)
class _Built:
    state: llb.State
    config: dict
    exports: tuple[tuple[llb.State, str, str], ...]  # (source state, path in it, dst) of `output`


def _cjson(v: object) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _basename(url: str, default: str) -> str:
    name = posixpath.basename(urlsplit(url).path)
    return name if name not in ("", ".", "..") else default


def _quote(word: str) -> str:
    if word and all(c.isalnum() or c in "+-.=:_~/" for c in word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


class _Lowerer:
    def __init__(self, mf: Mockerfile, resolver: ImageMetaResolver | None, platform: PlatformSpec | None,
                 excludes: tuple[str, ...], warn: list[tuple[str, SourceLoc | None]]):
        self.mf = mf
        self.resolver = resolver
        self.pspec = platform or PlatformSpec.default()
        self.excludes = excludes
        self.warn = warn
        self._context: llb.State | None = None
        self.images = BaseImages(resolver, self.pspec, lambda m, loc: warn.append((m, loc)), "mockerfile")

    def context(self) -> llb.State:
        if self._context is None:
            paths = sorted({m.src for im in self.mf.images for m in im.mounts})
            follow = [] if "." in paths else paths
            self._context = llb.local(CONTEXT, exclude=self.excludes, follow_paths=follow,
                                      shared_key_hint=CONTEXT)
        return self._context

    def base(self, name: str, loc: SourceLoc) -> tuple[llb.State, dict]:
        st, cfg, _ = self.images.get(name, loc)
        return st, cfg

    def lower_image(self, im: Image, done: dict[str, _Built]) -> _Built:
        parent = done[im.parent] if im.parent is not None else None
        if im.base is not None:
            st, cfg = self.base(im.base, im.loc)
            if parent is not None and parent.exports:
                acts = llb.FileActions()
                for src_state, path, dst in parent.exports:
                    acts = acts.copy(src_state, path, dst, create_dest_path=True, dir_copy_contents=True,
                                     follow_symlink=True)
                st = st.at(im.loc).file(acts, name=f"[{im.name}] outputs of {im.parent}")
        else:
            assert parent is not None
            st, cfg = parent.state, copy.deepcopy(parent.config)
        st = st.at(im.loc)
        if im.workdir is not None:
            st = st.file(llb.mkdir(im.workdir, 0o755, parents=True), name=f"[{im.name}] workdir {im.workdir}")
            st = st.with_cwd(im.workdir).config(("set", "WorkingDir", _cjson(im.workdir)),
                                                created_by=f"WORKDIR {im.workdir}")
        if im.package is not None:
            st = self.package(im, st)
        for ext in im.external:
            st = self.external(im, st, ext)
        st, mounts = self.steps(im, st)
        exports = []
        for o in im.output:
            src_state, path = st, o.src
            for m_dest, (m_state, selector) in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                if o.src == m_dest or o.src.startswith(m_dest.rstrip("/") + "/"):
                    rel = posixpath.relpath(o.src, m_dest)
                    path = posixpath.normpath(posixpath.join("/", selector, rel))
                    src_state = m_state
                    break
            exports.append((src_state, path, o.dst))
        if exports:
            acts = llb.FileActions()
            for src_state, path, dst in exports:
                acts = acts.copy(src_state, path, dst, create_dest_path=True, dir_copy_contents=True,
                                 follow_symlink=True)
            st = st.at(im.output[0].loc).file(acts, name=f"[{im.name}] output " + " ".join(
                f"{o.src}:{o.dst}" for o in im.output))
        return _Built(st, cfg, tuple(exports))

    def package(self, im: Image, st: llb.State) -> llb.State:
        pkg = im.package
        assert pkg is not None
        acts = llb.FileActions()
        used: set[str] = set()
        for i, (url, _loc) in enumerate(pkg.gpg):
            name = _basename(url, f"key{i}")
            if not name.endswith((".gpg", ".asc")):
                name += ".asc"
            while name in used:
                name = f"{i}-{name}"
            used.add(name)
            key = llb.http(url, filename=name, platform=str(self.pspec))
            acts = acts.copy(key, "/" + name, f"{GPG_DIR}/mockerfile-{name}", create_dest_path=True, mode=0o644)
        if pkg.repos:
            acts = acts.mkdir(posixpath.dirname(SOURCES_LIST), 0o755, parents=True)
            acts = acts.mkfile(SOURCES_LIST, "".join(line + "\n" for line, _ in pkg.repos), 0o644)
        if acts.steps:
            st = st.at((pkg.gpg or pkg.repos)[0][1]).file(acts, name=f"[{im.name}] apt sources and keys")
        if pkg.install:
            names = " ".join(_quote(p) for p, _ in pkg.install)
            mounts = [llb.cache(d, id=f"mockerfile-apt{d.replace('/', '-')}", sharing="locked") for d in APT_CACHES]
            st = st.at(pkg.install[0][1]).run(APT_INSTALL.format(names), mounts=mounts,
                                              env={"DEBIAN_FRONTEND": "noninteractive"},
                                              name=f"[{im.name}] apt-get install {names}").root()
        return st

    def external(self, im: Image, st: llb.State, ext) -> llb.State:  # noqa: ANN001 - model.External
        name = _basename(ext.src, "download")
        src = llb.http(ext.src, checksum=f"sha256:{ext.sha256}" if ext.sha256 else None, filename=name,
                       platform=str(self.pspec))
        st = st.at(ext.loc)
        if ext.is_archive:
            acts = llb.mkdir(ext.dst, 0o755, parents=True).copy(src, "/" + name, ext.dst.rstrip("/") + "/",
                                                                 attempt_unpack=True, create_dest_path=True)
        else:
            acts = llb.copy(src, "/" + name, ext.dst, create_dest_path=True, mode=0o755)
        st = st.file(acts, name=f"[{im.name}] external {ext.src} -> {ext.dst}")
        for cmd, loc in ext.install:
            st = st.at(loc).run(cmd, name=f"[{im.name}] {cmd}").root()
        return st

    def steps(self, im: Image, st: llb.State) -> tuple[llb.State, dict[str, tuple[llb.State, str]]]:
        mounts: dict[str, tuple[llb.State, str]] = {}
        if im.mounts:
            ctx = self.context()
            for m in im.mounts:
                mounts[m.dest] = (ctx, m.src)
        for cmd, loc in im.steps:
            specs = [llb.bind(state, dest, selector=sel if sel != "." else "") for dest, (state, sel) in mounts.items()]
            es = st.at(loc).run(cmd, mounts=specs, name=f"[{im.name}] {cmd}")
            st = es.root()
            mounts = {dest: (es.get_mount(dest), sel) for dest, (_, sel) in mounts.items()}
        return st, mounts


def lower_mockerfile(mf: Mockerfile, *, resolver: ImageMetaResolver | None = None,
                     platform: PlatformSpec | None = None, excludes: tuple[str, ...] = (),
                     target: str | None = None,
                     warnings: list[tuple[str, SourceLoc | None]] | None = None) -> Graph:
    """The graph of every image (outputs by image name, plus ``default``: the last image)."""
    warn = warnings if warnings is not None else []
    if target is not None and mf.image(target) is None:
        names = ", ".join(im.name for im in mf.images)
        raise MasonError(f"target image {target!r} could not be found (images: {names})")
    lw = _Lowerer(mf, resolver, platform, excludes, warn)
    done: dict[str, _Built] = {}
    outputs = []
    for im in mf.images:
        b = lw.lower_image(im, done)
        done[im.name] = b
        if b.state.ref is None:
            raise MasonError(f"image {im.name!r} has no filesystem", im.loc)
        outputs.append(Output(im.name, b.state.ref, b.config))
    last = outputs[-1]
    outputs.append(Output("default", last.ref, last.image_config))
    return Graph(tuple(outputs))
