"""Instructions layer: every instruction and flag, on hand-built syntax nodes."""

from __future__ import annotations

import pytest

from mason.frontends.dockerfile.instructions import (
    Add,
    Arg,
    BindMount,
    CacheMount,
    Cmd,
    Copy,
    DeferredMount,
    Entrypoint,
    Env,
    ExecForm,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    SecretMount,
    Shell,
    ShellForm,
    SshMount,
    Stopsignal,
    TmpfsMount,
    User,
    Volume,
    Workdir,
    parse_instruction,
)
from mason.frontends.dockerfile.nodes import Heredoc, Node
from mason.ir.errors import MasonErrors, SourceLoc
from tests.frontends.dockerfile.test_instructions_helpers import N, first_stage, parse


def one(item: N):
    (inst,) = first_stage(item)
    return inst


# --- FROM and stages ---------------------------------------------------------------------------

def test_from_plain_platform_and_stage_name():
    df = parse(N("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build",
                 ("golang:1.22", "AS", "Build"), ("--platform=$BUILDPLATFORM",)),
               "FROM scratch")
    a, b = df.stages
    assert a.from_ == From("golang:1.22", "$BUILDPLATFORM", "build")
    assert (a.name, a.base, a.platform) == ("build", "golang:1.22", "$BUILDPLATFORM")
    assert (b.name, b.base, b.platform) == (None, "scratch", None)
    assert a.loc.line == 1 and b.loc.line == 2
    assert df.stage("BUILD") is a and df.stage(1) is b
    with pytest.raises(KeyError):
        df.stage("nope")


def test_from_lowercase_as_and_name_with_symbols():
    df = parse(N("from x as my-stage_1.0", ("x", "as", "my-stage_1.0")))
    assert df.stages[0].name == "my-stage_1.0"


def test_meta_args_and_stage_grouping():
    df = parse(N("ARG BASE=alpine", ("BASE=alpine",)), N("ARG V", ("V",)),
               N("FROM $BASE", ("$BASE",)), N("ARG V", ("V",)), N("RUN x", ("x",)),
               "FROM b", N("USER u", ("u",)))
    assert [a.args for a in df.meta_args] == [(("BASE", "alpine"),), (("V", None),)]
    assert [type(i) for i in df.stages[0].instructions] == [Arg, Run]
    assert [type(i) for i in df.stages[1].instructions] == [User]
    assert [type(i).__name__ for i in df.instructions] == [
        "Arg", "Arg", "From", "Arg", "Run", "From", "User"]


def test_directives_and_escape_ride_along():
    from mason.frontends.dockerfile.instructions import parse_instructions
    from mason.frontends.dockerfile.nodes import Directive, ParseResult
    node = Node("from", ("x",), original="FROM x", loc=SourceLoc("Dockerfile", 2, 1))
    d = (Directive("escape", "`"),)
    df = parse_instructions(ParseResult((node,), d, "`"))
    assert df.directives == d and df.escape == "`"


# --- RUN ---------------------------------------------------------------------------------------

def test_run_shell_and_exec_forms():
    assert one(N("RUN make all", ("make all",))).command == ShellForm("make all")
    assert one(N('RUN ["make", "all"]', ("make", "all"), json=True)).command == \
        ExecForm(("make", "all"))
    # several shell words (hand-built) are joined like BuildKit's handleJSONArgs
    assert one(N("RUN a b", ("a", "b"))).command == ShellForm("a b")


def test_run_network_security_device():
    r = one(N("RUN --network=none --security=insecure --device=/dev/fuse x", ("x",),
              ("--network=none", "--security=insecure", "--device=/dev/fuse")))
    assert (r.network, r.security, r.devices) == ("none", "insecure", ("/dev/fuse",))
    r = one(N("RUN --network=host --network=default x", ("x",), ("--network=host",)))
    assert r.network == "host" and r.security is None


def test_run_heredoc():
    h = Heredoc("EOF", "echo hi\n")
    r = one(N("RUN <<EOF", ("<<EOF",), heredocs=(h,)))
    assert r.heredocs == (h,) and r.command == ShellForm("<<EOF")


def mount(spec: str):
    (m,) = one(N(f"RUN --mount={spec} x", ("x",), (f"--mount={spec}",))).mounts
    return m


def test_mount_bind_default_type_and_aliases():
    assert mount("target=/src") == BindMount("/src")
    assert mount("type=bind,src=/a,dst=/b,from=deps,rw") == BindMount("/b", "/a", "deps", True)
    assert mount("type=BIND,source=/a,destination=/b,readwrite=false").readwrite is False
    assert mount("target=/b,ro=false").readwrite is True
    assert mount("target=/b,readonly").readwrite is False
    assert mount("Type=bind,Target=/b").target == "/b"  # keys are case-insensitive


def test_mount_cache_every_option():
    m = mount("type=cache,id=pkg,target=/root/.cache,sharing=LOCKED,from=deps,source=/c,"
              "mode=0700,uid=1000,gid=1001,ro")
    assert m == CacheMount("/root/.cache", "pkg", True, "locked", "deps", "/c", 0o700, 1000,
                           1001)
    m = mount("type=cache,target=/var/cache/app")
    assert (m.effective_id, m.sharing, m.readonly, m.mode) == ("/var/cache/app", "shared",
                                                               False, None)
    assert mount("type=cache,target=/x,readonly=true").readonly is True
    assert mount("type=cache,target=/x,rw=false").readonly is True


@pytest.mark.parametrize("size,expected", [
    ("100", 100), ("64m", 64 << 20), ("1g", 1 << 30), ("2KiB", 2048), ("1.5k", 1536),
    ("3 MB", 3 << 20),
])
def test_mount_tmpfs_size(size, expected):
    assert mount(f"type=tmpfs,target=/t,size={size}") == TmpfsMount("/t", expected)


def test_mount_tmpfs_without_size():
    assert mount("type=tmpfs,dst=/t") == TmpfsMount("/t", None)


def test_mount_secret_defaults_and_options():
    m = mount("type=secret,id=aws")
    assert (m.effective_id, m.effective_target, m.effective_mode) == (
        "aws", "/run/secrets/aws", 0o400)
    m = mount("type=secret,target=/root/.npmrc,required,mode=0440,uid=1,gid=2")
    assert m == SecretMount(None, "/root/.npmrc", None, True, 0o440, 1, 2)
    assert m.effective_id == ".npmrc" and m.effective_target == "/root/.npmrc"
    m = mount("type=secret,id=tok,env=TOKEN")
    assert m.env == "TOKEN" and m.effective_target is None
    m = mount("type=secret,src=legacy,required=false")
    assert m.id == "legacy" and m.required is False


def test_mount_ssh_defaults_and_options():
    m = mount("type=ssh")
    assert m == SshMount() and m.effective_id == "default" and m.effective_mode == 0o600
    m = mount("type=ssh,id=gh,target=/agent,required=true,mode=600,uid=5,gid=6")
    assert m == SshMount("gh", "/agent", True, 0o600, 5, 6)


def test_mount_quoted_csv_field():
    assert mount('type=bind,"target=/a,b"').target == "/a,b"


def test_mount_values_with_variables_stay_raw():
    m = mount("type=cache,target=$DIR,id=${ID},mode=$MODE,uid=$UID,sharing=$S")
    assert m == CacheMount("$DIR", "${ID}", False, "$S", None, None, "$MODE", "$UID", None)
    m = mount("type=$T,target=/x")
    assert isinstance(m, DeferredMount)
    assert m.options == (("type", "$T"), ("target", "/x"))


def test_mount_options_keep_raw_pairs_and_location():
    r = one(N("RUN --mount=type=cache,target=/x x", ("x",), ("--mount=type=cache,target=/x",)))
    (m,) = r.mounts
    assert m.options == (("type", "cache"), ("target", "/x"))
    assert m.loc.line == 2


def test_several_mounts_in_order():
    r = one(N("RUN --mount=type=secret,id=a --mount=type=ssh x", ("x",),
              ("--mount=type=secret,id=a", "--mount=type=ssh")))
    assert [type(m) for m in r.mounts] == [SecretMount, SshMount]


# --- CMD / ENTRYPOINT --------------------------------------------------------------------------

def test_cmd_and_entrypoint():
    assert one(N('CMD ["cat", "/x"]', ("cat", "/x"), json=True)) == Cmd(ExecForm(("cat", "/x")))
    assert one(N("CMD echo $HOME", ("echo $HOME",))).command == ShellForm("echo $HOME")
    assert one(N("CMD []", (), json=True)).command == ExecForm(())
    assert one(N('ENTRYPOINT ["/bin/sh", "-c"]', ("/bin/sh", "-c"), json=True)) == \
        Entrypoint(ExecForm(("/bin/sh", "-c")))
    assert one(N("ENTRYPOINT exec app", ("exec app",))).command == ShellForm("exec app")


# --- COPY / ADD --------------------------------------------------------------------------------

def test_copy_plain_and_json():
    c = one(N("COPY a b /dst/", ("a", "b", "/dst/")))
    assert c == Copy(("a", "b"), "/dst/")
    c = one(N('COPY ["a b", "/d"]', ("a b", "/d"), json=True))
    assert (c.sources, c.dest) == (("a b",), "/d")


def test_copy_every_flag():
    flags = ("--from=build", "--chown=app:app", "--chmod=u+rwx,g=rx,o=", "--link",
             "--parents=true", "--exclude=*.tmp", "--exclude=.git")
    c = one(N("COPY " + " ".join(flags) + " src /dst", ("src", "/dst"), flags))
    assert c == Copy(("src",), "/dst", "build", "app:app", "u+rwx,g=rx,o=", True, True,
                     ("*.tmp", ".git"))


@pytest.mark.parametrize("chmod", ["755", "0644", "7777", "0", "u+x", "a=rwx", "go-w",
                                   "u=rwX,g+s,o-t", "+x", "ug=u", "$MODE"])
def test_copy_valid_chmod(chmod):
    assert one(N(f"COPY --chmod={chmod} a b", ("a", "b"), (f"--chmod={chmod}",))).chmod == chmod


def test_copy_link_false_and_empty_from():
    c = one(N("COPY --link=false --from= a b", ("a", "b"), ("--link=false", "--from=")))
    assert c.link is False and c.from_ is None


def test_copy_heredoc_sources():
    h1, h2 = Heredoc("EOF", "hello\n"), Heredoc("END", "x\n", expand=False)
    c = one(N("COPY <<EOF <<'END' file /dst/", ("<<EOF", "<<'END'", "file", "/dst/"),
              heredocs=(h1, h2)))
    assert c.sources == ("file",) and c.heredocs == (h1, h2) and c.dest == "/dst/"
    # chomp, expand and fd are the source word's (as BuildKit), the body the heredoc's of that name
    c = one(N("COPY <<-EOF 3<<\"END\" /dst", ("<<-EOF", '3<<"END"', "/dst"), heredocs=(h1, h2)))
    assert c.sources == () and c.heredocs == (Heredoc("EOF", "hello\n", chomp=True),
                                              Heredoc("END", "x\n", expand=False, fd=3))


def test_add_every_flag():
    flags = ("--chown=1:1", "--chmod=600", "--link", "--checksum=sha256:" + "a" * 64,
             "--keep-git-dir=true", "--unpack=false", "--exclude=x")
    a = one(N("ADD " + " ".join(flags) + " https://x/y.tgz /d", ("https://x/y.tgz", "/d"),
              flags))
    assert a == Add(("https://x/y.tgz",), "/d", None, "1:1", "600", True, False, ("x",), (),
                    "sha256:" + "a" * 64, True, False)


def test_add_defaults():
    a = one(N("ADD a b", ("a", "b")))
    assert (a.unpack, a.keep_git_dir, a.checksum) == (None, False, None)
    assert one(N("ADD --unpack a b", ("a", "b"), ("--unpack",))).unpack is True


# --- ARG / ENV / LABEL -------------------------------------------------------------------------

def test_arg_forms():
    a = one(N('ARG a b=1 c= D_2="x y" my-arg.v ${X}=1', ("a", "b=1", "c=", 'D_2="x y"',
                                                        "my-arg.v", "${X}=1")))
    assert a.args == (("a", None), ("b", "1"), ("c", ""), ("D_2", '"x y"'), ("my-arg.v", None),
                      ("${X}", "1"))


def test_env_and_label_pairs():
    e = one(N("ENV a=1 b=2", ("a", "1", "=", "b", "2", "=")))
    assert e == Env((("a", "1"), ("b", "2")))
    e = one(N("ENV legacy value with spaces", ("legacy", "value with spaces", "")))
    assert e.pairs == (("legacy", "value with spaces"),)
    lab = one(N('LABEL "com.x"="y" v=""', ('"com.x"', '"y"', "=", "v", '""', "=")))
    assert lab == Label((('"com.x"', '"y"'), ("v", '""')))


# --- EXPOSE / USER / WORKDIR / VOLUME / STOPSIGNAL / MAINTAINER / SHELL -----------------------

def test_expose():
    ports = ("80", "443/tcp", "53/UDP", "8000-8002", "9/sctp", "$PORT", "${P}/udp",
             "127.0.0.1:8080:80")
    assert one(N("EXPOSE " + " ".join(ports), ports)) == Expose(ports)


def test_user_workdir_maintainer_stopsignal():
    assert one(N("USER app:app", ("app:app",))) == User("app:app")
    assert one(N("WORKDIR $HOME/src", ("$HOME/src",))) == Workdir("$HOME/src")
    assert one(N("MAINTAINER me <me@x>", ("me <me@x>",))) == Maintainer("me <me@x>")
    for sig in ("SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-2", "$SIG"):
        assert one(N(f"STOPSIGNAL {sig}", (sig,))) == Stopsignal(sig)


def test_volume_forms():
    assert one(N('VOLUME ["/data", "/logs"]', ("/data", "/logs"), json=True)) == \
        Volume(("/data", "/logs"))
    assert one(N("VOLUME /a /b", ("/a", "/b"))).paths == ("/a", "/b")
    assert one(N("VOLUME [/logs]", ("[/logs]",))).paths == ("[/logs]",)


def test_shell():
    assert one(N('SHELL ["powershell", "-command"]', ("powershell", "-command"), json=True)) \
        == Shell(("powershell", "-command"))


# --- HEALTHCHECK -------------------------------------------------------------------------------

def test_healthcheck_none():
    assert one(N("HEALTHCHECK NONE", ("NONE",))) == Healthcheck(None)
    assert one(N("healthcheck none", ("none",))).test is None


def test_healthcheck_every_flag():
    flags = ("--interval=1m30s", "--timeout=500ms", "--start-period=0s",
             "--start-interval=1.5s", "--retries=5")
    h = one(N("HEALTHCHECK " + " ".join(flags) + " CMD curl -f http://x/",
              ("CMD", "curl -f http://x/"), flags))
    assert h == Healthcheck(ShellForm("curl -f http://x/"), 90 * 10**9, 500 * 10**6, 0,
                            1_500_000_000, 5)


def test_healthcheck_exec_form_and_defaults():
    h = one(N('HEALTHCHECK CMD ["true"]', ("CMD", "true"), json=True))
    assert h == Healthcheck(ExecForm(("true",)))
    assert (h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (None,) * 5
    h = one(N("HEALTHCHECK --retries=0 cmd true", ("cmd", "true"), ("--retries=0",)))
    assert h.retries == 0 and h.test == ShellForm("true")


# --- ONBUILD -----------------------------------------------------------------------------------

def test_onbuild_typed_trigger_and_expression():
    o = one(N("ONBUILD RUN echo hi", onbuild=N("RUN echo hi", ("echo hi",))))
    assert o == Onbuild(Run(ShellForm("echo hi")), "RUN echo hi")
    o = one(N("ONBUILD COPY --chown=1 . /app", onbuild=N("COPY --chown=1 . /app", (".", "/app"),
                                                          ("--chown=1",))))
    assert isinstance(o.trigger, Copy) and o.trigger.chown == "1"
    assert o.expression == "COPY --chown=1 . /app"
    o = one(N("  onbuild   ENV a=b", onbuild=N("ENV a=b", ("a", "b", "="))))
    assert o.expression == "ENV a=b"


def test_onbuild_heredoc_expression():
    h = Heredoc("EOF", "echo hi\n")
    o = one(N("ONBUILD RUN <<EOF", heredocs=(h,),
              onbuild=N("RUN <<EOF", ("<<EOF",), heredocs=(h,))))
    assert o.expression == "RUN <<EOF\necho hi\nEOF"
    assert o.trigger.heredocs == (h,)


def test_onbuild_from_args_when_no_nested_node():
    node = Node("onbuild", ("RUN", "echo hi"), original="ONBUILD RUN echo hi",
                loc=SourceLoc("Dockerfile", 3, 1, 3))
    o = parse_instruction(node)
    assert o.trigger == Run(ShellForm("echo hi"))


# --- values: frozen, located, comparable ------------------------------------------------------

def test_values_are_frozen_slotted_and_located():
    r = one(N("RUN x", ("x",)))
    with pytest.raises(AttributeError):
        r.network = "host"  # type: ignore[misc]
    assert not hasattr(r, "__dict__")
    assert r.loc == SourceLoc("Dockerfile", 2, 1, 2) and r.original == "RUN x"
    # locations and original text never count toward equality
    assert r == Run(ShellForm("x"), loc=SourceLoc("other", 9), original="run   x")


def test_parse_instruction_single_node_raises_mason_errors():
    node = Node("copy", ("a",), original="COPY a", loc=SourceLoc("Dockerfile", 4, 1, 4))
    with pytest.raises(MasonErrors) as e:
        parse_instruction(node, "\n\n\nCOPY a\n")
    assert (e.value.loc.line, e.value.loc.col) == (4, 6)
    assert e.value.source_line == "COPY a"


def test_instruction_without_location_still_errors_with_one():
    with pytest.raises(MasonErrors) as e:
        parse_instruction(Node("bogus"))
    assert e.value.loc == SourceLoc("Dockerfile", 1, 1)


def test_errors_without_text_use_original_for_columns():
    from tests.frontends.dockerfile.test_instructions_helpers import errors
    assert errors("FROM x", N("COPY --bogus a b", ("a", "b"), ("--bogus",)),
                  with_text=False) == [(2, 6, "unknown flag --bogus for COPY")]
