"""The Mockerfile's typed tree, read from its positioned YAML (schema of r2d4/mockerfile's
``config.go``, every key implemented).

    apiVersion: v1alpha1
    images:
    - name: build             # unique; --target NAME builds it (default: the last)
      from: busybox           # the base image, or
      parent: other           # an earlier image of this file (its outputs are copied in; its
                              # whole filesystem is the base when there is no `from`)
      workdir: /src
      input: {mount: {".": /src}}       # context paths bind-mounted into the steps
      package: {repo: [...], gpg: [URL...], install: [name, name=version]}
      external: [{src: URL, dst: PATH, sha256: HEX, install: [CMD...]}]
      steps: [CMD...]
      output: ["src:dst", ...]          # copied into this image (and into its children)
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from mason.frontends.schema import Node
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["Mockerfile", "Image", "Package", "External", "Mount", "OutputSpec", "parse_mockerfile",
           "API_VERSION"]

API_VERSION = "v1alpha1"
TOP_KEYS = ("apiVersion", "images")
IMAGE_KEYS = ("name", "from", "parent", "workdir", "input", "package", "external", "steps", "output")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PKG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.:_-]*(=[A-Za-z0-9.+:~_-]+)?$")


@dataclass(frozen=True)
class Mount:
    src: str  # a path in the build context ("." for all of it)
    dest: str
    loc: SourceLoc


@dataclass(frozen=True)
class Package:
    repos: tuple[tuple[str, SourceLoc], ...] = ()
    gpg: tuple[tuple[str, SourceLoc], ...] = ()
    install: tuple[tuple[str, SourceLoc], ...] = ()


@dataclass(frozen=True)
class External:
    src: str
    dst: str
    sha256: str | None
    install: tuple[tuple[str, SourceLoc], ...]
    loc: SourceLoc

    @property
    def is_archive(self) -> bool:
        path = self.src.split("?", 1)[0].split("#", 1)[0]
        return path.endswith((".tar.gz", ".tgz"))


@dataclass(frozen=True)
class OutputSpec:
    src: str
    dst: str
    loc: SourceLoc


@dataclass(frozen=True)
class Image:
    name: str
    base: str | None  # `from`
    parent: str | None
    workdir: str | None
    mounts: tuple[Mount, ...]
    package: Package | None
    external: tuple[External, ...]
    steps: tuple[tuple[str, SourceLoc], ...]
    output: tuple[OutputSpec, ...]
    loc: SourceLoc


@dataclass(frozen=True)
class Mockerfile:
    images: tuple[Image, ...]

    def image(self, name: str) -> Image | None:
        for im in self.images:
            if im.name == name:
                return im
        return None


def _abs_path(value: str, node: Node, what: str, workdir: str | None) -> str:
    if not value.startswith("/"):
        if workdir is None:
            raise MasonError(f"{what} {value!r} must be an absolute path (or set 'workdir')", node.loc)
        value = posixpath.join(workdir, value)
    return posixpath.normpath(value)


def _context_path(value: str, node: Node) -> str:
    p = posixpath.normpath(value.lstrip("/") or ".")
    if p == ".." or p.startswith("../"):
        raise MasonError(f"context path {value!r} is outside the build context", node.loc)
    return p


def _url(value: str, node: Node, what: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value.split("://", 1)[1]) == 0:
        raise MasonError(f"{what} must be an http:// or https:// URL, not {value!r}", node.loc)
    if any(c.isspace() for c in value):
        raise MasonError(f"{what} must not contain spaces: {value!r}", node.loc)
    return value


def _package(node: Node) -> Package:
    m = node.mapping("'package'", ("repo", "gpg", "install"))
    repos = []
    for line, n in m.strings("repo"):
        if "\n" in line:
            raise MasonError("an apt source line must be one line", n.loc)
        if not line.strip().startswith(("deb ", "deb-src ", "deb\t")):
            raise MasonError(f"an apt source line starts with 'deb' or 'deb-src', not {line.split()[0]!r}", n.loc)
        repos.append((line.strip(), n.loc))
    gpg = [(_url(u, n, "a 'gpg' key"), n.loc) for u, n in m.strings("gpg")]
    install = []
    for pkg, n in m.strings("install"):
        if not _PKG.match(pkg):
            raise MasonError(f"invalid package {pkg!r}: expected NAME or NAME=VERSION", n.loc)
        install.append((pkg, n.loc))
    return Package(tuple(repos), tuple(gpg), tuple(install))


def _external(node: Node, workdir: str | None) -> External:
    m = node.mapping("an 'external' entry", ("src", "dst", "sha256", "install"), required=("src", "dst"))
    src_node, dst_node = m.get("src"), m.get("dst")
    if src_node is None or dst_node is None:
        raise MasonError("an 'external' entry needs 'src' and 'dst'", node.loc)
    src = _url(src_node.string("'src'"), src_node, "'src'")
    dst = _abs_path(dst_node.string("'dst'"), dst_node, "'dst'", workdir)
    sha = None
    sn = m.get("sha256")
    if sn is not None:
        sha = sn.string("'sha256'").strip().lower().removeprefix("sha256:")
        if not _HEX64.match(sha):
            raise MasonError(f"'sha256' must be 64 hexadecimal digits, not {sn.string('sha256')!r}", sn.loc)
    cmds = tuple((c, n.loc) for c, n in m.strings("install"))
    return External(src, dst, sha, cmds, src_node.loc)


def _image(node: Node) -> Image:
    m = node.mapping("an image", IMAGE_KEYS, required=("name",))
    name_node = m.get("name")
    if name_node is None:
        raise MasonError("an image needs a 'name'", node.loc)
    name = name_node.string("'name'")
    if not _NAME.match(name) or name == "default":
        raise MasonError(f"invalid image name {name!r}: letters, digits, '.', '_' and '-' "
                         "(not 'default')", name_node.loc)
    base = m.string("from")
    parent = m.string("parent")
    if base is None and parent is None:
        raise MasonError(f"image {name!r} needs 'from' (a base image) or 'parent' (another image)", name_node.loc)
    workdir = None
    wn = m.get("workdir")
    if wn is not None:
        w = wn.string("'workdir'")
        if not w.startswith("/"):
            raise MasonError(f"'workdir' must be an absolute path, not {w!r}", wn.loc)
        workdir = posixpath.normpath(w)
    mounts: list[Mount] = []
    inp = m.get("input")
    if inp is not None:
        im = inp.mapping("'input'", ("mount",))
        mn = im.get("mount")
        if mn is not None:
            mm = mn.mapping("'input.mount'", list(mn.value) if isinstance(mn.value, dict) else ())
            for src, dnode in mm.items.items():
                kloc = mm.key_loc(src)
                dest = _abs_path(dnode.string(f"the mount point of {src!r}"), dnode, "a mount point", workdir)
                if dest == "/":
                    raise MasonError("a context path cannot be mounted at /", dnode.loc)
                if any(x.dest == dest for x in mounts):
                    raise MasonError(f"two context paths mounted at {dest}", dnode.loc)
                mounts.append(Mount(_context_path(src, Node(src, kloc)), dest, kloc))
    pkg = m.get("package")
    external = tuple(_external(e, workdir) for e in m.seq("external"))
    steps = tuple((s, n.loc) for s, n in m.strings("steps"))
    outputs = []
    for spec, n in m.strings("output"):
        src, sep, dst = spec.partition(":")
        if not sep or not src.strip() or not dst.strip():
            raise MasonError(f"an output is SRC:DST, not {spec!r}", n.loc)
        outputs.append(OutputSpec(_abs_path(src.strip(), n, "an output source", workdir or "/"),
                                  _abs_path(dst.strip(), n, "an output destination", workdir), n.loc))
    return Image(name, base, parent, workdir, tuple(mounts), _package(pkg) if pkg is not None else None,
                 external, steps, tuple(outputs), name_node.loc)


def parse_mockerfile(root: Node) -> Mockerfile:
    """The typed Mockerfile; raises a located :class:`MasonError` at the first mistake."""
    if root.value is None:
        raise MasonError("the Mockerfile is empty: it needs 'apiVersion' and 'images'", root.loc)
    top = root.mapping("the Mockerfile", TOP_KEYS, required=("apiVersion", "images"))
    av = top.get("apiVersion")
    if av is None or av.string("'apiVersion'") != API_VERSION:
        raise MasonError(f"unsupported apiVersion (expected {API_VERSION})", av.loc if av else root.loc)
    nodes = top.seq("images")
    if not nodes:
        raise MasonError("'images' needs at least one image", top.key_loc("images"))
    images: list[Image] = []
    for n in nodes:
        im = _image(n)
        if any(x.name == im.name for x in images):
            raise MasonError(f"duplicate image name {im.name!r}", im.loc)
        if im.parent is not None:
            if im.parent == im.name:
                raise MasonError(f"image {im.name!r} cannot be its own parent", im.loc)
            if not any(x.name == im.parent for x in images):
                later = any(_peek_name(x) == im.parent for x in nodes)
                why = "must be defined before it" if later else "is not an image of this file"
                raise MasonError(f"parent {im.parent!r} of image {im.name!r} {why}", im.loc)
        images.append(im)
    return Mockerfile(tuple(images))


def _peek_name(n: Node) -> str | None:
    if isinstance(n.value, dict):
        v = n.value.get("name")
        if v is not None and isinstance(v.value, str):
            return v.value
    return None
