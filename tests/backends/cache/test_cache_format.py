"""The cache config (BuildKit's cacheconfig.v0 shape plus mason's section) and its carriers:
round trips, BuildKit-written configs, the inline form, and a fuzzed decoder that only ever
raises CacheFormatError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mason.backends import oci
from mason.backends.cache.format import (
    CACHE_CONFIG,
    BlobInfo,
    CacheConfig,
    CacheFormatError,
    CacheLayer,
    CacheMountEntry,
    CacheRecord,
    build_carrier,
    decode_inline,
    encode_inline,
    parse_carrier,
    parse_config,
    record_digest,
)
from mason.ir.errors import MasonError


def d(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def sample() -> CacheConfig:
    return CacheConfig(
        layers=[CacheLayer(d(1)), CacheLayer(d(2), 0), CacheLayer(d(3))],
        records=[CacheRecord(record_digest("k0/0"), (1,)), CacheRecord(record_digest("k1/0"), (1,), ((0,),)),
                 CacheRecord(record_digest("k2/0"))],
        mounts=[CacheMountEntry("apt", 2)])


def test_config_round_trip_and_chains():
    cfg = sample()
    back = parse_config(cfg.to_bytes())
    assert back.layers == cfg.layers and back.records == cfg.records and back.mounts == cfg.mounts
    assert back.mason
    assert back.chain(1) == [d(1), d(2)]
    assert back.chain(2) == [d(3)]
    assert cfg.to_bytes() == back.to_bytes()  # canonical


def test_record_digests_depend_on_the_output_key_only():
    assert record_digest("a/0") == record_digest("a/0")
    assert record_digest("a/0") != record_digest("a/1")
    assert record_digest("a/0").startswith("sha256:") and len(record_digest("a/0")) == 71


def test_a_buildkit_config_is_read_and_known_as_not_masons():
    # the shape buildkitd v0.32 writes: layers by parent, records with results and input links,
    # selectors, createdAt fields mason ignores
    bk = {"layers": [{"blob": d(7), "parent": -1}, {"blob": d(8), "parent": 0}],
          "records": [{"digest": d(20), "layers": [{"layer": 0, "createdAt": "2026-01-01T00:00:00Z"}]},
                      {"digest": d(21), "layers": [{"layer": 1}],
                       "inputs": [[{"selector": "sha256:" + "0" * 64, "link": 0}]]},
                      {"digest": d(22), "inputs": [[{"link": 1}], [{"link": 0}]]}]}
    cfg = parse_config(json.dumps(bk).encode())
    assert not cfg.mason
    assert cfg.records[1].inputs == ((0,),) and cfg.records[2].inputs == ((1,), (0,))
    assert cfg.chain(cfg.records[1].results[0]) == [d(7), d(8)]


@pytest.mark.parametrize("obj, message", [
    ([], "the config is not an object"),
    ({"layers": {}}, "layers is not a list"),
    ({"layers": [{"blob": "nope"}]}, "is not a sha256 digest"),
    ({"layers": [{"blob": d(1), "parent": 5}]}, "out of range"),
    ({"layers": [{"blob": d(1), "parent": 0}]}, "out of range"),
    ({"layers": [{"blob": d(1), "parent": 1}, {"blob": d(2), "parent": 0}]}, "cycle"),
    ({"layers": [{"blob": d(1), "parent": True}]}, "is not an integer"),
    ({"records": [{"digest": d(1), "layers": [{"layer": 0}]}]}, "names layer 0, out of range"),
    ({"records": [{"digest": d(1), "inputs": [[{"link": 3}]]}]}, "links record 3"),
    ({"records": [{"digest": 5}]}, "record 0 digest"),
    ({"mason": {"version": 99}}, "format version 99"),
    ({"mason": {"version": 1, "mounts": [{"id": "", "layer": 0}]}}, "no valid id"),
    ({"layers": [{"blob": d(1)}, {"blob": d(2), "parent": 0}],
      "mason": {"version": 1, "mounts": [{"id": "x", "layer": 1}]}}, "not a single layer"),
])
def test_bad_configs_are_format_errors(obj, message):
    with pytest.raises(CacheFormatError) as e:
        parse_config(json.dumps(obj))
    assert message in e.value.message


def test_not_json():
    with pytest.raises(CacheFormatError, match="not valid JSON"):
        parse_config(b"\xff{")


BLOBS = [BlobInfo(oci.OCI_LAYER_GZIP, d(1), 10, d(101)), BlobInfo(oci.OCI_LAYER_GZIP, d(2), 20, d(102))]


def test_image_manifest_carrier():
    cfg = sample().to_bytes()
    data, mt = build_carrier(cfg, BLOBS)
    assert mt == oci.OCI_MANIFEST
    obj = json.loads(data)
    assert obj["config"] == {"mediaType": CACHE_CONFIG, "digest": oci.sha256_digest(cfg), "size": len(cfg)}
    assert obj["layers"][1]["annotations"]["containerd.io/uncompressed"] == d(102)
    c = parse_carrier(data, mt)
    assert c is not None and c.config.digest == oci.sha256_digest(cfg)
    assert c.blobs == {b.digest: b for b in BLOBS}


@pytest.mark.parametrize("oci_types, expect", [(True, oci.OCI_INDEX), (False, oci.DOCKER_MANIFEST_LIST)])
def test_index_carrier(oci_types, expect):
    cfg = sample().to_bytes()
    data, mt = build_carrier(cfg, BLOBS, image_manifest=False, oci_mediatypes=oci_types)
    assert mt == expect
    obj = json.loads(data)
    assert obj["manifests"][-1]["mediaType"] == CACHE_CONFIG
    if not oci_types:
        assert obj["manifests"][0]["mediaType"] == oci.DOCKER_LAYER_GZIP
    c = parse_carrier(data)  # media type from the document itself
    assert c is not None and set(c.blobs) == {d(1), d(2)}


def test_an_image_manifest_carries_no_cache():
    img = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
           "config": {"mediaType": oci.OCI_CONFIG, "digest": d(9), "size": 3}, "layers": []}
    assert parse_carrier(json.dumps(img).encode()) is None


def test_a_layer_without_a_diff_id_is_an_error():
    m = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
         "config": {"mediaType": CACHE_CONFIG, "digest": d(9), "size": 3},
         "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": d(1), "size": 1}]}
    with pytest.raises(CacheFormatError, match="no diff ID"):
        parse_carrier(json.dumps(m).encode())


def test_inline_round_trip():
    cfg = sample()
    back = decode_inline(encode_inline(cfg))
    assert back.records == cfg.records and back.layers == cfg.layers
    with pytest.raises(CacheFormatError, match="not base64"):
        decode_inline("%%%")
    with pytest.raises(CacheFormatError, match="not a string"):
        decode_inline(3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.sampled_from([d(1), d(2), "x", ""]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["layers", "records", "blob", "parent", "digest", "layer", "inputs", "link",
                         "mason", "version", "mounts", "id", "selector"]), inner, max_size=5),
    max_leaves=25)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzz_config_decoder(obj):
    try:
        cfg = parse_config(json.dumps(obj))
    except CacheFormatError as e:
        assert e.message
        return
    for r in cfg.records:  # whatever decodes is usable: every chain walks to the bottom
        for li in r.results:
            assert cfg.chain(li)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda o: json.dumps(o).encode()))
def test_fuzz_carrier_decoder(data):
    try:
        parse_carrier(data)
    except MasonError as e:
        assert e.message


@pytest.mark.parametrize("media_type, kind", [
    (oci.OCI_LAYER_GZIP, "gzip"), (oci.DOCKER_LAYER_GZIP, "gzip"), (oci.OCI_LAYER_ZSTD, "zstd"),
    (oci.OCI_LAYER, "uncompressed"), ("application/vnd.docker.image.rootfs.diff.tar", "uncompressed"),
    ("application/vnd.oci.image.layer.nondistributable.v1.tar+foo", None)])
def test_compression_of_a_layer_media_type(media_type, kind):
    from mason.backends.cache.compress import compression_of

    assert compression_of(media_type) == kind


def test_merged_configs_keep_every_chain_and_link():
    from mason.backends.cache.format import CacheMountEntry, merge_configs

    a = sample()
    b = CacheConfig([CacheLayer(d(7)), CacheLayer(d(8), 0)], [CacheRecord(d(40)), CacheRecord(d(41), (1,), ((0,),))],
                    [CacheMountEntry("m", 0)])
    m = parse_config(merge_configs([a, b]).to_bytes())  # still a valid config
    assert len(m.layers) == len(a.layers) + 2 and len(m.records) == len(a.records) + 2
    last = m.records[-1]
    assert m.chain(last.results[0]) == [d(7), d(8)]
    assert m.records[last.inputs[0][0]].digest == d(40)
    for r in a.records:  # the first config's records unchanged
        i = m.records.index(r)
        assert [m.chain(x) for x in m.records[i].results] == [a.chain(x) for x in r.results]
    assert [(e.id, m.layers[e.layer].blob) for e in m.mounts] == [("apt", d(3)), ("m", d(7))]
