"""Credentials in URLs: stripping and redaction (GHSA-gc89-7gcr-jxqc)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mason.ir.urls import has_userinfo, redact_text, redact_url, split_userinfo


@pytest.mark.parametrize("text, shown", [
    ("https://user:pass@host/r.git", "https://user:xxxxx@host/r.git"),
    ("ADD http://u:p%40ss@h:8080/r.git#main /out/", "ADD http://u:xxxxx@h:8080/r.git#main /out/"),
    ("https://ghp_token@github.com/o/r", "https://xxxxx@github.com/o/r"),  # a token as the user name
    ("ssh://git@host/r.git", "ssh://git@host/r.git"),  # ssh's user name is no secret
    ("ssh://git:pw@host/r.git", "ssh://git:xxxxx@host/r.git"),
    ("https://:tok@host/x", "https://xxxxx@host/x"),
    ("a https://a:b@h/x and http://c:d@k/y", "a https://a:xxxxx@h/x and http://c:xxxxx@k/y"),
    ("https://host/path@v1", "https://host/path@v1"),  # an @ in the path is no userinfo
    ("https://host/x user@example.com", "https://host/x user@example.com"),
    ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ("no url here", "no url here"),
])
def test_redact_text(text, shown):
    assert redact_text(text) == shown


def test_split_userinfo():
    assert split_userinfo("https://u:p@h/r.git") == ("https://h/r.git", "u:p")
    assert split_userinfo("https://h/r.git") == ("https://h/r.git", "")
    assert split_userinfo("git://tok@h:9418/r") == ("git://h:9418/r", "tok")
    assert has_userinfo("https://u@h/") and not has_userinfo("https://h/u@x")
    assert redact_url("http://a:b@h/") == "http://a:xxxxx@h/"


_part = st.text(st.sampled_from("abcXYZ019-._~!$&'()*+,;=%"), min_size=1, max_size=12)


@given(user=_part, password=_part, host=st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,4})?(:[0-9]{1,5})?", fullmatch=True),
       path=st.from_regex(r"(/[a-z0-9@._-]{0,8}){0,3}", fullmatch=True))
def test_password_never_survives_redaction(user, password, host, path):
    url = f"https://{user}:{password}@{host}{path}"
    shown = redact_text(f"ADD {url} /out/")
    assert f":{password}@" not in shown
    assert split_userinfo(url) == (f"https://{host}{path}", f"{user}:{password}")
