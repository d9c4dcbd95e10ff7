"""``http://`` and ``https://`` sources: one downloaded file in a snapshot, like BuildKit's.

The body lands at ``/<filename>``: ``http.filename``, else the ``Content-Disposition``
filename, else the last element of the URL path, else ``index``. Mode ``http.perm`` (octal,
default 0600), owner ``http.uid``/``http.gid`` (default 0), mtime from ``Last-Modified`` when
the server sends one. ``http.checksum`` (``sha256:…``) is verified; a mismatch is an error.

The body is downloaded to a temporary file first, so the snapshot can be named by what it
holds (body digest, filename, mode, owner) and reused; with ``http.checksum`` and
``http.filename`` both given, an existing snapshot is reused without any request at all.

**Stalls and cancelling.** A connection must open within the connect timeout and the server must
send something at least every read timeout (both :data:`DEFAULT_TIMEOUT`, 60 s; the environment
variable ``MASON_HTTP_TIMEOUT`` sets them, in seconds); past that the download fails with one
line naming the timeout. The download runs on a thread of its own while the caller watches the
build's cancel token: a cancelled build (Ctrl-C, SIGTERM, a failure elsewhere, a ``mason serve``
client gone) shuts the download's sockets down at once, waits for the thread at most
:data:`~mason.backends.sources.cancel.CANCEL_GRACE` (a connect still in ``connect(2)`` has no
socket to shut down: that thread is left to its connect timeout) and removes the partial body.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from mason.backends.containerd.client import Client
from mason.backends.sources.cancel import Streams, run_cancellable
from mason.backends.sources.result import SourceResult
from mason.backends.sources.unpack import reuse, write_snapshot
from mason.ir.errors import MasonError
from mason.ir.reference import validate_digest
from mason.ir.urls import redact_text, redact_url

ATTR_CHECKSUM = "http.checksum"
ATTR_FILENAME = "http.filename"
ATTR_PERM = "http.perm"
ATTR_UID = "http.uid"
ATTR_GID = "http.gid"
DEFAULT_PERM = 0o600
USER_AGENT = "mason"
_CHUNK = 1 << 20
DEFAULT_TIMEOUT = 60.0
TIMEOUT_ENV = "MASON_HTTP_TIMEOUT"

__all__ = ["HttpOptions", "http_timeout", "load_http", "parse_http_attrs"]


@dataclass(frozen=True, slots=True)
class HttpOptions:
    checksum: str | None
    filename: str | None
    perm: int
    uid: int
    gid: int


def _int(attrs: Mapping[str, str], key: str, base: int, default: int, limit: int) -> int:
    raw = attrs.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, base)
    except ValueError:
        raise MasonError(f"invalid {key} attr {raw!r}: expected a{'n octal' if base == 8 else ''} number") from None
    if not 0 <= value <= limit:
        raise MasonError(f"invalid {key} attr {raw!r}: out of range")
    return value


def _safe_filename(name: str, what: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise MasonError(f"invalid {what} {name!r}: it must be a plain file name")
    return name


def parse_http_attrs(attrs: Mapping[str, str]) -> HttpOptions:
    checksum = attrs.get(ATTR_CHECKSUM) or None
    if checksum is not None:
        validate_digest(checksum, f"{ATTR_CHECKSUM} {checksum}")
    filename = attrs.get(ATTR_FILENAME) or None
    if filename is not None:
        _safe_filename(filename, ATTR_FILENAME)
    return HttpOptions(checksum, filename, _int(attrs, ATTR_PERM, 8, DEFAULT_PERM, 0o7777),
                       _int(attrs, ATTR_UID, 10, 0, 2**32 - 2), _int(attrs, ATTR_GID, 10, 0, 2**32 - 2))


def http_timeout(env: Mapping[str, str] | None = None) -> float:
    """The connect and read timeout: ``MASON_HTTP_TIMEOUT`` (seconds, > 0), else 60 s."""
    raw = (os.environ if env is None else env).get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise MasonError(f"invalid {TIMEOUT_ENV}={raw!r}: expected a number of seconds (0 < N <= 86400)")
    return value


def _disposition_filename(header: str | None) -> str | None:
    if not header:
        return None
    msg = Message()
    msg["content-disposition"] = header
    name = msg.get_filename()
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") and "\0" not in name else None


def _url_filename(url: httpx.URL | str) -> str:
    path = urlsplit(str(url)).path
    name = unquote(path.rsplit("/", 1)[-1]) if path else ""
    return name if name not in ("", ".", "..") and "/" not in name and "\0" not in name else "index"


def _snapshot_name(digest: str, filename: str, opts: HttpOptions) -> str:
    # The mtime is not part of it: like a local file's, it is not content (a reused snapshot
    # keeps the mtime of the download that made it).
    key = f"{digest}\0{filename}\0{opts.perm:o}\0{opts.uid}\0{opts.gid}"
    return "mason-http-" + hashlib.sha256(key.encode()).hexdigest()


def load_http(client: Client, url: str, attrs: Mapping[str, str] | None = None, *,
              http_client: httpx.Client | None = None, timeout: float | None = None,
              tmp_dir: str | os.PathLike[str] | None = None,
              cancel: Callable[[], bool] | None = None) -> SourceResult:
    """Download ``url`` into a snapshot (see the module docstring). ``cancel`` is polled while
    the body downloads; once it returns true the download stops and :class:`Cancelled` is raised."""
    opts = parse_http_attrs(attrs or {})
    shown = redact_url(url)  # for messages and labels: user:xxxxx@ (GHSA-gc89-7gcr-jxqc)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise MasonError(f"http source {shown!r}: only http:// and https:// URLs can be downloaded")
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as e:  # a port that is no number, a bad host…
        raise MasonError(f"http source {shown!r}: invalid URL: {e}") from None
    if opts.checksum and opts.filename:
        name = _snapshot_name(opts.checksum, opts.filename, opts)
        if reuse(client, name):
            return SourceResult(snapshot=name, digest=opts.checksum, cache_key_extra=opts.checksum)
    secs = http_timeout() if timeout is None else timeout
    own = http_client is None
    hc = http_client or httpx.Client(timeout=secs, follow_redirects=True, headers={"User-Agent": USER_AGENT})
    tmp = tempfile.mkdtemp(prefix="mason-http-", dir=tmp_dir)
    try:
        body = Path(tmp) / "body"
        digest, filename, mtime = _download_cancellable(hc, url, body, opts, secs, cancel)
        name = _snapshot_name(digest, filename, opts)

        def fill(root: Path) -> None:
            dst = root / filename
            shutil.copyfile(body, dst)
            os.chown(dst, opts.uid, opts.gid)
            os.chmod(dst, opts.perm)  # after chown, which clears setuid bits
            if mtime is not None:
                os.utime(dst, (mtime, mtime))

        snap = write_snapshot(client, fill, name=name, labels={"mason.source": shown[:200]})
        return SourceResult(snapshot=snap, digest=digest, cache_key_extra=digest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if own:
            hc.close()


def _download_cancellable(hc: httpx.Client, url: str, dest: Path, opts: HttpOptions, secs: float,
                          cancel: Callable[[], bool] | None) -> tuple[str, str, int | None]:
    """:func:`_download` on a thread of its own, stopped when ``cancel()`` turns true (or the
    caller is interrupted: a KeyboardInterrupt in the main thread)."""
    streams = Streams()
    return run_cancellable(lambda: _download(hc, url, dest, opts, secs, streams), cancel, streams,
                           f"download of {redact_url(url)}", "mason-http")


def _download(hc: httpx.Client, url: str, dest: Path, opts: HttpOptions, secs: float,
              streams: Streams | None = None) -> tuple[str, str, int | None]:
    """Stream ``url`` into ``dest``; the body's digest, the file name and the mtime."""
    alg = (opts.checksum or "sha256:").split(":", 1)[0]
    h = hashlib.new(alg)
    shown = redact_url(url)
    try:
        ext = {"trace": streams.trace} if streams is not None else None
        with hc.stream("GET", url, extensions=ext) as resp:
            if resp.status_code != 200:
                raise MasonError(f"http source {shown}: the server answered {resp.status_code} {resp.reason_phrase}")
            filename = opts.filename or _disposition_filename(resp.headers.get("content-disposition")) \
                or _url_filename(resp.url)
            mtime = None
            if lm := resp.headers.get("last-modified"):
                try:
                    mtime = int(email.utils.parsedate_to_datetime(lm).timestamp())
                except (TypeError, ValueError, IndexError):
                    mtime = None
            with open(dest, "wb") as f:
                for chunk in resp.iter_bytes(_CHUNK):
                    h.update(chunk)
                    f.write(chunk)
    except httpx.ConnectTimeout:
        raise MasonError(f"http source {shown}: download failed: no connection within {secs:g} s "
                         f"(connect timeout; {TIMEOUT_ENV} sets it)") from None
    except httpx.TimeoutException:
        raise MasonError(f"http source {shown}: download stalled: the server sent nothing for {secs:g} s "
                         f"(read timeout; {TIMEOUT_ENV} sets it)") from None
    except httpx.HTTPError as e:
        why = redact_text(str(e).splitlines()[0]) if str(e) else type(e).__name__
        raise MasonError(f"http source {shown}: download failed: {why}") from None
    digest = f"{alg}:{h.hexdigest()}"
    if opts.checksum and digest != opts.checksum:
        raise MasonError(f"http source {shown}: checksum mismatch: expected {opts.checksum}, got {digest}")
    if not re.fullmatch(r"[^/\0]+", filename):  # pragma: no cover - guarded above
        raise MasonError(f"http source {shown}: bad file name {filename!r}")
    return digest, filename, mtime
