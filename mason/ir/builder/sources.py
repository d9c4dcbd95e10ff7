"""Source states: ``docker-image://``, ``local://``, ``git://``, ``http(s)://``, ``oci-layout://``,
with the identifiers and attributes BuildKit's llb writes. Every source op gets empty worker
constraints; only ``docker-image://`` and ``oci-layout://`` sources carry the platform (the
given one, else the host's), as BuildKit writes them — a ``local``, ``git`` or ``http(s)``
source is the same on every platform (the state still remembers the platform for later ops).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from mason.ir.builder.core import default_platform, op_metadata, parse_platform
from mason.ir.builder.state import State
from mason.ir.errors import SourceLoc
from mason.ir.golang import go_json
from mason.ir.ops import Platform, ProgressGroup, Ref, SourceOp
from mason.ir.urls import split_userinfo

__all__ = ["image", "local", "git", "http", "oci_layout", "GIT_AUTH_HEADER", "GIT_AUTH_TOKEN"]

GIT_AUTH_HEADER = "GIT_AUTH_HEADER"
GIT_AUTH_TOKEN = "GIT_AUTH_TOKEN"
_SCP_GIT = re.compile(r"^[A-Za-z0-9-_]+@[A-Za-z0-9-.]+:")

Description = Mapping[str, str] | None


def _source(identifier: str, attrs: Mapping[str, str], platform: Platform | None, *, name: str | None,
            description: Description, progress: ProgressGroup | None, loc: SourceLoc | None,
            config: dict | None = None, with_platform: bool = True) -> State:
    with_platform = with_platform and identifier.startswith(("docker-image://", "oci-layout://"))
    op = SourceOp(identifier, tuple(sorted(attrs.items())),
                  platform=(platform or default_platform()) if with_platform else None, constraints=(),
                  metadata=op_metadata(name, description, progress), loc=loc)
    return State(Ref(op, 0), platform=platform, image_config=config)


def _normalize_image(name: str) -> str:
    from mason.ir.reference import normalize

    return normalize(name)


def image(ref: str, *, platform: Platform | str | None = None, resolve_mode: str | None = None,
          config: dict | None = None, name: str | None = None, description: Description = None,
          progress: ProgressGroup | None = None, loc: SourceLoc | None = None) -> State:
    """``docker-image://`` source; the name is normalized like Docker's (a pinned reference stays
    as it is). ``config`` is the image's config (it travels with the state); resolving it is
    the frontend's (see :class:`mason.ir.resolver.ImageMetaResolver`)."""
    p = parse_platform(platform)
    attrs = {}
    if resolve_mode and resolve_mode != "default":
        attrs["image.resolvemode"] = resolve_mode
    return _source("docker-image://" + _normalize_image(ref), attrs, p, name=name, description=description,
                   progress=progress, loc=loc, config=config)


def local(name: str, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
          follow_paths: Sequence[str] = (), shared_key_hint: str | None = None,
          unique: str | None = None, platform: Platform | str | None = None, custom_name: str | None = None,
          description: Description = None, progress: ProgressGroup | None = None,
          loc: SourceLoc | None = None, session_id: str | None = None) -> State:
    """``local://NAME`` (a client directory, e.g. the build context); patterns and paths as
    Go's JSON, in the order given; ``session_id`` the client session that has it (BuildKit's
    ``llb.SessionID``). The op has no platform, as BuildKit writes it."""
    attrs = {}
    if include:
        attrs["local.includepattern"] = go_json(list(include))
    if exclude:
        attrs["local.excludepatterns"] = go_json(list(exclude))
    if follow_paths:
        attrs["local.followpaths"] = go_json(list(follow_paths))
    if shared_key_hint:
        attrs["local.sharedkeyhint"] = shared_key_hint
    if unique:
        attrs["local.unique"] = unique
    if session_id:
        attrs["local.session"] = session_id
    st = _source("local://" + name, attrs, None, name=custom_name, description=description, progress=progress,
                 loc=loc, with_platform=False)
    return st.with_platform(platform) if platform is not None else st


def _git_remote(url: str) -> tuple[str, str, bool]:
    """``(remote, full URL, ssh)`` as BuildKit's ``gitutil.ParseURL``: the remote names no
    credentials (GHSA-gc89-7gcr-jxqc); a URL with no known scheme is https."""
    remote, protocol = url, ""
    for prefix in ("http://", "https://", "git://", "ssh://"):
        if remote.startswith(prefix):
            remote, protocol = remote[len(prefix):], prefix
    ssh = protocol == "ssh://" or (not protocol and _SCP_GIT.match(remote) is not None)
    if protocol:
        remote = split_userinfo(protocol + remote)[0][len(protocol):]
    if ssh:
        remote = remote.split("@", 1)[-1]
        host, sep, path = remote.partition(":")
        if sep and not protocol:
            remote = host + "/" + path
    return remote, (url if protocol or ssh else "https://" + url), ssh


def git(url: str, ref: str = "", *, subdir: str = "", keep_git_dir: bool = False, checksum: str | None = None,
        auth_header_secret: str | None = GIT_AUTH_HEADER, auth_token_secret: str | None = GIT_AUTH_TOKEN,
        mount_ssh_sock: str | None = None, platform: Platform | str | None = None, name: str | None = None,
        description: Description = None, progress: ProgressGroup | None = None,
        loc: SourceLoc | None = None) -> State:
    """``git://HOST/PATH[#REF[:SUBDIR]]`` as ``llb.Git``: the full URL rides in ``git.fullurl``
    (the only place credentials go), the auth secrets' names in ``git.authheadersecret`` /
    ``git.authtokensecret``, an ssh remote mounts the ``default`` agent socket.

    A repository on this machine (``file://`` or a path) is ``git://`` + the URL as written,
    with the URL in ``git.fullurl`` and no auth secrets."""
    attrs: dict[str, str] = {}
    if url.startswith("file://") or url.startswith("/") or url.startswith("."):
        ident, attrs["git.fullurl"] = "git://" + url, url
    else:
        remote, full, is_ssh = _git_remote(url)
        ident = "git://" + remote
        attrs["git.fullurl"] = full
        if auth_header_secret:
            attrs["git.authheadersecret"] = auth_header_secret
        if auth_token_secret:
            attrs["git.authtokensecret"] = auth_token_secret
        if is_ssh:
            attrs["git.mountsshsock"] = mount_ssh_sock or "default"
    if ref or subdir:
        ident += "#" + ref + (":" + subdir if subdir else "")
    if keep_git_dir:
        attrs["git.keepgitdir"] = "true"
    if checksum:
        attrs["git.checksum"] = checksum
    return _source(ident, attrs, parse_platform(platform), name=name, description=description, progress=progress,
                   loc=loc)


def http(url: str, *, checksum: str | None = None, filename: str | None = None, perm: int | None = None,
         uid: int | None = None, gid: int | None = None, platform: Platform | str | None = None,
         name: str | None = None, description: Description = None, progress: ProgressGroup | None = None,
         loc: SourceLoc | None = None) -> State:
    """An ``http(s)://`` download: one file (``filename``, default the URL's base name) in an
    otherwise empty filesystem."""
    attrs = {}
    if checksum:
        attrs["http.checksum"] = checksum
    if filename:
        attrs["http.filename"] = filename
    if perm is not None:
        attrs["http.perm"] = "0" + format(perm, "o")
    if uid is not None:
        attrs["http.uid"] = str(uid)
    if gid is not None:
        attrs["http.gid"] = str(gid)
    return _source(url, attrs, parse_platform(platform), name=name, description=description, progress=progress,
                   loc=loc)


def oci_layout(ref: str, *, store: str | None = None, session: str | None = None, layer_limit: int | None = None,
               platform: Platform | str | None = None, config: dict | None = None, name: str | None = None,
               description: Description = None, progress: ProgressGroup | None = None,
               loc: SourceLoc | None = None) -> State:
    """``oci-layout://REF`` (``STORE/NAME[:TAG][@DIGEST]``, or BuildKit's form: the store in
    ``oci.store``) — an image from an OCI layout on the client."""
    attrs = {}
    if store:
        attrs["oci.store"] = store
    if session:
        attrs["oci.session"] = session
    if layer_limit is not None:
        attrs["oci.layerlimit"] = str(layer_limit)
    return _source("oci-layout://" + ref, attrs, parse_platform(platform), name=name, description=description,
                   progress=progress, loc=loc, config=config)
