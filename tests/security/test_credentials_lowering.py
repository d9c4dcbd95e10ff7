"""GHSA-gc89-7gcr-jxqc (BuildKit 0.11.4): credentials in a git URL. The source identifier — what
the solver shows, keys and stores — names no userinfo; the credentials ride only in the
``git.fullurl`` attribute. Checked against BuildKit v0.32.2's own lowering (``df2llb`` from
``../shared/tools``) for every scheme, and for the builder API."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mason.driver import LowerRequest, lower_request
from mason.ir.builder import git
from mason.ir.codec import decode_definition
from mason.ir.ops import SourceOp

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT.parent / "shared" / "tools" / "buildkit"
CONFIG = ROOT.parent / "shared" / "corpus" / "buildkit-llb-v0.32" / "base-image-config.json"

URLS = [
    "http://user:pass@example.com/repo.git#main",
    "https://tok@example.com/r.git",
    "https://u:p@example.com:8443/k.git#v1:sub",
    "ssh://git:pw@example.com/repo.git#main",
    "git://u:p@example.com/r.git",
    "git@example.com:org/r.git",
]


def _sources(ops) -> list[tuple[str, list[tuple[str, str]]]]:
    return sorted((op.identifier, sorted(op.attrs)) for op in ops if isinstance(op, SourceOp))


def test_git_identifier_has_no_credentials_as_buildkit(tmp_path):
    df = "FROM scratch\n" + "".join(f"ADD {u} /d{i}/\n" for i, u in enumerate(URLS))
    (tmp_path / "Dockerfile").write_text(df)
    ref = tmp_path / "ref.llb"
    subprocess.run([str(TOOLS / "df2llb"), "-f", str(tmp_path / "Dockerfile"), "-image-config", str(CONFIG),
                    "-image-digest", "sha256:" + "0" * 64, "-o", str(ref)], check=True, capture_output=True)
    theirs = _sources(decode_definition(ref.read_bytes()).ops)
    res = lower_request(LowerRequest(context=str(tmp_path), level=0, resolve=False))
    ours = _sources(res.graph.unique_ops())
    assert ours == theirs
    for ident, _ in ours:
        assert "pass" not in ident and "tok" not in ident and ":p@" not in ident and "pw" not in ident


@pytest.mark.parametrize("url, ident", [
    ("https://user:secret@example.com/r.git", "git://example.com/r.git#main"),
    ("git://u:secret@example.com/r.git", "git://example.com/r.git#main"),
])
def test_builder_git_identifier_has_no_credentials(url, ident):
    op = git(url, "main").op
    assert op.identifier == ident
    assert dict(op.attrs)["git.fullurl"] == url  # the credentials travel here only


def test_a_build_arg_url_with_credentials_is_redacted_in_the_image_history(tmp_path):
    """An ARG shows the value a build arg gives it, in its own history entry and in RUN's, as
    BuildKit v0.32.2 writes them (``df2llb -image-out``: the password in clear); mason's image
    writer (normalize_history, what every export goes through) masks the URL's credentials in
    every entry (``user:xxxxx@``), so the password reaches no image config."""
    import json

    from mason.backends.exporters.image import normalize_history
    from mason.ir.resolver import FixedResolver

    url = "http://alice:s3cret-pw@127.0.0.1/x"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nARG U=http://bob:other-pw@h/y\nRUN echo\n")
    img = tmp_path / "img.json"
    digest = "sha256:" + "0" * 64
    subprocess.run([str(TOOLS / "df2llb"), "-f", str(tmp_path / "Dockerfile"), "-image-config", str(CONFIG),
                    "-image-digest", digest, "-build-arg", f"U={url}", "-o", str(tmp_path / "ref.llb"),
                    "-image-out", str(img)], check=True, capture_output=True)
    theirs = [h["created_by"] for h in json.loads(img.read_text())["history"][-2:]]
    res = lower_request(LowerRequest(context=str(tmp_path), build_args={"U": url}, platform="linux/amd64"),
                        resolver=FixedResolver(json.loads(CONFIG.read_text()), digest))
    assert res.image_config is not None
    hist = res.image_config["history"]
    assert [h["created_by"] for h in hist[-2:]] == theirs == [f"ARG U={url}", f"RUN |1 U={url} /bin/sh -c echo # buildkit"]
    shown = normalize_history(hist, len(res.image_config["rootfs"]["diff_ids"]) + 1, created="2030-01-01T00:00:00Z")
    text = json.dumps(shown)
    assert "s3cret-pw" not in text and "other-pw" not in text
    assert "ARG U=http://alice:xxxxx@127.0.0.1/x" in text and "RUN |1 U=http://alice:xxxxx@127.0.0.1/x" in text
