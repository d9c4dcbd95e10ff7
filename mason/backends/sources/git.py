"""``git://`` sources: a commit's tree (or a subdirectory of it) in a snapshot, via ``git``.

Identifier ``git://<host>/<path>[#<ref>[:<subdir>]]`` (LLB's form); the remote is
``https://<host>/<path>`` unless ``git.fullurl`` names it (any of https, http, git, ssh, file,
or scp-like ``user@host:path``). ``ref`` defaults to ``HEAD``; it may be a branch, a tag or a
full commit sha. ``git.keepgitdir`` keeps ``.git`` (only without a subdir).

Credentials in the URL (``https://user:token@host/repo.git``) never reach git's command line,
its error messages, the kept ``.git/config``, a snapshot label or a name mason shows: the remote
is used without them and they travel as an ``Authorization`` header in git's environment
(``GIT_CONFIG_COUNT``/``http.extraHeader``), as do the ``git.authtokensecret`` /
``git.authheadersecret`` build secrets (BuildKit's ``GIT_AUTH_TOKEN``, ``GIT_AUTH_HEADER``,
also per host: ``GIT_AUTH_TOKEN.<host>``). A remote on this machine (``file://``, a plain
path) needs the ``git.local`` entitlement: without it a hand-made Definition could read the
host's repositories.

The remote is untrusted input, so: a ref or URL starting with ``-`` is refused and ``--`` ends
the options anyway; the transport is checked and only the URL's own protocol is allowed
(``protocol.allow=never`` + one exception: no ``ext::``, no ``file`` smuggled in through
submodules); no system or global config (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL``,
``HOME`` in a temporary directory), no prompts (``GIT_TERMINAL_PROMPT=0``, an askpass that
answers nothing), no hooks (``core.hooksPath=/dev/null``); the subdir may not lead outside the
checkout, through ``..`` or a symlink.

The work is ``git init`` + ``git fetch --depth=1 -- <url> <ref>`` + ``checkout`` in a temporary
directory; the tree is copied in with the local source's copier (symlinks as links, modes kept).
The snapshot is named by commit, subdir and keepgitdir — and, with the ``.git`` directory kept,
the credential-free remote, whose ``origin`` it records — so a pinned sha already loaded is not
fetched again, and a build from another repository with the same commit never gets this one's
``.git/config``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mason.backends.containerd.client import Client
from mason.backends.fstree import remove_tree
from mason.backends.solver.scheduler import Cancelled
from mason.backends.sources.local import copy_selection, scan_local
from mason.backends.sources.result import SourceResult
from mason.backends.sources.unpack import reuse, write_snapshot
from mason.ir.errors import MasonError
from mason.ir.patterns import clean_path
from mason.ir.urls import redact_text, split_userinfo

PREFIX = "git://"
ATTR_FULLURL = "git.fullurl"
ATTR_KEEPGITDIR = "git.keepgitdir"
ATTR_AUTH_TOKEN_SECRET = "git.authtokensecret"
ATTR_AUTH_HEADER_SECRET = "git.authheadersecret"
SCHEMES = ("https", "http", "git", "ssh", "file")
_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SCP_RE = re.compile(r"^[A-Za-z0-9._~][A-Za-z0-9._~-]*@[A-Za-z0-9.][A-Za-z0-9.-]*:(?!//)")
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")

__all__ = ["GitSource", "load_git", "parse_git_identifier", "is_local", "auth_header"]


@dataclass(frozen=True, slots=True)
class GitSource:
    remote: str  # what git fetches from, without credentials (shown, stored, kept in .git/config)
    scheme: str  # the protocol git may use for it
    ref: str
    subdir: str  # "" = the whole tree
    keep_git_dir: bool
    userinfo: str = field(default="", repr=False)  # the URL's credentials (an http(s) header)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def _check_url(url: str, allow_local: bool = False) -> str:
    """The protocol of ``url``, or an error if git must not be pointed at it."""
    shown = redact_text(url)
    if not url or url.startswith("-"):
        raise MasonError(f"git source: invalid URL {shown!r}: it may not start with '-'")
    if any(c in url for c in "\0\n\r") or "::" in url.split("/", 1)[0]:
        raise MasonError(f"git source: invalid URL {shown!r}")
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if m:
        scheme = m.group(1).lower()
        if scheme not in SCHEMES:
            raise MasonError(f"git source: unsupported protocol {scheme!r} in {shown!r} "
                             f"(allowed: {', '.join(SCHEMES)})")
        host = url[m.end():].split("/", 1)[0].rsplit("@", 1)[-1]
        if host.startswith("-"):  # ssh would read it as an option
            raise MasonError(f"git source: invalid URL {shown!r}: the host may not start with '-'")
        if scheme == "file":
            _check_local(shown, allow_local)
        return scheme
    if _SCP_RE.match(url):
        return "ssh"
    if url.startswith("/"):  # a path: git reads it from this machine
        _check_local(shown, allow_local)
        return "file"
    raise MasonError(f"git source: invalid URL {shown!r}: expected scheme://… or user@host:path")


def _check_local(shown: str, allow_local: bool) -> None:
    if not allow_local:
        raise MasonError(f"git source {shown!r} is on this machine: reading it needs the git.local "
                         "entitlement (--allow git.local)")


def _without_credentials(url: str, scheme: str) -> tuple[str, str]:
    """(the URL git fetches, the credentials to send as a header). http(s) credentials go to
    the header; ssh keeps its user name (no secret; ssh needs it) and drops any password;
    other protocols carry none."""
    bare, userinfo = split_userinfo(url)
    if not userinfo:
        return url, ""
    if scheme in ("http", "https"):
        return bare, userinfo
    user = userinfo.split(":", 1)[0]
    if scheme == "ssh" and user:
        return bare.replace("://", f"://{user}@", 1), ""
    return bare, ""


def _check_ref(ref: str) -> str:
    if ref.startswith("-"):
        raise MasonError(f"git source: invalid ref {ref!r}: it may not start with '-'")
    if _BAD_CHARS.search(ref) or ".." in ref or ref.endswith((".", "/", ".lock")) or "//" in ref or "@{" in ref:
        raise MasonError(f"git source: invalid ref {ref!r}")
    return ref


def _check_subdir(subdir: str) -> str:
    if "\0" in subdir:
        raise MasonError(f"git source: invalid subdir {subdir!r}")
    cleaned = clean_path(subdir).strip("/")
    if cleaned == ".":
        return ""
    if cleaned == ".." or cleaned.startswith("../"):
        raise MasonError(f"git source: subdir {subdir!r} leads outside the repository")
    return cleaned


def parse_git_identifier(identifier: str, attrs: Mapping[str, str] | None = None, *,
                         allow_local: bool = False) -> GitSource:
    """The source an identifier and its attrs name (the remote without credentials).
    ``allow_local``: the build has the ``git.local`` entitlement (a ``file://`` URL or a path
    may be read)."""
    attrs = attrs or {}
    text = identifier[len(PREFIX):] if identifier.startswith(PREFIX) else identifier
    remote, _, fragment = text.partition("#")
    ref, _, subdir = fragment.partition(":")
    url = attrs.get(ATTR_FULLURL) or ""
    if not url:
        if not remote or remote.startswith("-"):
            raise MasonError(f"git source: invalid identifier {redact_text(identifier)!r}")
        url = remote if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", remote) or _SCP_RE.match(remote) \
            else "https://" + remote
    scheme = _check_url(url, allow_local)
    fetch_url, userinfo = _without_credentials(url, scheme)
    return GitSource(fetch_url, scheme, _check_ref(ref or "HEAD"), _check_subdir(subdir),
                     _truthy(attrs.get(ATTR_KEEPGITDIR)), userinfo)


def is_local(identifier: str, attrs: Mapping[str, str] | None = None) -> bool:
    """Whether git would read this source from this machine (``file://``, a path): what
    needs ``git.local``. An identifier that does not parse is not (loading it fails)."""
    try:
        return parse_git_identifier(identifier, attrs, allow_local=True).scheme == "file"
    except MasonError:
        return False


def auth_header(src: GitSource, attrs: Mapping[str, str],
                secret: Callable[[str], bytes | None] | None = None) -> str | None:
    """The ``Authorization`` header for an http(s) remote: the URL's own credentials, else the
    build secret named by ``git.authheadersecret`` (the header's value) or
    ``git.authtokensecret`` (a token, sent as BuildKit does: basic ``x-access-token:TOKEN``),
    each first with the remote's host appended (``GIT_AUTH_TOKEN.github.com``)."""
    if src.scheme not in ("http", "https"):
        return None
    if src.userinfo:
        user, _, password = src.userinfo.partition(":")
        from urllib.parse import unquote

        raw = f"{unquote(user)}:{unquote(password)}".encode()
        return "Basic " + base64.b64encode(raw).decode()
    if secret is None:
        return None
    host = src.remote.split("://", 1)[1].split("/", 1)[0]
    for attr, make in ((ATTR_AUTH_HEADER_SECRET, lambda v: v),
                       (ATTR_AUTH_TOKEN_SECRET,
                        lambda v: "basic " + base64.b64encode(b"x-access-token:" + v.encode()).decode())):
        name = attrs.get(attr)
        if not name:
            continue
        for sid in (f"{name}.{host}", name):
            value = secret(sid)
            if value is not None:
                return make(value.decode("utf-8", "replace").strip())
    return None


_POLL = 0.05  # seconds between looks at the cancel token while git runs

class _Git:
    """Runs git with a clean, locked-down environment in one work directory."""

    def __init__(self, workdir: Path, scheme: str, git: str, timeout: float, what: str,
                 auth: tuple[str, str] | None = None, cancel: Callable[[], bool] | None = None):
        self.workdir, self.git, self.timeout, self.what = workdir, git, timeout, what
        self.cancel = cancel
        home = workdir / "home"
        home.mkdir()
        askpass = home / "askpass"
        askpass.write_text("#!/bin/sh\nexit 1\n")
        askpass.chmod(0o700)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": str(askpass), "SSH_ASKPASS": str(askpass),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_PROTOCOL_FROM_USER": "0",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        }
        if "SSH_AUTH_SOCK" in os.environ:
            self.env["SSH_AUTH_SOCK"] = os.environ["SSH_AUTH_SOCK"]
        if auth:  # in the environment, never on the command line (ps shows that to everyone); sent
            # only to the remote itself (git's http.<url>.* matching), as BuildKit scopes it
            url, header = auth
            self.env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{url}.extraHeader",
                             "GIT_CONFIG_VALUE_0": f"Authorization: {header}"})
        self.config = ["-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always",
                       "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
                       "-c", "init.defaultBranch=main", "-c", "advice.detachedHead=false",
                       "-c", "submodule.recurse=false", "-c", "core.symlinks=true"]

    def __call__(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [self.git, *self.config, *args]
        try:
            # a session of its own: a cancel, the timeout or an interrupt kills git with its
            # helpers (git-remote-http, ssh), never leaving them behind
            proc = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
        except FileNotFoundError:
            raise MasonError(f"git not found ({self.git}): install the Debian package git") from None
        deadline = time.monotonic() + self.timeout
        done = False
        try:
            while True:
                try:
                    out, err = proc.communicate(timeout=_POLL)
                    done = True
                    break
                except subprocess.TimeoutExpired:
                    if self.cancel is not None and self.cancel():
                        raise Cancelled(f"{self.what}: cancelled") from None
                    if time.monotonic() > deadline:
                        raise MasonError(f"{self.what}: git {args[0]} timed out after {self.timeout:.0f}s") from None
        finally:
            if not done:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                for f in (proc.stdout, proc.stderr):
                    if f is not None:
                        f.close()
        p = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        if check and p.returncode != 0:
            raise MasonError(f"{self.what}: git {args[0]} failed: {_last_lines(p.stderr)}")
        return p


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("hint:")]
    return redact_text(" / ".join(lines[-n:])) or "(no output)"


def _snapshot_name(commit: str, src: GitSource) -> str:
    # a kept .git names its origin: the same commit from another remote is another snapshot
    key = json.dumps([commit, src.subdir, src.keep_git_dir] + ([src.remote] if src.keep_git_dir else []))
    return "mason-git-" + hashlib.sha256(key.encode()).hexdigest()


def load_git(client: Client, url_identifier: str, attrs: Mapping[str, str] | None = None, *,
             git: str = "git", timeout: float = 600.0, tmp_dir: str | os.PathLike[str] | None = None,
             allow_local: bool = False, secret: Callable[[str], bytes | None] | None = None,
             cancel: Callable[[], bool] | None = None) -> SourceResult:
    """Fetch ``git://…`` (see the module docstring) into a snapshot. ``cache_key_extra`` and
    ``digest`` are the commit sha. ``allow_local``: the ``git.local`` entitlement; ``secret``
    looks up build secrets by id (for the auth secrets). ``cancel`` is polled while git runs:
    once true, git (and its helpers) are killed and :class:`Cancelled` is raised."""
    src = parse_git_identifier(url_identifier, attrs, allow_local=allow_local)
    what = f"git source {src.remote}#{src.ref}"
    if _SHA_RE.fullmatch(src.ref):
        name = _snapshot_name(src.ref, src)
        if reuse(client, name):
            return SourceResult(snapshot=name, digest=src.ref, cache_key_extra=src.ref)
    work = Path(tempfile.mkdtemp(prefix="mason-git-", dir=tmp_dir))
    try:
        header = auth_header(src, attrs or {}, secret)
        run = _Git(work, src.scheme, git, timeout, what, (src.remote, header) if header else None, cancel)
        repo = work / "repo"
        run("init", "-q", "--", str(repo))
        commit = _fetch(run, repo, src)
        run("checkout", "-q", "--detach", commit, cwd=repo)  # a verified sha: no option
        if (repo / ".gitmodules").is_file():
            run("-c", "protocol.file.allow=" + ("always" if src.scheme == "file" else "never"),
                "submodule", "update", "--init", "--recursive", "--depth=1", cwd=repo)
        if src.keep_git_dir and not src.subdir:
            run("remote", "add", "origin", src.remote, cwd=repo)  # without credentials
        top = _subdir(repo, src.subdir, what)
        excludes = [] if src.keep_git_dir and not src.subdir else [".git"]
        scan = scan_local(top, {"local.excludepatterns": json.dumps(excludes)})
        snap = write_snapshot(client, lambda root: copy_selection(scan, root), name=_snapshot_name(commit, src),
                              labels={"mason.source": f"git:{src.remote[:160]}#{src.ref[:40]}"})
        return SourceResult(snapshot=snap, digest=commit, cache_key_extra=commit)
    finally:
        remove_tree(work, ignore_errors=True)


def _fetch(run: _Git, repo: Path, src: GitSource) -> str:
    """Fetch ``src.ref`` shallowly (a sha the server will not hand out alone: everything) and
    return the commit it names."""
    p = run("fetch", "-q", "--depth=1", "--no-tags", "--", src.remote, src.ref, cwd=repo, check=False)
    if p.returncode != 0:
        if not _SHA_RE.fullmatch(src.ref):
            raise MasonError(f"git source {src.remote}: cannot fetch {src.ref!r}: {_last_lines(p.stderr)}")
        run("fetch", "-q", "--no-tags", "--", src.remote, "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*", cwd=repo)
        target = src.ref
    else:
        target = "FETCH_HEAD"
    p = run("rev-parse", "--verify", "-q", "--end-of-options", f"{target}^{{commit}}", cwd=repo, check=False)
    commit = p.stdout.strip()
    if p.returncode != 0 or not _SHA_RE.fullmatch(commit):
        raise MasonError(f"git source {src.remote}: {src.ref!r} does not name a commit")
    return commit


def _subdir(repo: Path, subdir: str, what: str) -> Path:
    if not subdir:
        return repo
    real_repo = repo.resolve()
    top = (repo / subdir).resolve()
    if top != real_repo and real_repo not in top.parents:
        raise MasonError(f"{what}: subdir {subdir!r} leads outside the repository")
    if not top.is_dir():
        raise MasonError(f"{what}: subdir {subdir!r} is not a directory in the repository")
    return top
