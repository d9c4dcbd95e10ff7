"""The image-metadata resolver interface (mason.ir.resolver): platforms, the in-memory resolver
for tests, the caching wrapper."""

import threading
import time

import pytest

from mason.ir.errors import MasonError
from mason.ir.resolver import (
    CachingResolver,
    ImageMetaResolver,
    InMemoryResolver,
    PlatformSpec,
    ResolvedImage,
    pinned_ref,
)

CFG = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]}}


@pytest.mark.parametrize("text,expected", [
    ("linux/amd64", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"),
    ("linux/arm64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64"),
    ("linux/aarch64", "linux/arm64"),
    ("linux/arm", "linux/arm/v7"),
    ("linux/arm/v6", "linux/arm/v6"),
    ("linux/armhf", "linux/arm/v7"),
    ("Linux/AMD64", "linux/amd64"),
    ("amd64", "linux/amd64"),
    ("windows/amd64", "windows/amd64"),
    ("linux/386", "linux/386"),
    ("linux/riscv64", "linux/riscv64"),
])
def test_platform_parse(text, expected):
    assert str(PlatformSpec.parse(text)) == expected


@pytest.mark.parametrize("text,fragment", [
    ("", "expected os/arch[/variant]"),
    ("linux/", "expected os/arch[/variant]"),
    ("a/b/c/d", "expected os/arch[/variant]"),
    ("plan10/amd64", "unknown operating system 'plan10'"),
    ("linux/z80", "unknown architecture 'z80'"),
])
def test_platform_parse_errors(text, fragment):
    with pytest.raises(MasonError) as e:
        PlatformSpec.parse(text)
    assert fragment in e.value.message and repr(text) in e.value.message


def test_platform_default_and_json(monkeypatch):
    import platform as p

    monkeypatch.setattr(p, "machine", lambda: "aarch64")
    assert PlatformSpec.default() == PlatformSpec("linux", "arm64")
    monkeypatch.setattr(p, "machine", lambda: "x86_64")
    assert PlatformSpec.default() == PlatformSpec("linux", "amd64")
    assert PlatformSpec.parse("linux") == PlatformSpec("linux", "amd64")
    spec = PlatformSpec.from_json({"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert spec == PlatformSpec("linux", "arm64") and spec.to_json() == {"architecture": "arm64", "os": "linux"}
    assert PlatformSpec.parse("linux/arm/v7").to_json() == {"architecture": "arm", "os": "linux", "variant": "v7"}
    assert PlatformSpec.parse("linux/arm64").matches(PlatformSpec("linux", "arm64", "v8"))
    assert PlatformSpec.parse("linux/arm").matches(PlatformSpec("linux", "arm", ""))
    assert not PlatformSpec.parse("linux/arm").matches(PlatformSpec("linux", "arm", "v6"))
    assert not PlatformSpec.parse("linux/amd64").matches(PlatformSpec("linux", "arm64"))


def test_in_memory_resolver_single():
    r = InMemoryResolver({"busybox": CFG})
    assert isinstance(r, ImageMetaResolver)
    res = r.resolve_image_config("docker.io/library/busybox:latest")
    assert isinstance(res, ResolvedImage)
    assert res.config == CFG and res.config is not CFG
    assert res.ref == "docker.io/library/busybox:latest@" + res.digest
    assert res.digest == res.manifest_digest
    # stable across instances and runs
    assert InMemoryResolver({"busybox:latest": CFG}).resolve_image_config("busybox").digest == res.digest
    # by digest
    assert r.resolve_image_config("busybox@" + res.digest).config == CFG
    with pytest.raises(MasonError) as e:
        r.resolve_image_config("alpine")
    assert e.value.message == "image not found: alpine:latest"
    with pytest.raises(MasonError, match="image not found: busybox@sha256:0000"):
        r.resolve_image_config("busybox@sha256:" + "0" * 64)


def test_in_memory_resolver_multi_platform_pins_index():
    r = InMemoryResolver()
    r.add("127.0.0.1:5000/library/busybox", {**CFG, "architecture": "amd64"}, "linux/amd64")
    r.add("127.0.0.1:5000/library/busybox", {**CFG, "architecture": "arm64"}, "linux/arm64")
    amd = r.resolve_image_config("127.0.0.1:5000/library/busybox", PlatformSpec.parse("linux/amd64"))
    arm = r.resolve_image_config("127.0.0.1:5000/library/busybox", PlatformSpec.parse("linux/arm64"))
    assert amd.digest == arm.digest  # the index
    assert amd.manifest_digest != arm.manifest_digest
    assert (amd.config["architecture"], arm.config["architecture"]) == ("amd64", "arm64")
    assert arm.platform == PlatformSpec("linux", "arm64")
    with pytest.raises(MasonError) as e:
        r.resolve_image_config("127.0.0.1:5000/library/busybox", PlatformSpec.parse("linux/s390x"))
    assert e.value.message == ("image 127.0.0.1:5000/library/busybox:latest has no manifest for platform "
                               "linux/s390x (it has linux/amd64, linux/arm64)")
    r.add("pinned", CFG, digest="sha256:" + "b" * 64)
    assert r.resolve_image_config("pinned").ref == "docker.io/library/pinned:latest@sha256:" + "b" * 64


def test_pinned_ref():
    d = "sha256:" + "c" * 64
    assert pinned_ref("busybox:1.36", d) == f"docker.io/library/busybox:1.36@{d}"


def test_caching_resolver_once_per_key_and_threads():
    inner = InMemoryResolver({"busybox": CFG})
    slow_calls = []

    class Slow:
        def resolve_image_config(self, ref, platform=None):
            slow_calls.append(ref)
            time.sleep(0.05)
            return inner.resolve_image_config(ref, platform)

    c = CachingResolver(Slow())
    results = []
    threads = [threading.Thread(target=lambda: results.append(c.resolve_image_config("busybox")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(slow_calls) == 1 and len(results) == 8 and all(r is results[0] for r in results)
    # the same image by its full name is the same key; another platform is another key
    c.resolve_image_config("docker.io/library/busybox:latest")
    assert len(slow_calls) == 1
    c.resolve_image_config("busybox", PlatformSpec.parse("linux/arm64"))
    assert len(slow_calls) == 2


def test_caching_resolver_does_not_cache_errors():
    inner = InMemoryResolver()
    c = CachingResolver(inner)
    with pytest.raises(MasonError):
        c.resolve_image_config("late")
    inner.add("late", CFG)
    assert c.resolve_image_config("late").config == CFG
