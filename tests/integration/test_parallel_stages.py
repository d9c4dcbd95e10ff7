"""Independent stages run at the same time: two stages each ``RUN sleep 2``, writing
``/proc/uptime`` (the host kernel's clock: containers share it) when they start and end; a final
stage copies both files; read from the exported result (``-o type=local``), the two intervals
overlap. (A nonce per test: results are shared by cache key across state roots on one
containerd, and a result made in parallel would otherwise answer the ``--jobs 1`` test.)"""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DF = """\
FROM {base} AS left
RUN mkdir /out && echo left > /out/name && echo {nonce} > /out/nonce && cut -d' ' -f1 /proc/uptime > /out/start && sleep 2 && cut -d' ' -f1 /proc/uptime > /out/end

FROM {base} AS right
RUN mkdir /out && echo right > /out/name && echo {nonce} > /out/nonce && cut -d' ' -f1 /proc/uptime > /out/start && sleep 2 && cut -d' ' -f1 /proc/uptime > /out/end

FROM scratch
COPY --from=left /out /left
COPY --from=right /out /right
"""


def interval(d) -> tuple[float, float]:
    assert (d / "name").read_text().strip() == d.name  # two different steps (dedupe would merge equal ones)
    return float((d / "start").read_text()), float((d / "end").read_text())


def test_independent_stages_overlap(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=env.base, nonce=uuid.uuid4().hex)})
    out = tmp_path / "out"
    p = env.cli("build", "--progress=plain", "--jobs", "4", "-o", f"type=local,dest={out}", str(ctx))
    assert p.returncode == 0, p.stderr
    (ls, le), (rs, re_) = interval(out / "left"), interval(out / "right")
    assert le - ls >= 2 and re_ - rs >= 2
    assert ls < re_ and rs < le, ((ls, le), (rs, re_))  # the intervals overlap


def test_jobs_1_runs_them_one_after_the_other(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=env.base, nonce=uuid.uuid4().hex)})
    out = tmp_path / "out"
    p = env.cli("build", "--jobs", "1", "-o", f"type=local,dest={out}", str(ctx))
    assert p.returncode == 0, p.stderr
    (ls, le), (rs, re_) = interval(out / "left"), interval(out / "right")
    assert le <= rs or re_ <= ls, ((ls, le), (rs, re_))
