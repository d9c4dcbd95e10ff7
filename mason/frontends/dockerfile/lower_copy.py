"""Lowering of ``COPY`` and ``ADD``: one FileOp whose copy actions are chained (one per
source), from the build context, a stage, an image, a URL (``https://`` source), a git
repository (``git://`` source) or a heredoc (a file made on scratch). ``--link`` copies onto
scratch and merges the result onto the stage (a MergeOp). Flags as BuildKit writes them:
``followSymlink``, ``dirCopyContents``, ``createDestPath``, ``allowWildcard``,
``allowEmptyWildcard`` for path sources, ``attemptUnpackDockerCompatibility`` for ADD,
``mode``/``modeStr`` for ``--chmod``, owners for ``--chown`` (names resolved in the
destination's ``/etc/passwd``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mason.frontends.dockerfile.instructions import Add, Copy, check_chmod
from mason.frontends.dockerfile.lower_run import chomp
from mason.frontends.dockerfile.lower_state import StageState, chown_opt
from mason.frontends.dockerfile.lower_util import clean, join_abs, normalize_path
from mason.frontends.dockerfile.shell import ShellLex
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.ops import Copy as CopyAction
from mason.ir.ops import FileAction, FileOp, MergeOp, MkFile, Ref, SourceOp
from mason.ir.urls import split_userinfo

if TYPE_CHECKING:  # pragma: no cover
    from mason.frontends.dockerfile.lower import Lowerer

__all__ = ["lower_copy", "lower_add", "is_git_url", "is_http_url", "git_source"]

_SSH_GIT = re.compile(r"^[A-Za-z0-9-_]+@[A-Za-z0-9-.]+:")
_RAW_LEX = ShellLex("\\", skip_process_quotes=True)  # heredoc bodies (BuildKit's ExpandRaw)


def is_http_url(src: str) -> bool:
    return src.startswith("http://") or src.startswith("https://")


def is_git_url(src: str) -> bool:
    """Whether BuildKit's ``ParseGitRef`` takes ``src`` for a git repository (as opposed to a
    path or a plain URL)."""
    if src.startswith("git://") or src.startswith("ssh://") or _SSH_GIT.match(src):
        return True
    if is_http_url(src):
        try:
            return urlsplit(src.split("#", 1)[0]).path.endswith(".git")
        except ValueError:  # not a URL (``http://[::1``): ParseGitRef fails, so not git
            return False
    return False


def _go_base(p: str) -> str:
    """Go's ``path.Base``."""
    if not p:
        return "."
    p = p.rstrip("/")
    return p.rsplit("/", 1)[-1] if p else "/"


def git_source(lw: "Lowerer", st: StageState, src: str, keep_git_dir: bool,
               checksum: str | None) -> SourceOp:
    """``llb.Git``: ``git://host/path#ref[:subdir]`` with the full URL and auth secret names."""
    url, _, fragment = src.partition("#")
    remote = url
    protocol = ""
    for prefix in ("http://", "https://", "git://", "ssh://"):
        if remote.startswith(prefix):
            remote, protocol = remote[len(prefix):], prefix
    ssh = protocol == "ssh://" or (not protocol and _SSH_GIT.match(remote) is not None)
    if protocol:  # as BuildKit's: the identifier names no credentials (GHSA-gc89-7gcr-jxqc)
        remote = split_userinfo(protocol + remote)[0][len(protocol):]
    if ssh:
        remote = remote.split("@", 1)[-1]
        host, sep, path = remote.partition(":")
        if sep and not protocol:
            remote = host + "/" + path
    full = url if protocol or ssh else "https://" + url
    ident = "git://" + remote + ("#" + fragment if fragment else "")
    attrs = {"git.fullurl": full, "git.authheadersecret": "GIT_AUTH_HEADER",
             "git.authtokensecret": "GIT_AUTH_TOKEN"}
    if keep_git_dir:
        attrs["git.keepgitdir"] = "true"
    if ssh:
        attrs["git.mountsshsock"] = "default"
    if checksum:
        attrs["git.checksum"] = checksum
    return SourceOp(ident, tuple(sorted(attrs.items())), platform=st.platform, constraints=())


def _dest(st: StageState, raw: str) -> str:
    """The destination as BuildKit computes it: relative to the working directory, with a
    trailing ``/`` kept (or added for ``.``)."""
    if raw.startswith("/"):
        d = raw
    else:
        d = clean(st.cwd + "/" + raw) if st.cwd else clean(raw)
    if raw in ("", ".") or raw.endswith("/"):
        d += "/"
    return normalize_path(st.cwd, d, True)


def _mode(chmod: str, loc: SourceLoc | None) -> tuple[int, str]:
    if not chmod:
        return -1, ""
    bad = check_chmod(chmod)
    if bad:
        raise MasonError(bad, loc)
    if chmod.isascii() and chmod.isdigit():
        return int(chmod, 8), ""
    return -1, chmod


def _lower(lw: "Lowerer", st: StageState, inst: Copy | Add, is_add: bool) -> None:
    loc = inst.loc
    instr = "ADD" if is_add else "COPY"
    sources = [st.expand(s, loc) for s in inst.sources]
    dest_raw = st.expand(inst.dest, loc)
    chown = st.expand(inst.chown, loc) if inst.chown else ""
    mode, mode_str = _mode(st.expand(inst.chmod, loc) if inst.chmod else "", loc)
    excludes = tuple(st.expand(e, loc) for e in inst.excludes)
    checksum = st.expand(inst.checksum, loc) if is_add and inst.checksum else None
    keep_git = is_add and inst.keep_git_dir
    unpack = inst.unpack if is_add else False
    if inst.from_:
        source: Ref | None = lw.resolve_from(lw.expand_meta(inst.from_, loc), st, loc)
        from_context = False
    else:
        source = None
        from_context = True
    dest = _dest(st, dest_raw)
    link = inst.link
    if link and chown and st.ref is not None and _chown_names(chown):
        # the copy runs on scratch, where no /etc/passwd or /etc/group can name them
        raise MasonError(f"--chown={chown} cannot be used with --link: --link does not read "
                         f"the previous filesystem, so the names {', '.join(_chown_names(chown))} "
                         "cannot be looked up in its /etc/passwd and /etc/group; use numeric "
                         "ids (--chown=UID:GID)", loc)
    base = None if link else st.ref
    steps: list[tuple[Ref | None, CopyAction]] = []
    for src in sources:
        if is_git_url(src):
            if not is_add:
                raise MasonError("source can't be a git ref for COPY", loc)
            op = git_source(lw, st, src, keep_git, checksum)
            steps.append((Ref(op, 0), CopyAction(
                src="/", dest=dest, mode=mode, mode_str=mode_str, create_dest_path=True)))
        elif is_http_url(src):
            if not is_add:
                raise MasonError("source can't be a URL for COPY", loc)
            try:
                name = _go_base(urlsplit(src).path)
            except ValueError:  # BuildKit names an unparseable URL's file __unnamed__ too
                name = "."
            if name in (".", "/"):
                name = "__unnamed__"
            attrs = {"http.filename": name}
            if checksum:
                attrs["http.checksum"] = checksum
            op = SourceOp(src, tuple(sorted(attrs.items())), platform=st.platform,
                          constraints=())
            steps.append((Ref(op, 0), CopyAction(
                src=join_abs(name), dest=dest, mode=mode, mode_str=mode_str,
                create_dest_path=True, attempt_unpack=unpack is True)))
        else:
            if checksum:
                raise MasonError("checksum can't be specified for non-HTTP(S) sources", loc)
            includes: tuple[str, ...] = ()
            path = src
            if inst.parents:
                parent, sep, pattern = src.partition("/./")
                if not sep:
                    parent, pattern = "/", src
                path = parent
                includes = (join_abs(pattern).lstrip("/"),)
            if from_context:
                ref = lw.context_ref(st, join_abs(src))
            else:
                ref = source
            steps.append((ref, CopyAction(
                src=join_abs(path), dest=dest, mode=mode, mode_str=mode_str,
                follow_symlink=True, dir_copy_contents=True,
                attempt_unpack=is_add and unpack is not False, create_dest_path=True,
                allow_wildcard=True, allow_empty_wildcard=True, include_patterns=includes,
                exclude_patterns=excludes)))
    for h in inst.heredocs:
        data = chomp(h.content) if h.chomp else h.content
        if h.expand:
            data = st.expand(data, loc, _RAW_LEX)
        md = st.metadata("", name="[internal] preparing inline document", step=False)
        md = md.with_descriptions({"llb.customname": "[internal] preparing inline document"})
        doc = FileOp(actions=(FileAction(-1, -1, 0, MkFile(
            join_abs(h.name), 0o644, data.encode("utf-8", "surrogateescape"), None, -1)),),
            platform=st.platform, constraints=(), metadata=md, loc=loc)
        steps.append((Ref(doc, 0), CopyAction(
            src=join_abs(h.name), dest=dest, mode=mode, mode_str=mode_str,
            create_dest_path=True)))
    if not steps:
        raise MasonError(f"{instr} needs at least one source", loc)

    # inputs: the destination first, then each action's source (deduplicated), as llb does
    inputs: list[Ref] = []
    index: dict[tuple[int, int], int] = {}

    def input_of(r: Ref | None) -> int:
        if r is None:
            return -1
        key = (id(r.op), r.index)
        i = index.get(key)
        if i is None:
            i = index[key] = len(inputs)
            inputs.append(r)
        return i

    first = input_of(base)
    secondaries = [input_of(r) for r, _ in steps]
    n = len(inputs)
    actions = []
    last = len(steps) - 1
    for k, ((_, act), sec) in enumerate(zip(steps, secondaries, strict=False)):
        inp = first if k == 0 else n + k - 1
        if chown:
            act = _with_owner(act, chown_opt(chown, inp))
        actions.append(FileAction(inp, sec, 0 if k == last else -1, act))
    shown = " ".join([*sources, *("<<" + h.name for h in inst.heredocs), dest_raw])
    history = f"{instr} {shown} # buildkit"
    if not link or st.ref is None:  # llb.Merge of scratch and one state is that state
        md = st.metadata(inst.original, history=history)
        st.push(FileOp(inputs=tuple(inputs), actions=tuple(actions), platform=st.platform,
                       constraints=(), metadata=md, loc=loc))
        return
    layer = FileOp(inputs=tuple(inputs), actions=tuple(actions), platform=st.platform,
                   constraints=(), metadata=st.metadata(inst.original), loc=loc)
    merge_md = st.metadata("LINK " + inst.original, history=history, step=False)
    st.push(MergeOp(inputs=(st.ref, Ref(layer, 0)), merge_inputs=(0, 1), platform=st.platform,
                    constraints=(), metadata=merge_md, loc=loc))


def _chown_names(spec: str) -> list[str]:
    """The parts of ``--chown`` that are names to look up (not ids, not ``root``)."""
    return [p for p in spec.split(":", 1)
            if p and p != "root" and not (p.isascii() and p.isdigit())]


def _with_owner(act: CopyAction, owner) -> CopyAction:
    return replace(act, owner=owner)


def lower_copy(lw: "Lowerer", st: StageState, inst: Copy) -> None:
    _lower(lw, st, inst, False)


def lower_add(lw: "Lowerer", st: StageState, inst: Add) -> None:
    _lower(lw, st, inst, True)
