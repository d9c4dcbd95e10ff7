"""The shell the lifecycle steps run (generated per project, so the graph says exactly what
runs). Every step runs on the builder image's ``/bin/sh``; the launcher on the run image's.

Paths: the app at ``/workspace``; buildpack *k* (its position in the project's groups) staged at
``/cnb/mason/bp/K`` with ``bin/detect`` and ``bin/build``; its layers at ``/layers/bpK``; the
platform directory (``env/NAME`` files) at ``/platform``; detection writes ``/detect/group`` (the
chosen buildpacks' numbers) and ``/detect/plan/K.toml``; a buildpack's cache layers persist in
its cache mount at ``/cache``.
"""

from __future__ import annotations

__all__ = ["detect_script", "build_script", "export_script", "LAUNCHER", "BP_ROOT", "LAUNCHER_PATH"]

BP_ROOT = "/cnb/mason/bp"
LAUNCHER_PATH = "/cnb/lifecycle/launcher"
_TRUE = "[[:space:]]*=[[:space:]]*true"


def q(s: str) -> str:
    """One shell word."""
    return "'" + s.replace("'", "'\\''") + "'"


def detect_script(groups: list[list[tuple[int, str, bool]]]) -> str:
    """Detection in order: each group's buildpacks (number, label, optional); exit 0 passes,
    100 fails (dropped if optional, else the group fails), anything else fails the build. The
    first group that passes is written to /detect/group."""
    out = ["set -u", "mkdir -p /detect/plan", "cd /workspace"]
    for n, group in enumerate(groups, 1):
        out.append(f"echo '===> DETECT group {n}'; ok=1; chosen=''")
        for k, label, optional in group:
            bp = f"{BP_ROOT}/{k}"
            out += [
                "if [ $ok = 1 ]; then",
                f"  : > /detect/plan/{k}.toml",
                f"  CNB_BUILDPACK_DIR={bp} CNB_PLATFORM_DIR=/platform CNB_BUILD_PLAN_PATH=/detect/plan/{k}.toml "
                f"{bp}/bin/detect /platform /detect/plan/{k}.toml; rc=$?",
                "  case $rc in",
                f"    0) echo {q('pass: ' + label)}; chosen=\"$chosen {k}\";;",
                f"    100) echo {q('fail: ' + label + (' (optional)' if optional else ''))}"
                + ("" if optional else "; ok=0") + ";;",
                f"    *) echo {q('error: detect of buildpack ' + label + ' exited with code ')}\"$rc\" >&2; exit 1;;",
                "  esac",
                "fi",
            ]
        out.append('if [ $ok = 1 ] && [ -n "$chosen" ]; then printf \'%s\\n\' $chosen > /detect/group; exit 0; fi')
    out.append("echo 'error: no buildpack group passed detection' >&2; exit 1")
    return "\n".join(out) + "\n"


def build_script(k: int, label: str, earlier: list[int]) -> str:
    """Build of buildpack ``k`` (skipped when detection did not choose it): its cache layers
    restored from /cache, the ``build`` layers of the buildpacks before it on PATH and
    LD_LIBRARY_PATH, ``bin/build LAYERS PLATFORM PLAN``, then its ``cache`` layers saved."""
    bp, layers = f"{BP_ROOT}/{k}", f"/layers/bp{k}"
    out = [
        "set -eu",
        f"grep -qx {k} /detect/group || {{ echo {q('skip: ' + label + ' (not in the detected group)')}; exit 0; }}",
        f"L={layers}; mkdir -p \"$L\"",
        "for t in /cache/*.toml; do [ -e \"$t\" ] || continue; n=$(basename \"$t\" .toml)",
        "  rm -rf \"$L/$n\" \"$L/$n.toml\"; if [ -d \"/cache/$n\" ]; then cp -a \"/cache/$n\" \"$L/$n\"; fi",
        "  cp \"$t\" \"$L/$n.toml\"; echo \"restored cache layer $n\"; done",
    ]
    for e in earlier:
        out += [
            f"for t in /layers/bp{e}/*.toml; do [ -e \"$t\" ] || continue; d=${{t%.toml}}",
            f"  if grep -q '^[[:space:]]*build{_TRUE}' \"$t\"; then",
            "    if [ -d \"$d/bin\" ]; then PATH=\"$d/bin:$PATH\"; fi",
            "    if [ -d \"$d/lib\" ]; then LD_LIBRARY_PATH=\"$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"; fi",
            "  fi; done",
        ]
    out += [
        "export PATH; if [ -n \"${LD_LIBRARY_PATH:-}\" ]; then export LD_LIBRARY_PATH; fi",
        f"plan=/tmp/mason-bp-plan-{k}.toml; cp /detect/plan/{k}.toml \"$plan\"",
        f"echo {q('===> BUILD ' + label)}",
        "cd /workspace",
        f"CNB_LAYERS_DIR=\"$L\" CNB_PLATFORM_DIR=/platform CNB_BUILD_PLAN_PATH=/detect/plan/{k}.toml "
        f"CNB_BP_PLAN_PATH=\"$plan\" CNB_BUILDPACK_DIR={bp} {bp}/bin/build \"$L\" /platform \"$plan\"",
        "find /cache -mindepth 1 -maxdepth 1 -exec rm -rf {} +",
        "for t in \"$L\"/*.toml; do [ -e \"$t\" ] || continue; n=$(basename \"$t\" .toml)",
        "  case $n in launch|build|store) continue;; esac",
        f"  if grep -q '^[[:space:]]*cache{_TRUE}' \"$t\"; then cp \"$t\" /cache/; "
        "if [ -d \"$L/$n\" ]; then cp -a \"$L/$n\" \"/cache/$n\"; fi; fi; done",
    ]
    return "\n".join(out) + "\n"


# launch.toml processes → /cnb/process/TYPE scripts (one-line TOML values, as buildpacks write them)
_AWK = r"""
function q(s) { gsub(/'/, "'\\''", s); return "'" s "'" }
function words(v,   n, p, i, o) {
  n = split(v, p, "\""); o = ""; for (i = 2; i <= n; i += 2) o = o " " q(p[i]); return o
}
function val(line) { sub(/^[^=]*=[ \t]*/, "", line); return line }
function flush(   f) {
  if (type == "") return
  f = dir "/" type
  if (cmd ~ /^\[/) c = words(cmd); else { gsub(/^"|"[ \t]*$/, "", cmd); c = " /bin/sh -c " q(cmd) " --" }
  printf "#!/bin/sh\nexec%s%s \"$@\"\n", c, words(args) > f; close(f)
  if (def == "true") print type > (dir "/.default"); else if (type == "web") print type > (dir "/.web")
  type = ""; cmd = ""; args = ""; def = ""
}
/^[ \t]*\[\[processes\]\]/ { flush(); inproc = 1; next }
/^[ \t]*\[/ { flush(); inproc = 0; next }
inproc && /^[ \t]*type[ \t]*=/ { v = val($0); n = split(v, p, "\""); type = p[2]; next }
inproc && /^[ \t]*command[ \t]*=/ { cmd = val($0); next }
inproc && /^[ \t]*args[ \t]*=/ { args = val($0); next }
inproc && /^[ \t]*default[ \t]*=/ { def = val($0); gsub(/[ \t]/, "", def); next }
END { flush() }
"""


def export_script(chosen: list[int]) -> str:
    """Each chosen buildpack's ``launch`` layers into its own output (/out/K → one image layer),
    the processes of every ``launch.toml`` into /out/config (``/cnb/process/TYPE``, the default
    one as ``/cnb/process/default``, the launch.toml files kept under /layers/config)."""
    out = ["set -eu", "P=/out/config/cnb/process; mkdir -p \"$P\" /out/config/layers/config"]
    for k in chosen:
        out += [
            f"if grep -qx {k} /detect/group; then",
            f"  mkdir -p /out/{k}/layers/bp{k}",
            f"  for t in /layers/bp{k}/*.toml; do [ -e \"$t\" ] || continue; n=$(basename \"$t\" .toml)",
            "    case $n in launch|build|store) continue;; esac",
            f"    if grep -q '^[[:space:]]*launch{_TRUE}' \"$t\"; then cp \"$t\" /out/{k}/layers/bp{k}/; "
            f"if [ -d /layers/bp{k}/$n ]; then cp -a /layers/bp{k}/$n /out/{k}/layers/bp{k}/$n; fi; "
            "echo \"launch layer $n\"; fi",
            "  done",
            f"  if [ -f /layers/bp{k}/launch.toml ]; then cp /layers/bp{k}/launch.toml "
            f"/out/config/layers/config/launch-{k}.toml; awk -v dir=\"$P\" {q(_AWK)} /layers/bp{k}/launch.toml; fi",
            "fi",
        ]
    out += [
        "d=''; if [ -f \"$P/.default\" ]; then d=$(tail -n 1 \"$P/.default\"); "
        "elif [ -f \"$P/.web\" ]; then d=web; fi",
        "rm -f \"$P/.default\" \"$P/.web\"; chmod 755 \"$P\"/* 2>/dev/null || true",
        "if [ -n \"$d\" ]; then cp \"$P/$d\" \"$P/default\"; echo \"default process: $d\"; fi",
    ]
    return "\n".join(out) + "\n"


LAUNCHER = r"""#!/bin/sh
# mason's CNB launcher: the launch layers' environment, then a process (/cnb/process/TYPE) or
# the command given.
for t in /layers/bp*/*.toml; do
  [ -e "$t" ] || continue
  d=${t%.toml}
  if [ -d "$d/bin" ]; then PATH="$d/bin:$PATH"; fi
  if [ -d "$d/lib" ]; then LD_LIBRARY_PATH="$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
  for e in "$d/env" "$d/env.launch"; do
    [ -d "$e" ] || continue
    for f in "$e"/*; do
      [ -f "$f" ] || continue
      n=$(basename "$f"); v=$(cat "$f")
      case $n in
        *.default) n=${n%.default}; eval "[ -n \"\${$n+x}\" ]" || export "$n=$v";;
        *.append) n=${n%.append}; eval "o=\${$n:-}"; export "$n=$o$v";;
        *.prepend) n=${n%.prepend}; eval "o=\${$n:-}"; export "$n=$v$o";;
        *.delim) ;;
        *) export "${n%.override}=$v";;
      esac
    done
  done
done
export PATH
if [ -n "${LD_LIBRARY_PATH:-}" ]; then export LD_LIBRARY_PATH; fi
cd /workspace 2>/dev/null || true
if [ $# -gt 0 ]; then
  case $1 in */*) ;; *) if [ -x "/cnb/process/$1" ]; then p=$1; shift; exec "/cnb/process/$p" "$@"; fi;; esac
  exec "$@"
fi
if [ -x /cnb/process/default ]; then exec /cnb/process/default; fi
echo "launcher: the image has no default process (no launch.toml process is default = true or type web)" >&2
exit 1
"""
