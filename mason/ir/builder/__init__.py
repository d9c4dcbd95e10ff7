"""The builder API: the one way frontends write LLB, as BuildKit's ``client/llb`` is to its own.

    from mason.ir.builder import image, scratch, local, merge, cache, mkdir

    base = image("busybox")
    built = base.with_cwd("/src").run("make", mounts=[cache("/root/.cache", id="x")]).root()
    out = scratch().file(mkdir("/app", parents=True).copy(built, "/src/app", "/app/"))
    data = merge([base, out]).marshal(image_config={...})

States are immutable (:mod:`.state`); sources in :mod:`.sources`; ``run`` and its mounts in
:mod:`.exec`; file actions in :mod:`.file`; the input-index bookkeeping and op metadata in
:mod:`.core`. Every op-making call takes ``name`` (the progress name, ``llb.customname``),
``description`` (more metadata descriptions), ``progress`` (a :func:`progress_group`) and
``loc`` (a source location; default the state's). Caps are not the builder's: they are
computed from the ops where Definitions are written. See ``docs/builder-api.md``.
"""

from __future__ import annotations

from mason.ir.builder.core import (
    CUSTOM_NAME,
    DEFAULT_PATH,
    default_platform,
    op_metadata,
    parse_platform,
    progress_group,
)
from mason.ir.builder.exec import MountSpec, bind, cache, device, secret, ssh, tmpfs
from mason.ir.builder.file import FileActions, chown, copy, mkdir, mkfile, rm, symlink
from mason.ir.builder.sources import GIT_AUTH_HEADER, GIT_AUTH_TOKEN, git, http, image, local, oci_layout
from mason.ir.builder.state import (
    ExecState,
    State,
    config_change,
    diff,
    merge,
    placeholder,
    scratch,
    substitute,
)

__all__ = [
    "DEFAULT_PATH", "CUSTOM_NAME", "GIT_AUTH_HEADER", "GIT_AUTH_TOKEN", "default_platform", "parse_platform",
    "op_metadata", "progress_group", "State", "ExecState", "FileActions", "MountSpec",
    "image", "scratch", "local", "git", "http", "oci_layout", "merge", "diff", "placeholder", "substitute",
    "config_change", "bind", "cache", "tmpfs", "secret", "ssh", "device",
    "mkdir", "mkfile", "rm", "symlink", "copy", "chown",
]
