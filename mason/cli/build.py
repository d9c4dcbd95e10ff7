"""``mason build [CONTEXT]``: build a Dockerfile (options and defaults as ``docker build`` /
``docker buildx build``), and the options ``mason solve`` shares. The work is
:func:`mason.driver.build`; progress goes to stderr through a renderer from
:mod:`mason.cli.progress` (``--progress=auto|tty|plain|json|quiet``), the image digest and names
to stdout. Every build is recorded for ``mason history`` and ``mason logs``.
"""

from __future__ import annotations

import contextlib
import os

import click

from mason.cli.progress import MODES

# The help lists options in these sections, in this order (the rest under "Other options").
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Input", ("dockerfile", "target", "build_args", "build_contexts", "platform", "secrets", "ssh", "locals_",
               "output", "frontend", "frontend_timeout")),
    ("Subrequests", ("call", "check", "call_format")),
    ("Output", ("tags", "outputs", "push", "iidfile", "quiet", "progress", "graph")),
    ("Execution", ("no_cache", "no_cache_filter", "explain", "cache_from", "cache_to", "allow", "network_default",
                   "jobs", "insecure_registries", "shm_size", "ulimits", "memory", "cpu_quota", "cpu_period")),
    ("Compiler", ("level", "passes")),
    ("containerd and state", ("host", "tlscacert", "tlscert", "tlskey", "tlsservername", "root",
                              "containerd_address")),
)


class SectionedCommand(click.Command):
    """A command whose ``--help`` groups its options under :data:`SECTIONS`' headings."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str, tuple[str, str]] = {}
        for p in self.get_params(ctx):
            if isinstance(p, click.Argument):
                continue
            rec = p.get_help_record(ctx)
            if rec is not None:
                rows[p.name or ""] = rec
        for title, names in SECTIONS:
            got = [rows.pop(n) for n in names if n in rows]
            if got:
                with formatter.section(f"{title} options"):
                    formatter.write_dl(got)
        if rows:
            with formatter.section("Other options"):
                formatter.write_dl(list(rows.values()))


def common_solve_options(f):
    """Options shared by ``mason build`` and ``mason solve``."""
    for opt in reversed([
        click.option("-t", "--tag", "tags", multiple=True, metavar="NAME",
                     help="Name the image in mason's image store (repeatable); with --output, names the image "
                          "outputs that name nothing."),
        click.option("-o", "--output", "outputs", multiple=True, metavar="SPEC",
                     help="Where the result goes (repeatable): type=image,name=N[,push=true] | "
                          "type=registry,name=N | type=oci,dest=F | type=docker,dest=F | "
                          "type=local,dest=DIR[,preserve-owner=true] (owned by the caller unless preserve-owner) | "
                          "type=tar,dest=F; a bare DIR means type=local,dest=DIR, '-' a tar on stdout."),
        click.option("--push", is_flag=True, help="Push the image too (shorthand for type=image,push=true)."),
        click.option("--iidfile", metavar="FILE", type=click.Path(dir_okay=False),
                     help="Write the image's manifest digest to FILE."),
        click.option("-q", "--quiet", is_flag=True,
                     help="Print nothing but the image digest (like --progress=quiet)."),
        click.option("--progress", default="auto", show_default=True, type=click.Choice(MODES),
                     help="Progress output on stderr; plain shows every RUN's output as it runs, json one "
                          "event per line."),
        click.option("--secret", "secrets", multiple=True, metavar="id=ID[,src=FILE|env=VAR]",
                     help="A secret for RUN --mount=type=secret (never stored in the image, cache or logs)."),
        click.option("--ssh", "ssh", multiple=True, metavar="default|ID[=SOCKET]",
                     help="An SSH agent socket for RUN --mount=type=ssh."),
        click.option("--no-cache", is_flag=True, help="Run every step; do not use the cache."),
        click.option("--allow", "allow", multiple=True, metavar="ENTITLEMENT",
                     help="Allow network.host, security.insecure or git.local (git sources on this machine)."),
        click.option("--network-default", type=click.Choice(["default", "host"]), default="default",
                     show_default=True, help="RUN's default network: its own namespace on a bridge, or the host's."),
        click.option("--jobs", type=click.IntRange(1), default=4, metavar="N", show_default=True,
                     help="Steps run at the same time at most."),
        click.option("--insecure-registry", "insecure_registries", multiple=True, metavar="HOST",
                     help="Plain HTTP for this registry (loopback ones always may)."),
        click.option("--memory", metavar="SIZE",
                     help="Memory limit of every step (e.g. 512m, 2g); a step over it is killed."),
        click.option("--cpu-quota", "cpu_quota", type=click.IntRange(1000), metavar="MICROSECONDS",
                     help="CPU time each step may use per --cpu-period (e.g. 50000: half a CPU)."),
        click.option("--cpu-period", "cpu_period", type=click.IntRange(1000, 1000000), metavar="MICROSECONDS",
                     help="The period of --cpu-quota (default 100000)."),
        click.option("--root", envvar="MASON_ROOT", metavar="DIR",
                     help="mason's state directory (default: $MASON_ROOT, /var/lib/mason as root, "
                          "~/.local/share/mason otherwise)."),
        click.option("--containerd-address", envvar="MASON_CONTAINERD_ADDRESS", metavar="SOCKET",
                     help="Use this containerd (default: $MASON_CONTAINERD_ADDRESS, else mason's own, "
                          "started when needed)."),
    ]):
        f = opt(f)
    return f


@contextlib.contextmanager
def progress_sink(progress: str, quiet: bool):
    """The renderer for ``--progress`` (``-q``: quiet), closed however the build ends."""
    from mason.cli.progress import make_renderer

    sink = make_renderer("quiet" if quiet else progress)
    try:
        yield sink
    finally:
        sink.close()


def report(result, quiet: bool, iidfile: str | None = None) -> None:
    """The image digest (and names) on stdout — unless an output went to stdout; ``iidfile``
    gets the digest."""
    if result.image is None:
        return
    _report_digest(result.image.manifest_digest, tuple(result.names), quiet, iidfile,
                   any(o.spec.dest == "-" for o in result.outputs))


def _report_digest(digest: str | None, names: tuple[str, ...], quiet: bool, iidfile: str | None,
                   to_stdout: bool) -> None:
    if digest is None:
        return
    if iidfile:
        try:
            with open(iidfile, "w") as f:
                f.write(digest)
        except OSError as e:
            from mason.ir.errors import MasonError

            raise MasonError(f"cannot write --iidfile {iidfile}: {e.strerror or e}") from None
    if to_stdout:
        return
    click.echo(digest if quiet else digest + (f" {' '.join(names)}" if names else ""))


def _refuse_with_host(**given) -> None:
    """Options the daemon decides (or mason alone has) are one error with ``--host``."""
    from mason.ir.errors import MasonError

    for name, value in given.items():
        if value:
            flag = {"level": "-O"}.get(name, "--" + name.replace("_", "-"))
            raise MasonError(f"{flag} cannot be used with --host (the daemon decides it)")


def run_limits(memory: str | None, cpu_quota: int | None, cpu_period: int | None) -> dict[str, int | None]:
    """``--memory``, ``--cpu-quota``, ``--cpu-period`` as the solver's limits (bytes, µs)."""
    from mason.ir.errors import MasonError
    from mason.ir.runlimits import parse_size

    mem = parse_size(memory, "--memory") if memory is not None else None
    if mem is not None and mem < 6 << 20:
        raise MasonError(f"invalid --memory {memory!r}: the minimum is 6m (as docker's)")
    if cpu_period is not None and cpu_quota is None:
        raise MasonError("--cpu-period needs --cpu-quota")
    return {"memory": mem, "cpu_quota": cpu_quota, "cpu_period": cpu_period}


def _check_iidfile(iidfile: str | None) -> None:
    """Fail before the build when ``--iidfile`` cannot be written (as the outputs do)."""
    import os

    from mason.ir.errors import MasonError

    if iidfile and not os.path.isdir(os.path.dirname(os.path.abspath(iidfile))):
        raise MasonError(f"cannot write --iidfile {iidfile}: its directory does not exist")


@click.command("build", cls=SectionedCommand)
@click.argument("context", default=".", metavar="[CONTEXT]")
@click.option("-f", "--file", "dockerfile", metavar="FILE",
              help="The Dockerfile (default: CONTEXT/Dockerfile; '-': stdin).")
@click.option("--target", metavar="STAGE", help="Build this stage (default: the last).")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY[=VALUE]",
              help="A build argument (repeatable; a bare KEY takes the environment's value). "
                   "SOURCE_DATE_EPOCH (here or in the environment) makes the output reproducible.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT][,...]",
              help="The target platform(s) (default: the host's); several give one image per platform under an index.")
@click.option("-O", "level", type=click.IntRange(0, 2), default=1, show_default=True, metavar="N",
              help="Optimization level: 0 verify only, 1 as BuildKit, 2 also merge layers.")
@click.option("--passes", metavar="PIPELINE", help="A pass pipeline instead of -O, e.g. 'verify,hoist-config'.")
@click.option("--no-cache-filter", "no_cache_filter", multiple=True, metavar="STAGE",
              help="Run the steps of this stage again (repeatable; a name or an index).")
@click.option("--explain", is_flag=True, help="Print why each step that ran missed the cache (vs the last build).")
@click.option("--call", "call", type=click.Choice(["build", "check", "outline", "targets"]), default="build",
              show_default=True, metavar="build|check|outline|targets",
              help="Ask the frontend instead of building (BuildKit's subrequests): check runs the build checks, "
                   "outline lists the build args/secrets/SSH the target uses, targets the stages.")
@click.option("--check", is_flag=True, help="Shorthand for --call check: exit 1 if a check set to error fires.")
@click.option("--format", "call_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How --call prints its answer (json: BuildKit's result.json, for tools).")
@click.option("--frontend", metavar="NAME",
              help="The frontend: a built-in or plugin name (mason frontends), a frontend image, or 'gateway' "
                   "(the # syntax= image even when it names a built-in). Default: BUILDKIT_SYNTAX, # syntax=, "
                   "the file name.")
@click.option("--frontend-timeout", "frontend_timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop a frontend image that has not returned its result after SECONDS (default: no limit).")
@click.option("--shm-size", "shm_size", metavar="SIZE",
              help="Size of /dev/shm in every RUN (default 64m), as buildx --shm-size.")
@click.option("--ulimit", "ulimits", multiple=True, metavar="NAME=SOFT[:HARD]",
              help="A ulimit of every RUN (repeatable), as buildx --ulimit, e.g. nofile=1024:2048.")
@click.option("--build-context", "build_contexts", multiple=True, metavar="NAME=VALUE",
              help="An extra build context (repeatable), as buildx: VALUE a directory, docker-image://REF, "
                   "oci-layout://DIR[:TAG|@DIGEST], an http(s) URL or a git URL; replaces FROM NAME, "
                   "COPY --from=NAME, RUN --mount=from=NAME and a stage named NAME.")
@click.option("--cache-from", "cache_from", multiple=True, metavar="SPEC",
              help="Import a build cache (repeatable): type=registry,ref=REF | type=local,src=DIR[,tag=T] | REF "
                   "(an image built with --cache-to type=inline works too).")
@click.option("--cache-to", "cache_to", multiple=True, metavar="SPEC",
              help="Export the build cache (repeatable): type=registry,ref=REF | type=local,dest=DIR | type=inline, "
                   "with [,mode=min|max][,image-manifest=true|false][,ignore-error=true].")
@click.option("--graph", "graph", metavar="FILE", type=click.Path(dir_okay=False),
              help="Draw the solved graph into FILE (.svg, .dot or .html): each step's duration, cached or ran, "
                   "the critical path in red (also for a failed build).")
@click.option("--host", envvar="MASON_HOST", metavar="ADDR",
              help="Build on this daemon (mason serve, or BuildKit's buildkitd): unix:///PATH or tcp://HOST:PORT "
                   "(default: $MASON_HOST; unset: build here).")
@click.option("--tlscacert", envvar="MASON_TLSCACERT", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --host tcp://: the CA the daemon's certificate must chain to (TLS).")
@click.option("--tlscert", envvar="MASON_TLSCERT", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --host tcp://: this client's certificate (mutual TLS).")
@click.option("--tlskey", envvar="MASON_TLSKEY", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --host tcp://: this client's private key.")
@click.option("--tlsservername", envvar="MASON_TLSSERVERNAME", metavar="NAME",
              help="With --host tcp://: the name the daemon's certificate must carry (default: the host).")
@common_solve_options
def build(context: str, dockerfile: str | None, target: str | None, build_args: tuple[str, ...], platform: str | None,
          level: int, passes: str | None, tags, outputs, push, iidfile, quiet, progress, secrets, ssh, no_cache,
          allow, network_default, jobs, insecure_registries, root, containerd_address, no_cache_filter=(),
          explain=False, check=False, cache_from=(), cache_to=(), call="build", call_format="text",
          frontend=None, graph=None, frontend_timeout=None, build_contexts=(),
          host=None, tlscacert=None, tlscert=None, tlskey=None, tlsservername=None, shm_size=None, ulimits=(),
          memory=None, cpu_quota=None, cpu_period=None) -> None:
    """Build the Dockerfile in CONTEXT (default: .), like docker build."""
    if check:
        call = "check"
    if call != "build":
        _run_call(call, call_format, context, dockerfile, build_args, target, platform, frontend, build_contexts,
                  image_opts=dict(root=root, containerd_address=containerd_address,
                                  insecure_registries=tuple(insecure_registries), timeout=frontend_timeout))
        return
    from mason.driver.inputs import parse_build_args  # --host loads no more of the driver than this

    _check_iidfile(iidfile)
    limits = run_limits(memory, cpu_quota, cpu_period)
    from mason.ir.runlimits import format_ulimits, parse_size, parse_ulimits

    shm = parse_size(shm_size, "--shm-size") if shm_size is not None else 0
    ulims = parse_ulimits(ulimits)  # checked before anything runs
    tls = (tlscacert, tlscert, tlskey, tlsservername)
    if any(tls) and not host:
        from mason.ir.errors import MasonError

        raise MasonError("--tlscacert, --tlscert, --tlskey and --tlsservername are for --host (a build daemon)")
    if host:
        _refuse_with_host(level=level != 1, passes=passes, explain=explain, jobs=jobs != 4, graph=graph,
                          frontend_timeout=frontend_timeout, insecure_registry=insecure_registries,
                          frontend=frontend not in (None, "dockerfile"),
                          memory=memory, cpu_quota=cpu_quota, cpu_period=cpu_period)
        fattrs = {"shm-size": str(shm)} if shm else {}
        if ulims:
            fattrs["ulimit"] = format_ulimits(ulims)
        from mason.remote.client import ClientTLS, RemoteRequest
        from mason.remote.client import build as remote_build

        with progress_sink(progress, quiet) as sink:
            rres = remote_build(RemoteRequest(
                host=host, context=context, dockerfile=dockerfile, target=target,
                build_args=parse_build_args(build_args), platform=platform, outputs=tuple(outputs),
                tags=tuple(tags), push=push, secrets=tuple(secrets), ssh=tuple(ssh), allow=tuple(allow),
                no_cache=no_cache, no_cache_filter=tuple(no_cache_filter), network_default=network_default,
                cache_from=tuple(cache_from), cache_to=tuple(cache_to), build_contexts=tuple(build_contexts),
                events=sink, tls=ClientTLS(*tls), frontend_attrs=fattrs))
        _report_digest(rres.digest, rres.names, quiet or progress == "quiet", iidfile, rres.to_stdout)
        return
    from mason.driver import BuildRequest
    from mason.driver import build as do_build

    graph_fmt = _check_graph(graph)
    with progress_sink(progress, quiet) as sink, graph_recorder(graph, graph_fmt, root, sink) as events:
        req = BuildRequest(context=context, dockerfile=dockerfile, tags=tuple(tags), outputs=tuple(outputs),
                           push=push, target=target, build_args=parse_build_args(build_args), platform=platform,
                           secrets=tuple(secrets), ssh=tuple(ssh), allow=tuple(allow), no_cache=no_cache,
                           insecure_registries=tuple(insecure_registries), root=root,
                           containerd_address=containerd_address, jobs=jobs, level=level, passes=passes,
                           network_default=network_default, events=events,
                           no_cache_filter=tuple(no_cache_filter), explain=explain,
                           cache_from=tuple(cache_from), cache_to=tuple(cache_to), frontend=frontend,
                           frontend_timeout=frontend_timeout, build_contexts=tuple(build_contexts),
                           shm_size=shm, ulimits=tuple(ulimits), memory=limits["memory"],
                           cpu_quota=limits["cpu_quota"], cpu_period=limits["cpu_period"])
        result = do_build(req)
    for line in result.explain:
        click.echo(line, err=True)
    report(result, quiet or progress == "quiet", iidfile)


def _check_graph(graph: str | None) -> str | None:
    """``--graph``'s format (from its extension), checked before the build as ``--iidfile`` is."""
    if not graph:
        return None
    from mason.cli.history import graph_format
    from mason.ir.errors import MasonError

    fmt = graph_format(graph)
    if not os.path.isdir(os.path.dirname(os.path.abspath(graph))):
        raise MasonError(f"cannot write --graph {graph}: its directory does not exist")
    return fmt


@contextlib.contextmanager
def graph_recorder(graph: str | None, fmt: str | None, root: str | None, sink):
    """With ``--graph``: the build's history record, made here so that the graph of a failed
    build can be drawn too (after the record is closed); else ``sink`` itself."""
    if not graph or fmt is None:
        yield sink
        return
    from mason.backends.containerd.daemon import state_root
    from mason.backends.dump.graph import GRAPH_FILE
    from mason.backends.solver.history import HistoryRecorder, load_build
    from mason.cli.history import write_graph
    from mason.ir.errors import MasonError

    rec = HistoryRecorder(state_root(root), forward=sink)
    ok = False
    try:
        with rec:
            yield rec
        ok = True
    finally:
        if ok:
            write_graph(state_root(root), rec.id, graph, fmt)
        else:  # a failed build's graph, if it got as far as its solve; its own error is the one shown
            with contextlib.suppress(MasonError):
                if load_build(state_root(root), rec.id).attachment(GRAPH_FILE) is not None:
                    write_graph(state_root(root), rec.id, graph, fmt)


def _run_call(call: str, fmt: str, context: str, dockerfile: str | None, build_args: tuple[str, ...],
              target: str | None, platform: str | None, frontend: str | None = None,
              build_contexts: tuple[str, ...] = (), image_opts: dict | None = None) -> None:
    """``--call``: the frontend's answer, offline (nothing built, no base image resolved); the
    ``--build-context`` names are the frontend's named contexts, as for a build — or, for a
    frontend image, what the image answers to BuildKit's subrequest."""
    from mason.cli.call import run_call
    from mason.driver import LowerRequest, parse_build_args
    from mason.driver.frontend import choose_frontend

    choice, request, path = choose_frontend(LowerRequest(context=context, dockerfile=dockerfile, target=target,
                                                         build_args=parse_build_args(build_args),
                                                         platform=platform, frontend=frontend,
                                                         build_contexts=tuple(build_contexts)))
    if choice.frontend is not None:
        run_call(call, choice.frontend, request, fmt)
        return
    _call_image(call, fmt, choice, request, path, context, build_contexts, **(image_opts or {}))


def _lint_text(raw: bytes, image: str) -> str:
    """A lint ``result.json`` as the built-in checks print: each warning on stderr
    (``FILE:LINE: warning: RULE: detail``, the description), the summary returned for stdout."""
    import json

    from mason.cli.main import echo_err
    from mason.ir.errors import MasonError

    try:
        doc = json.loads(raw)
        warnings = doc.get("warnings") or []
        sources = doc.get("sources") or []
        for w in warnings:
            loc = w.get("location") or {}
            src = sources[loc.get("sourceIndex", 0)] if sources else {}
            ranges = loc.get("ranges") or [{}]
            line = (ranges[0].get("start") or {}).get("line")
            where = f"{src.get('filename') or src.get('fileName') or 'Dockerfile'}:{line}: " if line else ""
            echo_err(f"{where}warning: {w.get('ruleName', '?')}: {w.get('detail', '')}\n"
                     f"    {w.get('description', '')}".rstrip())
        if doc.get("error"):
            echo_err(f"error: {doc['error'].get('message', doc['error'])}")
    except (ValueError, AttributeError, TypeError, IndexError):
        raise MasonError(f"frontend image {image} answered --call check with a result.json mason cannot read") \
            from None
    n = len(warnings)
    return f"Check complete, {n} warning{'s' if n != 1 else ''} found" if n else "Check complete, no warnings found."


def _call_image(call: str, fmt: str, choice, request, path: str, context: str, build_contexts: tuple[str, ...] = (),
                root: str | None = None,
                containerd_address: str | None = None, insecure_registries: tuple[str, ...] = (),
                timeout: float | None = None) -> None:
    """``--call`` through a frontend image (on mason's containerd): its ``result.txt`` (``--format
    json``: ``result.json``) on stdout; a non-zero ``result.statuscode`` (failed checks) exits 1."""
    from dataclasses import replace

    from mason.backends.sources.registry import RegistryResolver
    from mason.backends.sources.store_resolver import StoreResolver
    from mason.driver.resolvers import OnDemandResolver
    from mason.driver.solvers import LazySolver
    from mason.gateway.driver import call_with_image
    from mason.ir.errors import MasonError

    lazy = LazySolver(root, containerd_address)
    try:
        resolver = StoreResolver(lambda: lazy.get().client, OnDemandResolver(
            lambda: RegistryResolver(insecure_registries=insecure_registries)))
        locals_: dict = {"context": context, "dockerfile": os.path.dirname(os.path.abspath(path))}
        if build_contexts:  # --build-context directories, served as local://NAME
            from mason.build_contexts import parse_build_contexts

            locals_ = {**parse_build_contexts(build_contexts).dirs, **locals_}
        meta = call_with_image(choice.image, replace(request, resolver=resolver), call, path=path,
                               solver=lazy.get().solver, locals=locals_, timeout=timeout, cmdline=choice.cmdline)
    finally:
        lazy.close()
    key = "result.json" if fmt == "json" else "result.txt"
    out = meta.get(key)
    if call == "check" and fmt != "json" and "result.json" in meta:  # BuildKit's lint text is its JSON
        out = _lint_text(meta["result.json"], choice.image).encode()
    out = out or meta.get("result.json") or meta.get("result.txt")
    if out is None:
        raise MasonError(f"frontend image {choice.image} answered --call {call} without a result "
                         f"(metadata: {', '.join(sorted(meta)) or 'none'})")
    click.echo(out.decode(errors="replace"), nl=not out.endswith(b"\n"))
    code = meta.get("result.statuscode", b"0").decode().strip() or "0"
    if code != "0":
        raise MasonError(f"frontend image {choice.image}: --call {call} failed (result.statuscode {code})")
