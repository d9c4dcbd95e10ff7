"""Build checks during a normal build, as BuildKit's frontend runs them: the warnings print
(location, source line, caret, explanation) and the build goes on; json progress carries each as
a warning event with its rule and location; ``# check=error=true`` fails the build before any
step runs; the base image's ENV (from mason's store / the registry) is seen by UndefinedVar."""

from __future__ import annotations

import json

from mason.cli.progress import event_from_json


def write(ctx, text):
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(text)
    return ctx


def test_build_prints_check_warnings_and_builds(build_env, tmp_path):
    ctx = write(tmp_path / "ctx", f"FROM {build_env.base} AS Base\nRUN echo $PATH > /p\nMAINTAINER me\n")
    out = tmp_path / "out"
    p = build_env.cli("build", "--progress=plain", "-o", f"type=local,dest={out}", str(ctx))
    assert p.returncode == 0, p.stderr
    assert "Dockerfile:1:" in p.stderr and "warning: StageNameCasing: Stage name 'Base' should be lowercase" in p.stderr
    assert "Stage names should be lowercase" in p.stderr and "^^^^" in p.stderr
    assert "warning: MaintainerDeprecated" in p.stderr
    # PATH comes from the base image's config: UndefinedVar knows it
    assert "UndefinedVar" not in p.stderr
    assert (out / "p").read_text().startswith("/")


def test_json_progress_carries_check_warnings(build_env, tmp_path):
    ctx = write(tmp_path / "ctx", f"FROM {build_env.base}\nENV A=$NOPE\n")
    p = build_env.cli("build", "--progress=json", "-o", f"type=local,dest={tmp_path / 'out'}", str(ctx))
    assert p.returncode == 0, p.stderr
    objs = [json.loads(line) for line in p.stderr.splitlines()]
    warns = [o for o in objs if o["type"] == "warning" and o.get("rule")]
    assert [(o["rule"], o["location"].rsplit(":", 2)[1]) for o in warns] == [("UndefinedVar", "2")]
    ev = event_from_json(warns[0])
    assert ev.rule == "UndefinedVar" and "Usage of undefined variable '$NOPE'" in ev.message


def test_error_true_fails_the_build_before_any_step(build_env, tmp_path):
    ctx = write(tmp_path / "ctx", f"# check=error=true\nFROM {build_env.base} AS Base\nRUN touch /ran\n")
    out = tmp_path / "out"
    p = build_env.cli("build", "--progress=plain", "-o", f"type=local,dest={out}", str(ctx))
    assert p.returncode == 1
    assert "error: lint violation found for rules: StageNameCasing" in p.stderr
    assert "RUN touch /ran" not in p.stderr and not out.exists()
    # skipping the rule lets it build
    write(ctx, f"# check=error=true;skip=StageNameCasing\nFROM {build_env.base} AS Base\nRUN touch /ran\n")
    p = build_env.cli("build", "--progress=plain", "-o", f"type=local,dest={out}", str(ctx))
    assert p.returncode == 0, p.stderr
    assert (out / "ran").exists()
