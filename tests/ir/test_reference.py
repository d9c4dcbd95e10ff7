"""Image reference parsing and normalization (mason.ir.reference), like Docker's."""

import pytest

from mason.ir.errors import MasonError
from mason.ir.reference import Reference, familiar, normalize, parse_reference

D64 = "sha256:" + "a" * 64
D64B = "sha256:" + "0123456789abcdef" * 4

# input → (domain, path, tag, digest, str, familiar)
VALID = [
    ("busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None,
     "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app", "docker.io", "user/app", "latest", None, "docker.io/user/app:latest", "user/app:latest"),
    ("user/app/sub:v2", "docker.io", "user/app/sub", "v2", None,
     "docker.io/user/app/sub:v2", "user/app/sub:v2"),
    ("library/a/b", "docker.io", "library/a/b", "latest", None,
     "docker.io/library/a/b:latest", "library/a/b:latest"),
    ("127.0.0.1:5000/library/busybox", "127.0.0.1:5000", "library/busybox", "latest", None,
     "127.0.0.1:5000/library/busybox:latest", "127.0.0.1:5000/library/busybox:latest"),
    ("127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", None,
     "127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox:latest"),
    (f"host:5000/a/b:tag@{D64}", "host:5000", "a/b", "tag", D64,
     f"host:5000/a/b:tag@{D64}", f"host:5000/a/b:tag@{D64}"),
    (f"busybox@{D64}", "docker.io", "library/busybox", None, D64,
     f"docker.io/library/busybox@{D64}", f"busybox@{D64}"),
    ("localhost/x", "localhost", "x", "latest", None, "localhost/x:latest", "localhost/x:latest"),
    ("localhost:5000/x/y:1", "localhost:5000", "x/y", "1", None,
     "localhost:5000/x/y:1", "localhost:5000/x/y:1"),
    # no '/': 'localhost:5000' is the image 'localhost' with tag '5000' (as Docker says)
    ("localhost:5000", "docker.io", "library/localhost", "5000", None,
     "docker.io/library/localhost:5000", "localhost:5000"),
    ("quay.io/coreos/etcd:v3.5", "quay.io", "coreos/etcd", "v3.5", None,
     "quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
    ("gcr.io/distroless/static", "gcr.io", "distroless/static", "latest", None,
     "gcr.io/distroless/static:latest", "gcr.io/distroless/static:latest"),
    ("registry.example.com:443/team/app_x.y-z:Tag_1.0-rc", "registry.example.com:443", "team/app_x.y-z",
     "Tag_1.0-rc", None, "registry.example.com:443/team/app_x.y-z:Tag_1.0-rc",
     "registry.example.com:443/team/app_x.y-z:Tag_1.0-rc"),
    ("a__b/c--d", "docker.io", "a__b/c--d", "latest", None, "docker.io/a__b/c--d:latest", "a__b/c--d:latest"),
    # a first component with upper-case letters is a domain (repository names are lower-case)
    ("Registry/app", "Registry", "app", "latest", None, "Registry/app:latest", "Registry/app:latest"),
    ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", None, "[::1]:5000/app:v1", "[::1]:5000/app:v1"),
    ("my-host/app", "docker.io", "my-host/app", "latest", None,
     "docker.io/my-host/app:latest", "my-host/app:latest"),
    (f"127.0.0.1:5000/library/busybox@{D64B}", "127.0.0.1:5000", "library/busybox", None, D64B,
     f"127.0.0.1:5000/library/busybox@{D64B}", f"127.0.0.1:5000/library/busybox@{D64B}"),
    ("x:" + "t" * 128, "docker.io", "library/x", "t" * 128, None,
     "docker.io/library/x:" + "t" * 128, "x:" + "t" * 128),
]


@pytest.mark.parametrize("text,domain,path,tag,digest,full,short", VALID, ids=[v[0][:40] for v in VALID])
def test_valid(text, domain, path, tag, digest, full, short):
    r = parse_reference(text)
    assert (r.domain, r.path, r.tag, r.digest) == (domain, path, tag, digest)
    assert str(r) == full == normalize(text)
    assert r.familiar() == short == familiar(text)
    assert r.repository == f"{domain}/{path}"
    # normalizing is idempotent, from either form
    assert parse_reference(full) == r
    assert parse_reference(short) == r


# input → fragment of the error message
INVALID = [
    ("", "empty"),
    ("Busybox", "must be lowercase"),
    ("docker.io/Library/busybox", "must be lowercase"),
    ("busybox:", "empty tag"),
    ("busybox@", "empty digest"),
    ("busybox:bad!tag", "invalid tag 'bad!tag'"),
    ("busybox:" + "t" * 129, "invalid tag"),
    ("busybox:-dash", "invalid tag '-dash'"),
    ("busybox@sha256:abc", "invalid digest 'sha256:abc'"),
    ("busybox@sha256:" + "A" * 64, "sha256 needs 64 lower-case hex digits"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
    ("a" * 64, "64-byte hexadecimal"),
    ("a//b", "empty path component"),
    ("a/b/", "empty path component"),
    ("/busybox", "empty path component"),
    ("-foo/bar", "invalid repository path component '-foo'"),
    ("foo/-bar", "invalid repository path component '-bar'"),
    ("foo/bar_", "invalid repository path component 'bar_'"),
    ("foo/ba..r", "invalid repository path component 'ba..r'"),
    ("host:/x", "invalid registry domain 'host:'"),
    ("host:5000/", "missing repository path"),
    ("busy box", "white space"),
    (" busybox", "white space"),
    ("reg.io/" + "a" * 250, "not be more than 255 characters"),
    ("-host.io:5000/x", "invalid registry domain '-host.io:5000'"),
    (":tag", "missing repository name"),
]


@pytest.mark.parametrize("text,fragment", INVALID, ids=[v[0][:40] or "<empty>" for v in INVALID])
def test_invalid(text, fragment):
    with pytest.raises(MasonError) as e:
        parse_reference(text)
    assert fragment in e.value.message
    assert "\n" not in e.value.message
    if text:
        assert repr(text) in e.value.message  # the message names the reference


def test_default_tag_off():
    r = Reference.parse("busybox", default_tag=False)
    assert r.tag is None and str(r) == "docker.io/library/busybox"


def test_with_digest_keeps_the_tag_like_buildkit_pins():
    r = parse_reference("127.0.0.1:5000/library/busybox:latest")
    assert str(r.with_digest(D64)) == f"127.0.0.1:5000/library/busybox:latest@{D64}"
    assert str(parse_reference("busybox:1.36").with_digest(D64)) == f"docker.io/library/busybox:1.36@{D64}"
    assert str(parse_reference("busybox").with_digest(D64)) == f"docker.io/library/busybox:latest@{D64}"
    other = "sha256:" + "1" * 64
    assert str(parse_reference(f"busybox@{other}").with_digest(D64)) == f"docker.io/library/busybox@{D64}"
    assert str(parse_reference(f"busybox:1.36@{other}").with_digest(D64)) == f"docker.io/library/busybox:1.36@{D64}"
    with pytest.raises(MasonError, match="invalid digest"):
        r.with_digest("sha256:nothex")


def test_with_tag_trim_object():
    r = parse_reference(f"busybox:1@{D64}")
    assert r.object == D64
    assert str(r.with_tag("2")) == "docker.io/library/busybox:2"
    assert r.with_tag("2").object == "2"
    assert str(r.trim()) == "docker.io/library/busybox"
    assert r.trim().familiar() == "busybox"
    with pytest.raises(MasonError, match="invalid tag"):
        r.with_tag("no/slash")


def test_reference_is_frozen_and_hashable():
    a, b = parse_reference("busybox"), parse_reference("docker.io/library/busybox:latest")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.tag = "x"  # type: ignore[misc]


def test_non_string():
    with pytest.raises(MasonError, match="not a string"):
        parse_reference(None)  # type: ignore[arg-type]


def test_familiar_keeps_a_path_that_reads_as_a_domain():
    # docker.io/docker.io/busybox shown as docker.io/busybox would read back as library/busybox
    ref = parse_reference("docker.io/docker.io/busybox")
    assert ref.path == "docker.io/busybox"
    assert ref.familiar() == "docker.io/docker.io/busybox:latest"
    assert normalize(ref.familiar()) == str(ref)
    assert familiar("docker.io/library/busybox") == "busybox:latest"
    assert familiar("docker.io/user/app:1") == "user/app:1"
