"""Credentials in URLs (``https://user:token@host/repo.git``): the one place that strips and
redacts them, for every layer that shows or stores a URL (step names, errors, history records,
the cache database, image history, snapshot labels) — as BuildKit's ``urlutil.RedactCredentials``
does since GHSA-gc89-7gcr-jxqc.

* :func:`redact_url` / :func:`redact_text` — ``user:xxxxx@`` for a password; a lone user name
  of anything but ``ssh://`` is ``xxxxx@`` (a token passed as the user name, as GitHub's are);
  ``ssh://git@host`` keeps its user, which is no secret.
* :func:`split_userinfo` — the URL without userinfo, and the userinfo (for the auth mechanism).
"""

from __future__ import annotations

import re

MASK = "xxxxx"

# scheme://userinfo@ — userinfo runs to the last '@' before the path (a raw '@' in a password
# is taken as part of it, as URL parsers do)
_AUTHORITY = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s#?\"<>]*)@")

__all__ = ["MASK", "redact_url", "redact_text", "split_userinfo", "has_userinfo"]


def _mask(scheme: str, userinfo: str) -> str:
    user, sep, _ = userinfo.partition(":")
    if sep:
        return f"{user}:{MASK}" if user else MASK
    if scheme.lower().startswith("ssh"):
        return userinfo
    return MASK


def redact_text(text: str) -> str:
    """``text`` with the credentials of every URL in it masked."""
    if "@" not in text or "://" not in text:
        return text
    return _AUTHORITY.sub(lambda m: m.group("scheme") + _mask(m.group("scheme"), m.group("userinfo")) + "@", text)


def redact_url(url: str) -> str:
    """One URL with its credentials masked (``user:xxxxx@``)."""
    return redact_text(url)


def has_userinfo(url: str) -> bool:
    m = _AUTHORITY.match(url)
    return m is not None and bool(m.group("userinfo"))


def split_userinfo(url: str) -> tuple[str, str]:
    """``(url without userinfo, userinfo)``; userinfo is "" when there is none."""
    m = _AUTHORITY.match(url)
    if m is None:
        return url, ""
    return m.group("scheme") + url[m.end():], m.group("userinfo")
