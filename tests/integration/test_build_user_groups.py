"""``USER`` and the process's groups (issue 10 item 16): a step runs with the supplementary groups
the image's ``/etc/group`` gives its user and with its primary gid among them, as BuildKit's
executor sets them (runc's user lookup, then the primary gid put first unless listed). The same
Dockerfile is built by the session buildkitd (v0.32.2) and by mason, and every step's ``id`` and
``/proc/self/status`` ``Groups:`` line must be the same."""

from __future__ import annotations

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

CASES = {
    # name: USER value (None: no USER instruction, the default user)
    "default": None,
    "root": "root",
    "app": "app",
    "uid": "1000",
    "app-explicit": "app:other",
    "ids": "1000:1600",
    "uid-group": "1000:extra",
    "nobody": "nobody",
    "unknown-uid": "4242",
    "unknown-gid": "app:4343",
}


def _dockerfile(base: str) -> str:
    lines = [f"FROM {base}",
             "RUN echo 'extra:x:1500:app' >> /etc/group && echo 'other:x:1600:nobody,app,root' >> /etc/group"
             " && echo 'wheel:x:10:root' >> /etc/group && mkdir -m 1777 /res"]
    for name, user in CASES.items():
        lines.append(f"USER {user}" if user else "USER root")
        if user is None:
            lines[-1] = "# default user"
        lines.append(f"RUN id > /res/{name} && grep -E '^(Uid|Gid|Groups):' /proc/self/status >> /res/{name}")
        if user is not None:
            lines.append("USER root")
    return "\n".join(lines) + "\n"


def _results(out) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((out / "res").iterdir())}


def test_user_groups_as_buildkit(build_env, buildkitd, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": _dockerfile(build_env.base)})
    mine, theirs = tmp_path / "mason", tmp_path / "buildkit"
    build_env.build(ctx, outputs=(f"type=local,dest={mine}",))
    buildkitd.build_dockerfile(ctx, f"type=local,dest={theirs}")
    got, want = _results(mine), _results(theirs)
    assert set(got) == set(CASES)
    assert got == want, (got, want)
    # and what that means, spelled out
    groups = {k: next(line.split(":", 1)[1].split() for line in v.splitlines() if line.startswith("Groups:"))
              for k, v in got.items()}
    assert got["app"].startswith("uid=1000(app) gid=1000(app) groups=1000(app),1500(extra),1600(other)")
    assert groups == {"default": ["0", "10", "1600"], "root": ["0", "10", "1600"],
                      "app": ["1000", "1500", "1600"], "uid": ["1000", "1500", "1600"],
                      "app-explicit": ["1600"], "ids": ["1600"], "uid-group": ["1500"],
                      "nobody": ["1600", "65534"], "unknown-uid": ["0"], "unknown-gid": ["4343"]}
