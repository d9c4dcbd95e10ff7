"""``mason frontend-image``'s build context: a mason frontend and what it runs on, as files.

A frontend image is a Python base image plus one directory, ``/opt/mason``:

* ``site/`` — the ``mason`` package and every installed distribution it requires (the closure of
  its requirements, extras left out), the plugin's distribution and its requirements when the
  frontend is a plugin, or the top-level package of a ``module:attribute`` frontend; copied from
  the running interpreter's environment (so the base's Python must be the same minor version,
  which the build checks by importing everything and byte-compiling ``site/``);
* ``gocode/`` — the BuildKit ``.proto`` files the gateway stubs are made from, and ``cache/`` the
  stubs made from them (``MASON_GOCODE``, ``MASON_CACHE``): the image needs neither Debian's
  ``golang-github-docker-docker-dev`` nor protoc at run time.

:func:`write_context` writes that directory and the Dockerfile that assembles the image (the
entrypoint ``python3 -m mason.gateway.client NAME``, BuildKit's frontend labels); the driver
builds it like any Dockerfile.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mason.ir.errors import MasonError

PREFIX = "/opt/mason"
DEFAULT_FILENAMES = {"mockerfile": "Mockerfile.yaml", "buildpacks": "project.toml"}
CAPS = {"dockerfile": "moby.buildkit.frontend.contexts"}  # the label's caps, by built-in frontend
CAP_SUBREQUESTS = "moby.buildkit.frontend.subrequests"  # it answers --call (outline, targets, lint)
_REQ_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def default_base() -> str:
    """A Python base of the running interpreter's version (the copied wheels need its ABI)."""
    return f"docker.io/library/python:{sys.version_info.major}.{sys.version_info.minor}-slim"


@dataclass
class Contents:
    """What goes into ``site/``: package directories or modules (source path -> name under
    site) and whole distributions (by name), plus the frontend's default build file name."""

    name: str
    paths: dict[str, str] = field(default_factory=dict)
    dists: list[str] = field(default_factory=list)
    filename: str = "Dockerfile"
    caps: str = ""


def _requirements(dist: md.Distribution) -> list[str]:
    out = []
    for req in dist.requires or ():
        if "extra ==" in req.partition(";")[2].replace("extra==", "extra =="):
            continue
        m = _REQ_NAME.match(req)
        if m:
            out.append(m.group(1))
    return out


def _closure(roots: list[str]) -> list[str]:
    """Installed distributions ``roots`` require, transitively (a missing one is optional here:
    its marker did not apply to this interpreter)."""
    seen: dict[str, None] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen or key == "mason":
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[key] = None
        todo.extend(_requirements(dist))
    return sorted(seen)


def _module_root(module: str) -> tuple[str, str]:
    """The source path of ``module``'s top-level package (or single-file module) and its name."""
    top = module.split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None:
        raise MasonError(f"no Python module {top!r} to package")
    if spec.submodule_search_locations:
        return str(list(spec.submodule_search_locations)[0]), top
    if spec.origin and spec.origin.endswith(".py"):
        return spec.origin, f"{top}.py"
    raise MasonError(f"cannot package the module {top!r} ({spec.origin}): not Python source")


def contents(name: str) -> Contents:
    """What the image for frontend ``name`` holds (checked by loading the frontend here first)."""
    import mason
    from mason.frontends import registry
    from mason.frontends.base import SUBREQUESTS, answers
    from mason.gateway.client import load_frontend

    fe = load_frontend(name)  # a clear error now rather than in the image build
    mason_dir = str(Path(mason.__file__).parent)
    caps = [c for c in CAPS.get(name, "").split(",") if c]
    if any(answers(fe, s) for s in SUBREQUESTS):
        caps.append(CAP_SUBREQUESTS)
    out = Contents(name, {mason_dir: "mason"}, filename=DEFAULT_FILENAMES.get(name, "Dockerfile"),
                   caps=",".join(caps))
    roots: list[str] = []
    try:
        roots += _requirements(md.distribution("mason"))
    except md.PackageNotFoundError:
        raise MasonError("mason is not installed as a distribution (pip install it) ") from None
    if ":" in name:
        src, as_name = _module_root(name.partition(":")[0])
        if as_name != "mason":
            out.paths[src] = as_name
    elif name not in registry.BUILTINS:
        from importlib.metadata import entry_points

        ep = next((e for e in entry_points(group=registry.GROUP) if e.name == name), None)
        dist = getattr(ep, "dist", None)
        if ep is None or dist is None:
            raise MasonError(f"frontend {name!r}: no distribution installs it (cannot package it)")
        roots.append(dist.name)
        src, as_name = _module_root(ep.value.partition(":")[0])
        out.paths.setdefault(src, as_name)  # an editable install's sources are not among its files
    out.dists = _closure(roots)
    return out


def _ignore(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))]


def _copy_dist(name: str, site: Path) -> None:
    dist = md.distribution(name)
    meta = Path(str(getattr(dist, "_path", "")))
    root = meta.parent.resolve() if meta.name else None
    for f in dist.files or ():
        src = Path(str(dist.locate_file(f))).resolve()
        if root is None or not src.is_relative_to(root) or "__pycache__" in src.parts or src.suffix == ".pyc":
            continue  # scripts in bin/, byte code (made again in the image)
        if not src.is_file():
            continue
        dest = site / src.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    if meta.is_dir() and root is not None and meta.resolve().is_relative_to(root):
        shutil.copytree(meta, site / meta.name, dirs_exist_ok=True, ignore=_ignore)  # entry points, RECORD


def _copy_path(src: str, site: Path, as_name: str) -> None:
    if Path(src).is_dir():
        shutil.copytree(src, site / as_name, dirs_exist_ok=True, ignore=_ignore)
    else:
        shutil.copy2(src, site / as_name)


def _copy_stubs(dest: Path) -> None:
    from mason.ir import llb_pb
    from mason.ir.paths import cache_root
    from mason.ir.protogen import GOCODE
    from mason.protos import buildkit

    for src in buildkit.source_files():
        target = dest / "gocode" / src.relative_to(GOCODE)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    for tree in (buildkit.stubs_dir(), llb_pb.include_dir()):
        shutil.copytree(tree, dest / "cache" / tree.parent.name / tree.name, ignore=_ignore)
    lark = cache_root() / "lark"
    if lark.is_dir():
        shutil.copytree(lark, dest / "cache" / "lark")


def dockerfile(c: Contents, base: str, python: str) -> str:
    """The Dockerfile assembling the image from ``base`` and the context's ``mason/``."""
    client = [python, "-m", "mason.gateway.client"]
    labels = {"moby.buildkit.frontend.network.none": "true", "mason.frontend": c.name}
    if c.caps:
        labels["moby.buildkit.frontend.caps"] = c.caps
    env = {"PYTHONPATH": f"{PREFIX}/site", "MASON_GOCODE": f"{PREFIX}/gocode", "MASON_CACHE": f"{PREFIX}/cache",
           "MASON_FRONTEND_FILENAME": c.filename}
    lines = [f"FROM {base}", f"COPY mason {PREFIX}",
             "ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in env.items()),
             f"RUN {json.dumps([*client, '--prepare', c.name, f'{PREFIX}/site'])}",
             "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items()),
             f"ENTRYPOINT {json.dumps([*client, c.name])}", "CMD []"]
    return "\n".join(lines) + "\n"


def write_context(c: Contents, dest: Path, *, base: str, python: str = "python3") -> Path:
    """The build context for ``c`` in ``dest`` (``Dockerfile`` and ``mason/``); the Dockerfile's path."""
    root = dest / "mason"
    site = root / "site"
    site.mkdir(parents=True)
    for name in c.dists:
        _copy_dist(name, site)
    for src, as_name in c.paths.items():
        _copy_path(src, site, as_name)
    _copy_stubs(root)
    path = dest / "Dockerfile"
    path.write_text(dockerfile(c, base, python))
    return path
