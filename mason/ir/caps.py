"""The LLB capabilities BuildKit v0.32.2 records in an op's metadata (``OpMetadata.caps``).

A BuildKit client marks each op with the capability ids a daemon must support to run it
(``source.image``, ``exec.mount.cache``, ``file.base`` …), and the terminal op with the ones the
Definition as a whole needs (``constraints``, ``platform``, ``meta.description`` …); a daemon
refuses a Definition naming a capability it lacks instead of silently ignoring a field it does
not know. Caps never enter a digest.

:func:`op_caps` derives them from the op alone, as BuildKit's ``client/llb`` marshalers do
(they add a cap for a field as they write it), so an op mason builds and the same op decoded
from BuildKit carry the same set. What the op's bytes cannot tell is decided as the Dockerfile
frontend would: ``exec.meta.setsdefaultpath`` is always claimed (BuildKit claims it whenever the
caller gives caps, and the frontend always does), a git source's ``httpauth`` only when a secret
name differs from the default one ``llb.Git`` writes anyway, and ``source.local.differ`` never
(BuildKit claims it only for a *required* differ, which the op does not record). FileOps carry
only ``file.base``: v0.32.2's FileOp marshaler collects its per-action caps before it has
visited any action, so the action caps (``file.copy.modestring`` …) are never written.
"""

from __future__ import annotations

from typing import Iterable

from mason.ir.ops import (
    DiffOp,
    ExecOp,
    FileOp,
    MergeOp,
    MountContentCache,
    MountType,
    NetMode,
    Op,
    OpMetadata,
    SecurityMode,
    SourceOp,
)

__all__ = ["op_caps", "terminal_caps", "with_op_caps"]

# attr -> cap for each source scheme: the cap is needed when the attr is present
_IMAGE_ATTRS = {
    "image.layerlimit": "source.image.layerlimit",
    "image.checksum": "source.image.checksum",
}
_LOCAL_ATTRS = {
    "local.session": "source.local.sessionid",
    "local.includepattern": "source.local.includepatterns",
    "local.followpaths": "source.local.followpaths",
    "local.excludepatterns": "source.local.excludepatterns",
    "local.sharedkeyhint": "source.local.sharedkeyhint",
    "local.unique": "source.local.unique",
    "local.metadatatransfer": "source.local.metadatatransfer",
}
_GIT_ATTRS = {
    "git.keepgitdir": "source.git.keepgitdir",
    "git.fullurl": "source.git.fullurl",
    "git.checksum": "source.git.checksum",
    "git.skipsubmodules": "source.git.skipsubmodules",
    "git.mtime": "source.git.mtime",
    "git.fetchbycommit": "source.git.fetchbycommit",
    "git.bundle": "source.git.bundle",
    "git.checkoutbundle": "source.git.checkoutbundle",
}
_GIT_DEFAULT_SECRETS = {"git.authtokensecret": "GIT_AUTH_TOKEN", "git.authheadersecret": "GIT_AUTH_HEADER"}
_HTTP_ATTRS = {
    "http.checksum": "source.http.checksum",
    "http.perm": "source.http.perm",
    "http.uid": "soruce.http.uidgid",  # sic: BuildKit's id has the typo
    "http.gid": "soruce.http.uidgid",
    "http.authheadersecret": "source.http.auth",
    "http.sig.pubkey": "source.http.signatureverify",
    "http.sig.signature": "source.http.signatureverify",
}


def _source_caps(op: SourceOp) -> set[str]:
    ident = op.identifier
    keys = {k for k, _ in op.attrs}
    caps: set[str] = set()

    def from_attrs(table: dict[str, str]) -> None:
        caps.update(cap for attr, cap in table.items() if attr in keys)

    if ident.startswith("docker-image://"):
        caps.add("source.image")
        if op.attr("image.resolvemode") == "pull":  # only the enforced mode needs the cap
            caps.add("source.image.resolvemode")
        from_attrs(_IMAGE_ATTRS)
    elif ident.startswith(("docker-image+blob://", "oci-layout+blob://")):
        caps.add("source.imageblob")
    elif ident.startswith("oci-layout://"):
        caps.add("source.ocilayout")
    elif ident.startswith("local://"):
        caps.add("source.local")
        from_attrs(_LOCAL_ATTRS)
    elif ident.startswith("git://"):
        caps.add("source.git")
        from_attrs(_GIT_ATTRS)
        for attr, default in _GIT_DEFAULT_SECRETS.items():
            v = op.attr(attr)
            if v is not None and v != default:
                caps.add("source.git.httpauth")
        if "git.mountsshsock" in keys:  # written for ssh remotes only, with the known hosts
            caps.update(("source.git.knownsshhosts", "source.git.mountsshsock"))
    elif ident.startswith(("http://", "https://")):
        caps.add("source.http")
        from_attrs(_HTTP_ATTRS)
        if any(k.startswith("http.header.") for k in keys):
            caps.add("source.http.header")
    return caps


def _exec_caps(op: ExecOp) -> set[str]:
    caps = {"exec.meta.base", "exec.meta.setsdefaultpath"}
    meta = op.meta
    if meta.valid_exit_codes:
        caps.add("exec.validexitcode")
    if meta.ulimits:
        caps.add("exec.meta.ulimit")
    if meta.proxy_env is not None:
        caps.add("exec.meta.proxyenv")
    if op.network != NetMode.UNSET:
        caps.add("exec.meta.network")
    if op.security != SecurityMode.SANDBOX:
        caps.add("exec.meta.security")
    if op.cdi_devices:
        caps.add("exec.meta.cdi")
    secrets = bool(op.secret_env)
    for m in op.mounts:
        if m.mount_type == MountType.SECRET:
            secrets = True
            continue
        if m.mount_type == MountType.SSH:
            caps.add("exec.mount.ssh")
            continue
        if m.selector:
            caps.add("exec.mount.selector")
        if m.mount_type == MountType.CACHE:
            caps.update(("exec.mount.cache", "exec.mount.cache.sharing"))
        elif m.mount_type == MountType.TMPFS:
            caps.add("exec.mount.tmpfs")
            if m.tmpfs is not None and m.tmpfs.size > 0:
                caps.add("exec.mount.tmpfs.size")
        elif m.input >= 0:
            caps.add("exec.mount.bind")
        if m.content_cache != MountContentCache.DEFAULT:
            caps.add("exec.mount.cache.content")
    if secrets:
        caps.add("exec.mount.secret")
    if op.secret_env:
        caps.add("exec.secretenv")
    return caps


def op_caps(op: Op) -> frozenset[str]:
    """The capability ids BuildKit v0.32.2 writes in ``op``'s metadata (empty for ops it has no
    marshaler for, such as mason's ConfigOp)."""
    if isinstance(op, SourceOp):
        return frozenset(_source_caps(op))
    if isinstance(op, ExecOp):
        return frozenset(_exec_caps(op))
    if isinstance(op, FileOp):
        return frozenset(("file.base",))
    if isinstance(op, MergeOp):
        return frozenset(("mergeop",))
    if isinstance(op, DiffOp):
        return frozenset(("diffop",))
    return frozenset()


def with_op_caps(op: Op) -> OpMetadata:
    """``op``'s metadata with :func:`op_caps` added (caps already there are kept)."""
    caps = op_caps(op)
    md = op.metadata
    if not caps or all(dict(md.caps).get(c) for c in caps):
        return md
    return md.with_caps(tuple(sorted(caps)))


def terminal_caps(metadata: Iterable[OpMetadata]) -> frozenset[str]:
    """The caps of a Definition's terminal op, given the metadata written for its other ops:
    ``constraints`` and ``platform`` always, ``meta.ignorecache`` / ``meta.description`` /
    ``meta.exportcache`` when some op's metadata uses that field."""
    caps = {"constraints", "platform"}
    for md in metadata:
        if md.ignore_cache:
            caps.add("meta.ignorecache")
        if md.description:
            caps.add("meta.description")
        if md.export_cache is not None:
            caps.add("meta.exportcache")
    return frozenset(caps)
