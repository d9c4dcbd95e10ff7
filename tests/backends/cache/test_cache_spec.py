"""``--cache-to`` / ``--cache-from`` values in buildx's syntax: what each parses to, and one
clear MasonError line for every mistake (fuzzed: nothing else ever escapes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mason.backends.cache.spec import DEFAULT_MOUNTS_MAX, parse_cache_spec, parse_cache_specs, parse_size
from mason.ir.errors import MasonError


def test_registry_spec_defaults_to_an_image_manifest_in_min_mode():
    s = parse_cache_spec("type=registry,ref=127.0.0.1:5000/cache/app:main", "to")
    assert (s.type, s.ref, s.mode, s.image_manifest, s.oci_mediatypes, s.compression) == (
        "registry", "127.0.0.1:5000/cache/app:main", "min", True, True, "gzip")
    assert not s.ignore_error and not s.cache_mounts and s.cache_mounts_max == DEFAULT_MOUNTS_MAX
    assert s.describe() == "127.0.0.1:5000/cache/app:main"


def test_registry_spec_options():
    s = parse_cache_spec("type=registry,ref=localhost:5000/c,mode=max,image-manifest=false,"
                         "compression=zstd,ignore-error=true,cache-mounts=true,cache-mounts-max-size=64MiB", "to")
    assert (s.mode, s.image_manifest, s.compression, s.ignore_error, s.cache_mounts) == (
        "max", False, "zstd", True, True)
    assert s.cache_mounts_max == 64 << 20
    assert s.ref == "localhost:5000/c:latest"  # normalized


def test_a_bare_reference_is_the_registry_shorthand():
    assert parse_cache_spec("localhost:5000/app/cache:v1", "from") == parse_cache_spec(
        "type=registry,ref=localhost:5000/app/cache:v1", "from")
    assert parse_cache_spec("ref=localhost:5000/x", "from").type == "registry"


def test_docker_media_types_select_the_index_shape():
    s = parse_cache_spec("type=registry,ref=localhost:5000/c,oci-mediatypes=false", "to")
    assert (s.oci_mediatypes, s.image_manifest) == (False, False)
    with pytest.raises(MasonError, match="image-manifest=true needs oci-mediatypes=true"):
        parse_cache_spec("type=registry,ref=localhost:5000/c,oci-mediatypes=false,image-manifest=true", "to")


def test_local_specs():
    to = parse_cache_spec("type=local,dest=/tmp/c,mode=max", "to")
    assert (to.type, to.path, to.tag, to.mode) == ("local", "/tmp/c", "latest", "max")
    fr = parse_cache_spec("type=local,src=/tmp/c,tag=v2", "from")
    assert (fr.path, fr.tag, fr.describe()) == ("/tmp/c", "v2", "local:/tmp/c:v2")
    d = "sha256:" + "ab" * 32
    assert parse_cache_spec(f"type=local,src=/tmp/c,digest={d}", "from").digest == d


def test_inline():
    s = parse_cache_spec("type=inline", "to")
    assert s.type == "inline" and s.describe() == "inline"


@pytest.mark.parametrize("text, direction, message", [
    ("", "to", "expected type="),
    ("type=s3,bucket=x", "to", "unknown cache type 's3'"),
    ("type=registry", "to", "needs ref="),
    ("type=registry,ref=", "to", "needs ref="),
    ("type=registry,ref=UPPER/Case", "to", "type=registry"),
    ("type=local", "to", "needs dest=DIR"),
    ("type=local,src=/x", "to", "unknown option 'src'"),
    ("type=local,dest=/x", "from", "unknown option 'dest'"),
    ("type=local,src=/x,mode=max", "from", "unknown option 'mode'"),
    ("type=local,src=/x,tag=a/b", "from", "invalid tag"),
    ("type=local,src=/x,digest=sha256:zz", "from", "invalid digest"),
    ("type=inline", "from", "cannot be imported"),
    ("type=inline,mode=max", "to", "mode=min"),
    ("type=registry,ref=localhost:5000/c,mode=all", "to", "mode must be min or max"),
    ("type=registry,ref=localhost:5000/c,compression=lz4", "to", "compression must be one of"),
    ("type=registry,ref=localhost:5000/c,ignore-error=maybe", "to", "ignore-error must be true or false"),
    ("type=registry,ref=localhost:5000/c,ref=localhost:5000/d", "to", "ref given twice"),
    ("type=registry,ref=localhost:5000/c,cache-mounts-max-size=lots", "to", "invalid size"),
    ("type=registry,novalue", "to", "is not KEY=VALUE"),
    ("a,b", "from", "expected type=TYPE"),
    ("mode=max", "to", "type is missing"),
])
def test_mistakes_are_one_line_errors(text, direction, message):
    with pytest.raises(MasonError) as e:
        parse_cache_spec(text, direction)
    assert message in e.value.message
    assert "\n" not in e.value.message


def test_sizes():
    assert parse_size("100000") == 100000
    assert parse_size("1k") == 1024
    assert parse_size("2GB") == 2 << 30
    assert parse_size("512MiB") == 512 << 20
    with pytest.raises(MasonError):
        parse_size("1.5G")


def test_repeated_values_drop_exact_duplicates():
    specs = parse_cache_specs(["localhost:5000/a", "type=registry,ref=localhost:5000/a", "type=local,src=/x"], "from")
    assert [s.describe() for s in specs] == ["localhost:5000/a:latest", "local:/x"]
    assert len(parse_cache_specs(["type=inline", "type=inline,mode=min"], "to")) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["to", "from"]))
def test_fuzz_any_text_parses_or_is_a_mason_error(text, direction):
    try:
        s = parse_cache_spec(text, direction)
    except MasonError as e:
        assert e.message and "\n" not in e.message
    else:
        assert s.type in ("registry", "local", "inline")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["type=registry", "type=local", "type=inline", "ref=localhost:5000/c",
                                 "dest=/d", "src=/s", "mode=max", "mode=min", "image-manifest=false",
                                 "oci-mediatypes=false", "compression=zstd", "cache-mounts=true",
                                 "tag=t", "ignore-error=1", "x=y", "=", ","]), max_size=6),
       st.sampled_from(["to", "from"]))
def test_fuzz_field_combinations(fields, direction):
    try:
        parse_cache_spec(",".join(fields), direction)
    except MasonError as e:
        assert e.message and "\n" not in e.message
