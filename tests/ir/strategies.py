"""Hypothesis strategies for the LLB IR, reused by codec, text, pass and solver tests.

* :func:`ops_dags` — a list of ops (every kind, incl. the mason ConfigOp) forming a random valid
  DAG: every index (mount, file-action, merge, diff, ref output) is in range.
* :func:`graphs` — a :class:`Graph` with one or more outputs over such a DAG.
* :func:`fixed_graph` — a deterministic graph touching every op kind (for cross-process checks).
"""

from __future__ import annotations

from hypothesis import strategies as st

from mason.ir.graph import Graph, Output
from mason.ir.ops import (
    CacheOpt,
    CacheSharing,
    CDIDevice,
    ChownOpt,
    ConfigChange,
    ConfigOp,
    Copy,
    DiffOp,
    ExecOp,
    FileAction,
    FileOp,
    HostIP,
    MergeOp,
    Meta,
    MkDir,
    MkFile,
    Mount,
    MountContentCache,
    MountType,
    NetMode,
    Op,
    OpMetadata,
    Platform,
    ProgressGroup,
    ProxyEnv,
    Ref,
    Rm,
    SecretEnv,
    SecretOpt,
    SecurityMode,
    SourceOp,
    SSHOpt,
    Symlink,
    TmpfsOpt,
    Ulimit,
    UserOpt,
)

__all__ = ["texts", "platforms", "metadatas", "ops_dags", "graphs", "chain", "fixed_graph", "image_configs"]

INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
small_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=4)
paths = st.sampled_from(["/", "/a", "/a/b", "/src", "/out", "/root/.cache", "/tmp", "/x y", "/é"])


def _tuple(s: st.SearchStrategy, n: int = 3) -> st.SearchStrategy:
    return st.lists(s, max_size=n).map(tuple)


platforms = st.one_of(
    st.none(),
    st.builds(Platform, st.sampled_from(["amd64", "arm64", "arm"]), st.sampled_from(["linux", "windows"]),
              st.sampled_from(["", "v7", "v8"]), st.sampled_from(["", "10.0.1"]), _tuple(small_texts, 2)),
)
constraints = st.one_of(st.none(), st.just(()), _tuple(small_texts, 2))
pairs = st.dictionaries(small_texts, small_texts, max_size=3).map(lambda d: tuple(sorted(d.items())))
metadatas = st.builds(
    OpMetadata, st.booleans(), pairs, st.one_of(st.none(), st.booleans()),
    st.dictionaries(small_texts, st.booleans(), max_size=3).map(lambda d: tuple(sorted(d.items()))),
    st.one_of(st.none(), st.builds(ProgressGroup, small_texts, small_texts, st.booleans())),
    st.booleans(),
)
image_configs = st.one_of(st.none(), st.fixed_dictionaries({
    "architecture": st.sampled_from(["amd64", "arm64"]), "os": st.just("linux"),
    "config": st.fixed_dictionaries({}, optional={
        "Env": st.lists(st.sampled_from(["A=1", "PATH=/bin", "B=é"]), max_size=3),
        "Cmd": st.lists(texts, max_size=2), "WorkingDir": texts,
        "ExposedPorts": st.dictionaries(st.sampled_from(["80/tcp", "53/udp"]), st.just({}))}),
}))

metas = st.builds(
    Meta, _tuple(texts, 4), _tuple(st.sampled_from(["PATH=/bin", "A=1", "B="]), 3), texts, texts,
    st.one_of(st.none(), st.builds(ProxyEnv, small_texts, small_texts, small_texts, small_texts, small_texts)),
    _tuple(st.builds(HostIP, small_texts, small_texts), 2), small_texts,
    _tuple(st.builds(Ulimit, small_texts, INT64, INT64), 2), small_texts, st.booleans(), _tuple(INT32, 3),
)


def _opt(s: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), s)


def _enum(e: type) -> st.SearchStrategy:
    return st.sampled_from(list(e))


def users(n_inputs: int) -> st.SearchStrategy:
    return st.one_of(
        st.builds(UserOpt),
        st.builds(lambda i: UserOpt(id=i), UINT32),
        st.builds(lambda name, i: UserOpt(name=name, name_input=i), small_texts, st.integers(-1, max(n_inputs, 1))),
    )


def chowns(n: int) -> st.SearchStrategy:
    return _opt(st.builds(ChownOpt, _opt(users(n)), _opt(users(n))))


def file_actions(n_inputs: int, k: int) -> st.SearchStrategy:
    """Action k of a FileOp with ``n_inputs`` op inputs."""
    idx = st.integers(-1, n_inputs + k - 1)
    own = chowns(n_inputs + k)
    kinds = st.one_of(
        st.builds(Copy, paths, paths, own, INT32, st.booleans(), st.booleans(), st.booleans(), st.booleans(),
                  st.booleans(), st.booleans(), INT64, _tuple(small_texts, 2), _tuple(small_texts, 2),
                  st.booleans(), small_texts, _tuple(paths, 2)),
        st.builds(MkFile, paths, INT32, st.binary(max_size=8), own, INT64),
        st.builds(MkDir, paths, INT32, st.booleans(), own, INT64),
        st.builds(Rm, paths, st.booleans(), st.booleans()),
        st.builds(Symlink, paths, paths, own, INT64),
    )
    return st.builds(FileAction, idx, idx, st.integers(-1, 0), kinds)


def mounts(n_inputs: int) -> st.SearchStrategy:
    return st.builds(
        Mount, st.integers(-1, n_inputs - 1), small_texts, paths, st.integers(-1, 3), st.booleans(),
        _enum(MountType), _opt(st.builds(TmpfsOpt, INT64)), _opt(st.builds(CacheOpt, small_texts, _enum(CacheSharing))),
        _opt(st.builds(SecretOpt, small_texts, UINT32, UINT32, UINT32, st.booleans())),
        _opt(st.builds(SSHOpt, small_texts, UINT32, UINT32, UINT32, st.booleans())),
        small_texts, _enum(MountContentCache),
    )


config_changes = st.builds(
    ConfigChange, st.sampled_from(["set", "env", "label", "add", "append"]),
    st.sampled_from(["Cmd", "Env", "ExposedPorts", "OnBuild", "A"]), st.sampled_from(["null", '["x"]', "{}", "v"]))


@st.composite
def _op(draw: st.DrawFn, pool: list[Op]) -> Op:
    kinds = ["source"] if not pool else ["source", "exec", "file", "merge", "diff", "config"]
    kind = draw(st.sampled_from(kinds))
    n = 0 if kind == "source" else draw(st.integers(1, min(3, len(pool))) if kind != "config" else st.just(1))
    if kind == "file":
        n = draw(st.integers(0, min(3, len(pool))))
    refs = []
    for _ in range(n):
        op = draw(st.sampled_from(pool))
        outs = max(op.num_outputs(), 1)
        refs.append(Ref(op, draw(st.integers(0, outs - 1))))
    common = dict(inputs=tuple(refs), platform=draw(platforms), constraints=draw(constraints),
                  metadata=draw(metadatas))
    if kind == "source":
        ident = draw(st.sampled_from(["docker-image://docker.io/library/busybox:latest", "local://context",
                                      "git://github.com/a/b#main", "https://example.com/f"]))
        return SourceOp(ident + draw(small_texts), draw(pairs), **common)
    if kind == "exec":
        ms = draw(st.lists(mounts(n), min_size=1, max_size=4).map(tuple))
        return ExecOp(draw(metas), ms, draw(_enum(NetMode)), draw(_enum(SecurityMode)),
                      draw(_tuple(st.builds(SecretEnv, small_texts, small_texts, st.booleans()), 2)),
                      draw(_tuple(st.builds(CDIDevice, small_texts, st.booleans()), 2)), **common)
    if kind == "file":
        k = draw(st.integers(1, 3))
        acts = tuple(draw(file_actions(n, i)) for i in range(k))
        return FileOp(acts, **common)
    if kind == "merge":
        return MergeOp(tuple(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3))), **common)
    if kind == "diff":
        side = _opt(st.integers(-1, n - 1))
        return DiffOp(draw(side), draw(side), **common)
    return ConfigOp(draw(_tuple(config_changes, 3)), draw(texts), **common)


@st.composite
def ops_dags(draw: st.DrawFn, max_ops: int = 10) -> list[Op]:
    """Ops in creation order (inputs always earlier)."""
    pool: list[Op] = []
    for _ in range(draw(st.integers(1, max_ops))):
        pool.append(draw(_op(pool)))
    return pool


@st.composite
def graphs(draw: st.DrawFn, max_ops: int = 10, max_outputs: int = 3) -> Graph:
    pool = draw(ops_dags(max_ops))
    outs = []
    for i in range(draw(st.integers(1, max_outputs))):
        op = draw(st.sampled_from(pool))
        outs.append(Output(f"out{i}", Ref(op, draw(st.integers(0, max(op.num_outputs(), 1) - 1))),
                           draw(image_configs)))
    return Graph(tuple(outs))


def chain(n: int) -> Op:
    """A chain of ``n`` ops cycling through exec, file and config ops on one image."""
    plat = Platform("amd64", "linux")
    op: Op = SourceOp("docker-image://docker.io/library/busybox:latest", platform=plat, constraints=())
    for i in range(n - 1):
        r = (Ref(op),)
        if i % 3 == 0:
            op = ExecOp(Meta(("/bin/sh", "-c", f"echo {i} >> /log"), ("PATH=/bin",), "/", remove_mount_stubs_recursive=True),
                        (Mount(0, dest="/", output=0),
                         Mount(-1, dest="/c", mount_type=MountType.CACHE, cache=CacheOpt("c", CacheSharing.LOCKED))),
                        inputs=r, platform=plat, constraints=())
        elif i % 3 == 1:
            op = FileOp((FileAction(0, -1, -1, MkDir(f"/d{i}", 0o755, True)),
                         FileAction(1, -1, 0, MkFile(f"/d{i}/f", 0o644, b"x"))), inputs=r, platform=plat, constraints=())
        else:
            op = ConfigOp((ConfigChange("env", "STEP", str(i)),), f"ENV STEP={i}", inputs=r)
    return op


def fixed_graph() -> Graph:
    """A fixed graph with every op kind, two outputs and image configs."""
    plat = Platform("arm64", "linux", "v8")
    img = SourceOp("docker-image://docker.io/library/busybox:latest", platform=plat, constraints=())
    ctx = SourceOp("local://context", (("local.excludepatterns", '["*.o"]'),), constraints=())
    run = ExecOp(Meta(("/bin/sh", "-c", "make"), ("PATH=/bin",), "/src", "1000", valid_exit_codes=(0, 1)),
                 (Mount(0, dest="/", output=0), Mount(1, "/sub", "/ctx", readonly=True),
                  Mount(-1, dest="/tmp", mount_type=MountType.TMPFS, tmpfs=TmpfsOpt()),
                  Mount(-1, dest="/run/s", mount_type=MountType.SECRET, secret=SecretOpt("s", mode=0o400))),
                 NetMode.NONE, inputs=(Ref(img), Ref(ctx)), platform=plat, constraints=())
    f = FileOp((FileAction(-1, 0, -1, Copy("/src/app", "/app", ChownOpt(UserOpt(id=0), UserOpt(name="app")))),
                FileAction(1, -1, 0, Symlink("/app", "/bin/app"))), inputs=(Ref(run),), platform=plat, constraints=())
    m = MergeOp((0, 1), inputs=(Ref(img), Ref(f)), platform=plat, constraints=())
    d = DiffOp(0, 1, inputs=(Ref(img), Ref(m)), platform=plat, constraints=())
    c = ConfigOp((ConfigChange("add", "ExposedPorts", '{"80/tcp":{}}'),), "EXPOSE 80/tcp", inputs=(Ref(m),))
    return Graph((Output("app", Ref(c), {"config": {"Cmd": ["/bin/app"]}}), Output("layer", Ref(d), None)))
