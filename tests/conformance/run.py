"""Lower a :class:`~tests.conformance.collect.Case` with BuildKit v0.32.2's frontend
(``../shared/tools/buildkit/df2llb``) and with mason (``-O1``), both with the fixed resolver of
the v0.32 corpus (``base-image-config.json`` and its digest), and compare the op digests.

``python -m tests.conformance.run [-v] [--write]`` prints the figures for the whole set:
digest-identical ops / total (BuildKit's ops, the terminal op excluded) and files / total (every
op and the terminal digest equal). ``--write`` records the identical files in ``identical.json``
(Case.key -> where it was found), which tests/conformance/test_conformance.py holds the lowering to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.conformance.collect import CORPUS, ROOT, Case, all_cases

DF2LLB = ROOT.parent / "shared" / "tools" / "buildkit" / "df2llb"
BASE_CONFIG = CORPUS / "buildkit-llb-v0.32" / "base-image-config.json"
BASE_DIGEST = "sha256:a026ada719a4f43dacd393a814a0280695a376827a3c2234c09888fd57d7625c"
IDENTICAL = Path(__file__).with_name("identical.json")


@dataclass
class Lowered:
    data: bytes | None
    error: str | None = None

    @property
    def ops(self) -> list[bytes]:
        from mason.ir.llb_pb import pb

        d = pb().Definition.FromString(self.data)
        return list(getattr(d, "def"))


def _context(case: Case, workdir: Path) -> Path:
    ctx = workdir / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_bytes(case.text.encode("utf-8", "surrogateescape"))
    for name, data in case.files.items():
        (ctx / name).write_text(data)
    if case.excludes:
        (ctx / ".dockerignore").write_text("\n".join(case.excludes) + "\n")
    return ctx


def df2llb(case: Case, workdir: Path) -> Lowered:
    ctx = _context(case, workdir)
    out = workdir / "bk.llb"
    args = [str(DF2LLB), "-f", str(ctx / "Dockerfile"), "-context", str(ctx), "-image-config", str(BASE_CONFIG),
            "-image-digest", BASE_DIGEST, "-o", str(out)]
    for k, v in case.build_args:
        args += ["-build-arg", f"{k}={v}"]
    if case.target:
        args += ["-target", case.target]
    if case.platform:
        args += ["-platform", case.platform]
    p = subprocess.run(args, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        return Lowered(None, p.stderr.decode(errors="replace").strip())
    return Lowered(out.read_bytes())


def mason(case: Case, workdir: Path) -> Lowered:
    from mason.driver import LowerRequest, lower_request
    from mason.ir.codec import encode_graph
    from mason.ir.errors import MasonError
    from mason.ir.resolver import FixedResolver

    ctx = _context(case, workdir)
    resolver = FixedResolver(json.loads(BASE_CONFIG.read_text()), BASE_DIGEST)
    try:
        res = lower_request(LowerRequest(context=str(ctx), dockerfile=str(ctx / "Dockerfile"),
                                         build_args=dict(case.build_args), target=case.target,
                                         platform=case.platform or "linux/amd64"), resolver=resolver)
        defs = encode_graph(res.graph)
    except MasonError as e:
        return Lowered(None, str(e))
    return Lowered(defs[0])


@dataclass
class Comparison:
    case: Case
    buildkit: Lowered
    mason: Lowered

    @property
    def both_ok(self) -> bool:
        return self.buildkit.data is not None and self.mason.data is not None

    def op_counts(self) -> tuple[int, int]:
        """(BuildKit ops whose digest mason also has, BuildKit ops), terminal op excluded."""
        if not self.both_ok:
            return 0, 0
        from mason.ir.codec import digest_of

        bk = [digest_of(b) for b in self.buildkit.ops[:-1]]
        ms = {digest_of(b) for b in self.mason.ops}
        return sum(1 for d in bk if d in ms), len(bk)

    def caps_diffs(self) -> list[tuple[str, list[str], list[str]]]:
        """(digest, BuildKit's caps, mason's) for each op both have whose metadata caps differ;
        the terminal ops compared with each other."""
        if not self.both_ok:
            return []
        from mason.ir.codec import digest_of
        from mason.ir.llb_pb import pb

        bk, ms = pb().Definition.FromString(self.buildkit.data), pb().Definition.FromString(self.mason.data)
        bk_term, ms_term = digest_of(self.buildkit.ops[-1]), digest_of(self.mason.ops[-1])
        out = []
        for dg in {digest_of(b) for b in self.buildkit.ops}:
            other = ms_term if dg == bk_term else dg
            if other not in ms.metadata and dg != bk_term:
                continue
            a, b = sorted(bk.metadata[dg].caps), sorted(ms.metadata[other].caps)
            if a != b:
                out.append((dg, a, b))
        return out

    @property
    def identical(self) -> bool:
        if not self.both_ok:
            return False
        from mason.ir.codec import digest_of

        return sorted(map(digest_of, self.buildkit.ops)) == sorted(map(digest_of, self.mason.ops))


def compare(case: Case) -> Comparison:
    with tempfile.TemporaryDirectory(prefix="mason-conf-") as d:
        bk = df2llb(case, Path(d) / "bk")
        ms = mason(case, Path(d) / "ms")
    return Comparison(case, bk, ms)


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    results = [compare(c) for c in all_cases()]
    ops_same = ops_total = files_same = files_total = 0
    only_bk = only_ms = both_err = caps_bad = 0
    for r in results:
        if r.both_ok:
            cd = r.caps_diffs()
            caps_bad += bool(cd)
            if verbose:
                for dg, a, b in cd:
                    print(f"CAPS {r.case.id} {dg[7:19]}: BuildKit {a} mason {b}")
            s, t = r.op_counts()
            ops_same, ops_total = ops_same + s, ops_total + t
            files_total += 1
            files_same += r.identical
            if verbose and not r.identical:
                print(f"DIFF {r.case.id}: {s}/{t} ops")
        elif r.buildkit.data is None and r.mason.data is None:
            both_err += 1
        elif r.buildkit.data is None:
            only_ms += 1
            if verbose:
                print(f"MASON-ONLY {r.case.id}: BuildKit: {(r.buildkit.error or '')[:200]}")
        else:
            only_bk += 1
            if verbose:
                print(f"BUILDKIT-ONLY {r.case.id}: mason: {(r.mason.error or '')[:200]}")
    print(f"cases: {len(results)}; both lower: {files_total}; both reject: {both_err}; "
          f"only BuildKit lowers: {only_bk}; only mason lowers: {only_ms}")
    print(f"digest-identical ops: {ops_same}/{ops_total}")
    print(f"digest-identical files: {files_same}/{files_total}")
    print(f"files whose caps differ on a common op (or the terminal): {caps_bad}/{files_total}")
    if "--write" in argv:
        same = {r.case.key: r.case.id for r in results if r.identical}
        IDENTICAL.write_text(json.dumps(same, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(same)} identical files in {IDENTICAL}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
