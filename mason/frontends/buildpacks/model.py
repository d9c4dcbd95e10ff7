"""The project descriptor (``project.toml``), schema 0.1 and 0.2, read into one typed tree.

0.1: ``[project]`` (id, name, version, authors, licenses, source-url, documentation-url),
``[build]`` (include / exclude, ``[[build.buildpacks]]``, ``[[build.env]]``, builder),
``[metadata]`` (free-form).

0.2: ``[_]`` (schema-version, id, name, version, authors, licenses, …, ``metadata``),
``[io.buildpacks]`` (builder, include / exclude, ``[[io.buildpacks.group]]``,
``[[io.buildpacks.pre.group]]`` / ``post``, ``[[io.buildpacks.build.env]]``); other namespaced
tables belong to other tools and are left alone.

mason extensions (the spec is silent): ``run-image`` next to ``builder`` (0.1 ``[build]``, 0.2
``[io.buildpacks]``) and ``optional = true`` on a group entry (a failing detect drops it instead of
failing the group, as in a builder's ``order.toml``).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from mason.frontends.schema import Mapping, Node
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["Project", "BuildpackRef", "InlineScript", "parse_project"]

PROJECT_KEYS = ("id", "name", "version", "authors", "licenses", "source-url", "documentation-url", "metadata",
                "schema-version")
BUILD_V1 = ("include", "exclude", "buildpacks", "env", "builder", "run-image")
IO_V2 = ("builder", "run-image", "include", "exclude", "group", "pre", "post", "build")
GROUP_KEYS = ("id", "version", "uri", "script", "optional")
SCRIPT_KEYS = ("api", "inline", "shell")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


@dataclass(frozen=True)
class InlineScript:
    api: str
    inline: str
    shell: str = "/bin/sh"


@dataclass(frozen=True)
class BuildpackRef:
    """One group entry: by ``id``/``version`` (found in the builder image), a ``uri`` (a
    directory of the build context, ``docker://IMAGE``, or an ``http(s)://`` ``.tgz``), or an
    inline ``script``."""

    id: str | None
    version: str | None
    uri: str | None
    script: InlineScript | None
    optional: bool
    loc: SourceLoc

    @property
    def label(self) -> str:
        if self.id:
            return f"{self.id}@{self.version}" if self.version else self.id
        return self.uri or "inline"


@dataclass(frozen=True)
class Project:
    schema: str
    id: str | None = None
    name: str | None = None
    version: str | None = None
    source_url: str | None = None
    builder: tuple[str, SourceLoc] | None = None
    run_image: tuple[str, SourceLoc] | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    pre: tuple[BuildpackRef, ...] = ()
    group: tuple[BuildpackRef, ...] = ()
    post: tuple[BuildpackRef, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    loc: SourceLoc | None = field(default=None, compare=False)

    def groups(self) -> list[tuple[BuildpackRef, ...]]:
        """The detection order: one group (pre + group + post) when the project names one."""
        g = self.pre + self.group + self.post
        return [g] if g else []


def _str(m: Mapping, key: str) -> str | None:
    return m.string(key)


def _patterns(m: Mapping, key: str) -> tuple[str, ...]:
    out = []
    for p, n in m.strings(key):
        if "\n" in p or "\x00" in p:
            raise MasonError(f"a {key} pattern must be one line", n.loc)
        out.append(p)
    return tuple(out)


def _entry(node: Node, what: str) -> BuildpackRef:
    m = node.mapping(what, GROUP_KEYS)
    bid, version, uri = _str(m, "id"), _str(m, "version"), _str(m, "uri")
    if bid is not None and not _ID.match(bid):
        raise MasonError(f"invalid buildpack id {bid!r}", m.get("id").loc)  # type: ignore[union-attr]
    script = None
    sn = m.get("script")
    if sn is not None:
        sm = sn.mapping("'script'", SCRIPT_KEYS, required=("api", "inline"))
        api, inline = sm.string("api"), sm.string("inline")
        assert api is not None and inline is not None
        shell = sm.string("shell") or "/bin/sh"
        if not shell.startswith("/"):
            raise MasonError(f"'shell' must be an absolute path, not {shell!r}", sm.get("shell").loc)  # type: ignore[union-attr]
        if bid is None:
            raise MasonError("an inline buildpack needs an 'id'", sn.loc)
        if uri is not None:
            raise MasonError("a buildpack has either a 'uri' or a 'script', not both", sn.loc)
        script = InlineScript(api, inline, shell)
    if uri is not None:
        un = m.get("uri")
        assert un is not None
        if uri.startswith(("http://", "https://")):
            if not uri.split("?", 1)[0].endswith((".tgz", ".tar.gz")):
                raise MasonError("an http(s) buildpack uri must name a .tgz (or .tar.gz) archive", un.loc)
        elif uri.startswith("docker://"):
            if bid is None or version is None:
                raise MasonError("a docker:// buildpack needs its 'id' and 'version' (the image holds "
                                 "/cnb/buildpacks/<id>/<version>)", un.loc)
        elif "://" in uri or uri.startswith("urn:"):
            raise MasonError(f"unsupported buildpack uri {uri!r}: a directory of the build context, "
                             "docker://IMAGE or an http(s):// .tgz", un.loc)
        else:
            p = posixpath.normpath(uri.lstrip("/") or ".")
            if p == ".." or p.startswith("../"):
                raise MasonError(f"buildpack directory {uri!r} is outside the build context", un.loc)
    if uri is None and script is None:
        if bid is None:
            raise MasonError(f"{what} needs an 'id', a 'uri' or a 'script'", node.loc)
        if version is None:
            raise MasonError(f"buildpack {bid!r} needs a 'version' (it is looked up in the builder's "
                             "/cnb/buildpacks/<id>/<version>)", node.loc)
    return BuildpackRef(bid, version, uri, script, m.boolean("optional"), node.loc)


def _env(nodes: list[Node], what: str) -> tuple[tuple[str, str], ...]:
    out = []
    for n in nodes:
        m = n.mapping(what, ("name", "value"), required=("name",))
        name, value = m.string("name"), m.string("value", "", empty=True)
        assert name is not None and value is not None
        if not _ENV.match(name):
            raise MasonError(f"invalid environment variable name {name!r}", m.get("name").loc)  # type: ignore[union-attr]
        out.append((name, value))
    return tuple(out)


def _group(node: Node | None, what: str) -> tuple[BuildpackRef, ...]:
    if node is None:
        return ()
    return tuple(_entry(n, what) for n in node.seq(what))


def _image_key(m: Mapping, key: str) -> tuple[str, SourceLoc] | None:
    v = m.string(key)
    return None if v is None else (v.strip(), m.key_loc(key))


def _project_table(m: Mapping) -> dict:
    meta = m.get("metadata")
    if meta is not None and not isinstance(meta.value, dict):
        raise meta.error("'metadata' must be a table")
    for k in ("authors",):
        if m.get(k) is not None:
            m.strings(k)
    return {"id": _str(m, "id"), "name": _str(m, "name"), "version": _str(m, "version"),
            "source_url": _str(m, "source-url")}


def _v01(top: Mapping) -> Project:
    proj: dict = {}
    pn = top.get("project")
    if pn is not None:
        pm = pn.mapping("[project]", [k for k in PROJECT_KEYS if k not in ("metadata", "schema-version")])
        proj = _project_table(pm)
    b = top.get("build")
    if b is None:
        return Project("0.1", **proj, loc=top.node.loc)
    bm = b.mapping("[build]", BUILD_V1)
    inc, exc = _patterns(bm, "include"), _patterns(bm, "exclude")
    if inc and exc:
        raise MasonError("[build] has both 'include' and 'exclude': use one", bm.key_loc("exclude"))
    return Project("0.1", **proj, builder=_image_key(bm, "builder"), run_image=_image_key(bm, "run-image"),
                   include=inc, exclude=exc, group=_group(bm.get("buildpacks"), "a [[build.buildpacks]] entry"),
                   env=_env(bm.seq("env"), "a [[build.env]] entry"), loc=top.node.loc)


def _v02(top: Mapping) -> Project:
    un = top.get("_")
    proj: dict = {}
    if un is not None:
        um = un.mapping("[_]", PROJECT_KEYS)
        proj = _project_table(um)
    io = top.get("io")
    bp = None
    if io is not None:
        if not isinstance(io.value, dict):
            raise io.error("'io' must be a table")
        bp = io.value.get("buildpacks")
    if bp is None:
        return Project("0.2", **proj, loc=top.node.loc)
    m = bp.mapping("[io.buildpacks]", IO_V2)
    inc, exc = _patterns(m, "include"), _patterns(m, "exclude")
    if inc and exc:
        raise MasonError("[io.buildpacks] has both 'include' and 'exclude': use one", m.key_loc("exclude"))

    def phase(key: str) -> tuple[BuildpackRef, ...]:
        n = m.get(key)
        if n is None:
            return ()
        pm = n.mapping(f"[io.buildpacks.{key}]", ("group",))
        return _group(pm.get("group"), f"a [[io.buildpacks.{key}.group]] entry")

    env: tuple[tuple[str, str], ...] = ()
    bn = m.get("build")
    if bn is not None:
        bm = bn.mapping("[io.buildpacks.build]", ("env",))
        env = _env(bm.seq("env"), "an [[io.buildpacks.build.env]] entry")
    return Project("0.2", **proj, builder=_image_key(m, "builder"), run_image=_image_key(m, "run-image"),
                   include=inc, exclude=exc, pre=phase("pre"),
                   group=_group(m.get("group"), "an [[io.buildpacks.group]] entry"), post=phase("post"),
                   env=env, loc=top.node.loc)


def parse_project(root: Node) -> Project:
    """The typed descriptor; a located :class:`MasonError` at the first mistake."""
    if not isinstance(root.value, dict):
        raise root.error("a project descriptor must be a TOML table")
    items: dict[str, Node] = root.value
    schema = None
    un = items.get("_")
    if un is not None and isinstance(un.value, dict) and "schema-version" in un.value:
        sv = un.value["schema-version"]
        schema = sv.string("'schema-version'")
        if schema not in ("0.1", "0.2"):
            raise MasonError(f"unsupported schema-version {schema!r} (mason reads 0.1 and 0.2)", sv.loc)
    if schema is None:
        schema = "0.2" if ("_" in items or "io" in items) else "0.1"
    if schema == "0.2":
        for k, n in items.items():
            if not isinstance(n.value, dict):
                raise MasonError(f"unknown top-level key {k!r} (schema 0.2 has [_] and [io.buildpacks]; other "
                                 "tools' settings go in their own namespaced tables)",
                                 root.key_locs.get(k, n.loc))
        top = Mapping(root, "the project descriptor")
        return _v02(top)
    top = root.mapping("the project descriptor (schema 0.1)", ("project", "build", "metadata"))
    meta = top.get("metadata")
    if meta is not None and not isinstance(meta.value, dict):
        raise meta.error("[metadata] must be a table")
    return _v01(top)
