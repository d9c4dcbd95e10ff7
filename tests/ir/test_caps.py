"""mason.ir.caps: the capability ids an op needs (BuildKit v0.32.2's ``client/llb`` rules) and
their place in the written Definition. The same sets are checked against ``df2llb``'s own
output in tests/conformance/test_caps_df2llb.py."""

from __future__ import annotations

from mason.ir.caps import op_caps, terminal_caps, with_op_caps
from mason.ir.codec import decode_definition, digest_of, marshal
from mason.ir.llb_pb import pb
from mason.ir.ops import (
    CacheOpt,
    ConfigOp,
    Copy,
    DiffOp,
    ExecOp,
    FileAction,
    FileOp,
    MergeOp,
    Meta,
    Mount,
    MountContentCache,
    MountType,
    NetMode,
    OpMetadata,
    ProxyEnv,
    SecretEnv,
    SecretOpt,
    SecurityMode,
    SourceOp,
    SSHOpt,
    TmpfsOpt,
    Ulimit,
)

IMG = SourceOp(identifier="docker-image://docker.io/library/busybox:latest")
BASE_EXEC = {"exec.meta.base", "exec.meta.setsdefaultpath"}


def _run(**kw) -> ExecOp:  # type: ignore[no-untyped-def]
    mounts = kw.pop("mounts", (Mount(input=0, dest="/", output=0),))
    return ExecOp(inputs=(IMG.ref(),), meta=kw.pop("meta", Meta(args=("true",), cwd="/")), mounts=mounts, **kw)


def test_sources() -> None:
    assert op_caps(IMG) == {"source.image"}
    assert op_caps(SourceOp(identifier=IMG.identifier, attrs=(("image.resolvemode", "pull"),))) == {
        "source.image", "source.image.resolvemode"}
    # the default and prefer-local modes need no cap
    assert op_caps(SourceOp(identifier=IMG.identifier, attrs=(("image.resolvemode", "local"),))) == {"source.image"}
    ctx = SourceOp(identifier="local://context", attrs=(("local.followpaths", "[]"), ("local.includepattern", "[]"),
                                                         ("local.sharedkeyhint", "context"), ("local.unique", "u")))
    assert op_caps(ctx) == {"source.local", "source.local.followpaths", "source.local.includepatterns",
                            "source.local.sharedkeyhint", "source.local.unique"}
    http = SourceOp(identifier="https://x.example/f", attrs=(("http.checksum", "sha256:00"), ("http.uid", "1")))
    assert op_caps(http) == {"source.http", "source.http.checksum", "soruce.http.uidgid"}
    git = SourceOp(identifier="git://github.com/a/b", attrs=(
        ("git.authheadersecret", "GIT_AUTH_HEADER"), ("git.authtokensecret", "GIT_AUTH_TOKEN"),
        ("git.fullurl", "https://github.com/a/b"), ("git.keepgitdir", "true")))
    assert op_caps(git) == {"source.git", "source.git.fullurl", "source.git.keepgitdir"}
    git2 = SourceOp(identifier="git://github.com/a/b", attrs=(
        ("git.authtokensecret", "MY_TOKEN"), ("git.mountsshsock", "default")))
    assert op_caps(git2) == {"source.git", "source.git.httpauth", "source.git.knownsshhosts",
                             "source.git.mountsshsock"}
    assert op_caps(SourceOp(identifier="oci-layout://store@sha256:00")) == {"source.ocilayout"}


def test_exec() -> None:
    assert op_caps(_run()) == BASE_EXEC | {"exec.mount.bind"}
    # a root from scratch is not a bind mount
    assert op_caps(ExecOp(meta=Meta(args=("true",), cwd="/"), mounts=(Mount(dest="/", output=0),))) == BASE_EXEC
    ex = _run(mounts=(
        Mount(input=0, dest="/", output=0),
        Mount(input=0, selector="/etc", dest="/e", readonly=True),
        Mount(dest="/c", mount_type=MountType.CACHE, cache=CacheOpt(id="c")),
        Mount(dest="/t", mount_type=MountType.TMPFS, tmpfs=TmpfsOpt(size=10)),
        Mount(dest="/s", mount_type=MountType.SECRET, secret=SecretOpt(id="s")),
        Mount(dest="/run/buildkit/ssh_agent.0", mount_type=MountType.SSH, ssh=SSHOpt(id="default")),
    ), network=NetMode.NONE, security=SecurityMode.INSECURE)
    assert op_caps(ex) == BASE_EXEC | {
        "exec.mount.bind", "exec.mount.selector", "exec.mount.cache", "exec.mount.cache.sharing",
        "exec.mount.tmpfs", "exec.mount.tmpfs.size", "exec.mount.secret", "exec.mount.ssh",
        "exec.meta.network", "exec.meta.security"}
    # an env-only secret still claims the secret mount cap, as BuildKit does
    assert op_caps(_run(secret_env=(SecretEnv("s", "S"),))) >= {"exec.mount.secret", "exec.secretenv"}
    meta = Meta(args=("true",), cwd="/", ulimits=(Ulimit("nofile", 1, 2),), proxy_env=ProxyEnv(http_proxy="p"),
                valid_exit_codes=(0, 1))
    assert op_caps(_run(meta=meta)) == BASE_EXEC | {"exec.mount.bind", "exec.meta.ulimit", "exec.meta.proxyenv",
                                                     "exec.validexitcode"}
    cc = _run(mounts=(Mount(input=0, dest="/", output=0, content_cache=MountContentCache.ON),))
    assert "exec.mount.cache.content" in op_caps(cc)
    assert op_caps(_run(network=NetMode.HOST)) == BASE_EXEC | {"exec.mount.bind", "exec.meta.network"}


def test_file_merge_diff_config() -> None:
    # BuildKit v0.32.2 writes no per-action caps (modestring, include/exclude patterns …)
    fop = FileOp(inputs=(IMG.ref(),), actions=(FileAction(0, -1, 0, Copy(src="/a", dest="/b", mode_str="u+x",
                                                                         exclude_patterns=("x",))),))
    assert op_caps(fop) == {"file.base"}
    assert op_caps(MergeOp(inputs=(IMG.ref(), fop.ref()), merge_inputs=(0, 1))) == {"mergeop"}
    assert op_caps(DiffOp(inputs=(IMG.ref(), fop.ref()), lower=0, upper=1)) == {"diffop"}
    assert op_caps(ConfigOp(inputs=(IMG.ref(),))) == frozenset()


def test_terminal_caps() -> None:
    assert terminal_caps([]) == {"constraints", "platform"}
    mds = [OpMetadata(description=(("llb.customname", "x"),)), OpMetadata(ignore_cache=True),
           OpMetadata(export_cache=False)]
    assert terminal_caps(mds) == {"constraints", "platform", "meta.description", "meta.ignorecache",
                                  "meta.exportcache"}


def test_written_in_the_definition_and_kept_on_decode() -> None:
    run = _run()
    data = marshal(run.ref())
    d = pb().Definition.FromString(data)
    ops = list(getattr(d, "def"))
    assert dict(d.metadata[IMG.digest].caps) == {"source.image": True}
    assert set(d.metadata[run.digest].caps) == BASE_EXEC | {"exec.mount.bind"}
    assert set(d.metadata[digest_of(ops[-1])].caps) == {"constraints", "platform"}
    # caps an op already carries (decoded from BuildKit, say) are kept, and decode -> encode is stable
    extra = SourceOp(identifier=IMG.identifier, metadata=OpMetadata(caps=(("source.image.checksum", True),)))
    assert dict(with_op_caps(extra).caps) == {"source.image": True, "source.image.checksum": True}
    dd = decode_definition(data)
    assert marshal(dd.ref) == data
    # without metadata nothing is written
    assert not pb().Definition.FromString(marshal(run.ref(), metadata=False)).metadata
