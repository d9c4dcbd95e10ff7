"""Lowering of ``COPY`` and ``ADD``: one FileOp whose copy actions are chained (one per
source), from the build context, a stage, an image, a URL (``https://`` source), a git
repository (``git://`` source) or a heredoc (a file made on scratch). ``--link`` (without
``--chmod``) copies onto scratch and merges the result onto the stage (a MergeOp). Flags as BuildKit writes them:
``followSymlink``, ``dirCopyContents``, ``createDestPath``, ``allowWildcard``,
``allowEmptyWildcard`` for path sources, ``attemptUnpackDockerCompatibility`` for ADD,
``mode``/``modeStr`` for ``--chmod``, owners for ``--chown`` (names resolved in the
destination's ``/etc/passwd``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes, urlsplit

from mason.frontends.dockerfile.instructions import Add, Copy, check_chmod
from mason.frontends.dockerfile.lower_run import chomp
from mason.frontends.dockerfile.lower_state import StageState
from mason.frontends.dockerfile.lower_util import clean, join_abs, normalize_path
from mason.frontends.dockerfile.shell import ShellLex
from mason.ir.builder import FileActions, State, git, http, merge, mkfile, scratch
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.golang import has_wildcard

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


_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


def _go_url_path(url: str) -> str:
    """The decoded path of ``url`` as Go's ``url.Parse`` gives it; ValueError where Go's parse
    fails (a control character, a ``%`` not followed by two hex digits, a port that is not
    digits)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("control character in URL")
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if ":" in host and not host.endswith("]"):
        port = host.rpartition(":")[2]
        if port and not (port.isascii() and port.isdigit()):
            raise ValueError(f"invalid port {port!r}")
    path = parts.path
    if path.count("%") != len(_PCT.findall(path)):
        raise ValueError("invalid URL escape")
    return unquote_to_bytes(path).decode("utf-8", "surrogateescape")


def git_source(lw: "Lowerer", st: StageState, src: str, keep_git_dir: bool,
               checksum: str | None) -> State:
    """``llb.Git``: ``git://host/path#ref[:subdir]`` with the full URL and auth secret names."""
    url, _, fragment = src.partition("#")
    return git(url, fragment, keep_git_dir=keep_git_dir, checksum=checksum, platform=st.platform)


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
    return 0, chmod  # BuildKit v0.32.2 leaves mode unset (0) beside modeStr


def _lower(lw: "Lowerer", st: StageState, inst: Copy | Add, is_add: bool) -> None:
    loc = inst.loc
    instr = "ADD" if is_add else "COPY"
    sources = [st.expand(s, loc) for s in inst.sources]
    dest_raw = st.expand(inst.dest, loc)
    chown = st.expand(inst.chown, loc) if inst.chown else ""
    chmod = st.expand(inst.chmod, loc) if inst.chmod else ""
    mode, mode_str = _mode(chmod, loc)
    excludes = tuple(inst.excludes)  # BuildKit v0.32.2 does not expand --exclude patterns
    checksum = st.expand(inst.checksum, loc) if is_add and inst.checksum else None
    keep_git = is_add and inst.keep_git_dir
    unpack = inst.unpack if is_add else False
    if inst.from_:
        source: State | None = lw.resolve_from(lw.expand_meta(inst.from_, loc), st, loc,
                                               tuple(join_abs(s) for s in sources))
        from_context = False
    else:
        source = None
        from_context = True
    dest = _dest(st, dest_raw)
    link = inst.link and not chmod  # BuildKit merges a --link copy only without --chmod
    if link and chown and st.ref is not None and _chown_names(chown):
        # the copy runs on scratch, where no /etc/passwd or /etc/group can name them
        raise MasonError(f"--chown={chown} cannot be used with --link: --link does not read "
                         f"the previous filesystem, so the names {', '.join(_chown_names(chown))} "
                         "cannot be looked up in its /etc/passwd and /etc/group; use numeric "
                         "ids (--chown=UID:GID)", loc)
    owner = chown or None
    acts = FileActions()
    for src in sources:
        if is_git_url(src):
            if not is_add:
                raise MasonError("source can't be a git ref for COPY", loc)
            if from_context and not is_http_url(src):  # BuildKit v0.32.2 follows every source
                lw.context_path(st, join_abs(src))     # that is no http(s) URL, git@ ones too
            acts = acts.copy(git_source(lw, st, src, keep_git, checksum), "/", dest, owner=owner, mode=mode,
                             mode_str=mode_str, create_dest_path=True)
        elif is_http_url(src):
            if not is_add:
                raise MasonError("source can't be a URL for COPY", loc)
            try:
                name = _go_base(_go_url_path(src))
            except ValueError:  # BuildKit names an unparseable URL's file __unnamed__ too
                name = "."
            if name in (".", "/"):
                name = "__unnamed__"
            acts = acts.copy(http(src, checksum=checksum, filename=name, platform=st.platform), join_abs(name),
                             dest, owner=owner, mode=mode, mode_str=mode_str, create_dest_path=True,
                             attempt_unpack=unpack is True)
        else:
            if checksum:
                raise MasonError("checksum can't be specified for non-HTTP(S) sources", loc)
            includes: tuple[str, ...] = ()
            required: tuple[str, ...] = ()
            path = src
            if inst.parents:
                parent, sep, pattern = src.partition("/./")
                if not sep:
                    parent, pattern = "/", src
                path = parent
                includes = (join_abs(pattern).lstrip("/"),)
                # a path without wildcards must exist (BuildKit names it from the source's root)
                required = () if has_wildcard(src) else (join_abs(src),)
            if from_context:
                from_state = lw.context_state(st, join_abs(src))
            else:
                from_state = source if source is not None else scratch()
            acts = acts.copy(from_state, join_abs(path), dest, owner=owner, mode=mode, mode_str=mode_str,
                             follow_symlink=True, dir_copy_contents=True,
                             attempt_unpack=is_add and unpack is not False, create_dest_path=True,
                             allow_wildcard=True, allow_empty_wildcard=True, include=includes,
                             exclude=excludes, required_paths=required)
    for h in inst.heredocs:
        data = chomp(h.content) if h.chomp else h.content
        if h.expand:
            data = st.expand(data, loc, _RAW_LEX)
        md = st.metadata("", name="[internal] preparing inline document", step=False)
        doc = scratch(platform=st.platform).file(mkfile(join_abs(h.name), data, 0o644), description=md,
                                                 name="[internal] preparing inline document", loc=loc)
        acts = acts.copy(doc, join_abs(h.name), dest, owner=owner, mode=mode, mode_str=mode_str,
                         create_dest_path=True)
    if not acts.steps:
        raise MasonError(f"{instr} needs at least one source", loc)
    # v0.32.2's history text names --parents, --chown and --chmod (expanded), in that order
    flags = ["--parents"] if inst.parents else []
    flags += [f"--chown={chown}"] if chown else []
    flags += [f"--chmod={chmod}"] if chmod else []
    shown = " ".join([*flags, *sources, *("<<" + h.name for h in inst.heredocs), dest_raw])
    history = f"{instr} {shown} # buildkit"
    if not link or st.ref is None:  # llb.Merge of scratch and one state is that state
        md = st.metadata(inst.original, history=history)
        on = st.fs if not link else scratch(platform=st.platform)
        st.fs = on.file(acts, description=md, loc=loc)
        return
    layer = scratch(platform=st.platform).file(acts, description=st.metadata(inst.original), loc=loc)
    merge_md = st.metadata("LINK " + inst.original, history=history, step=False)
    st.fs = merge([st.fs, layer], description=merge_md, loc=loc)


def _chown_names(spec: str) -> list[str]:
    """The parts of ``--chown`` that are names to look up (not ids, not ``root``)."""
    return [p for p in spec.split(":", 1)
            if p and p != "root" and not (p.isascii() and p.isdigit())]


def lower_copy(lw: "Lowerer", st: StageState, inst: Copy) -> None:
    _lower(lw, st, inst, False)


def lower_add(lw: "Lowerer", st: StageState, inst: Add) -> None:
    _lower(lw, st, inst, True)
