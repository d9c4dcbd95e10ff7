"""What a vertex's cache key hashes, besides the op's bytes: the part of a ``local://`` input an
op reads (its content selection), a local source's directory and attrs, a source's bytes without
URL credentials, the digest an image reference pins."""

from __future__ import annotations

from dataclasses import replace

from mason.backends.solver.context import SolveContext
from mason.ir.errors import MasonError
from mason.ir.ops import Copy, ExecOp, FileOp, Op, SourceOp
from mason.ir.urls import split_userinfo


def input_selection(op: Op, i: int, index):
    """What ``op`` reads from its ``local://`` input ``i`` (a Selection): the copy actions'
    sources, a mount's subdirectory; the whole selection when it reads it some other way."""
    from mason.backends.solver.contenthash import Selection, combine

    if isinstance(op, FileOp):
        parts = []
        for a in op.actions:
            owner = getattr(a.action, "owner", None)
            names = []
            if owner is not None:
                names = [u.name_input for u in (owner.user, owner.group) if u is not None and u.name is not None]
            if a.input == i or i in names:
                return index.select_all()
            if a.secondary_input == i:
                if not isinstance(a.action, Copy):
                    return index.select_all()
                parts.append(index.select_copy(a.action))
        if not parts:
            return index.select_all()
        if len(parts) == 1:
            return parts[0]
        files: dict[str, str] = {}
        for p in parts:
            files.update(p.files)
        return Selection(combine([p.checksum for p in parts]), files)
    if isinstance(op, ExecOp):
        sels = []
        for m in op.mounts:
            if m.input != i:
                continue
            sel = (m.selector or "").strip("/")
            if not sel:
                return index.select_all()
            sels.append(index.select_tree(sel))
        if not sels:
            return index.select_all()
        if len(sels) == 1:
            return sels[0]
        files = {}
        for p in sels:
            files.update(p.files)
        return Selection(combine([p.checksum for p in sels]), files)
    return index.select_all()


def local_spec(ctx: SolveContext, op: SourceOp) -> tuple[str, str, dict]:
    """(name, directory, attrs) of a ``local://NAME`` source, the driver's ``.dockerignore``
    patterns added when the op carries none."""
    import json

    name = op.identifier[len("local://"):]
    attrs = dict(op.attrs)
    local = ctx.opts.locals.get(name)
    if local is None:
        known = ", ".join(sorted(ctx.opts.locals)) or "none"
        raise MasonError(f"no directory for local://{name} (known: {known})", op.loc)
    if local.exclude and "local.excludepatterns" not in attrs:
        attrs["local.excludepatterns"] = json.dumps(list(local.exclude))
    path = local.sync(attrs) if local.sync is not None else local.path
    return name, path, attrs


def key_bytes(op: SourceOp) -> bytes:
    """The bytes a source's cache key hashes: the op's, with the credentials of a URL in its
    identifier or attrs (``git.fullurl``) removed — a key is no place for a password, not even
    hashed (it could be guessed against), and the same repository or file fetched with other
    credentials is the same content (its commit or digest is in the key too)."""
    ident = split_userinfo(op.identifier)[0]
    attrs = tuple((k, split_userinfo(v)[0] if "://" in v else v) for k, v in op.attrs)
    if ident == op.identifier and attrs == op.attrs:
        return op.bytes
    return replace(op, identifier=ident, attrs=attrs).bytes


def pinned_digest(identifier: str) -> str | None:
    """The digest a ``docker-image://…@sha256:…`` identifier pins (what loading it resolves
    to), else None."""
    if not identifier.startswith("docker-image://"):
        return None
    _, at, digest = identifier.rpartition("@")
    if at and digest.startswith("sha256:") and len(digest) == 71:
        return digest
    return None


__all__ = ["input_selection", "local_spec", "key_bytes", "pinned_digest"]
