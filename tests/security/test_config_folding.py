"""Issue 11 ("20,000 ENV lines take 39 s"): config changes fold in linear time. The ConfigFolder
(an index of Env keys kept across ConfigOps, one config copy per stage) must give exactly what
the per-change scan gave; a 20,000-line ENV/LABEL/ARG Dockerfile lowers to the right config.
(Times are printed by bench/config_fold.py, not asserted here.)"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from mason.ir.imageconfig import ConfigFolder
from mason.ir.ops import ConfigChange


def _reference(cfg: dict, changes: list[ConfigChange]) -> dict:
    """The old semantics of an ``env`` change: replace the first entry with the key, else append."""
    c = cfg.setdefault("config", {})
    for ch in changes:
        env = c.setdefault("Env", [])
        prefix = ch.key + "="
        for i, e in enumerate(env):
            if e == ch.key or e.startswith(prefix):
                env[i] = prefix + ch.value
                break
        else:
            env.append(prefix + ch.value)
    return cfg


_keys = st.sampled_from(["A", "B", "PATH", "A_B", "AB", "X=Y", "X"])
_batches = st.lists(st.lists(st.builds(ConfigChange, action=st.just("env"), key=_keys,
                                       value=st.sampled_from(["", "1", "=", "x=y"])), max_size=4), max_size=12)
_starts = st.lists(st.sampled_from(["A=0", "B", "X=Y=1", "PATH=/bin", "A=dup"]), max_size=5)


@settings(max_examples=300, deadline=None)
@given(_starts, _batches)
def test_folder_matches_the_scan(start, batches):
    ref = {"config": {"Env": list(start)}}
    cfg = copy.deepcopy(ref)
    folder = ConfigFolder(cfg)
    for b in batches:
        _reference(ref, b)
        folder.apply(b)
    assert cfg == ref


def test_folder_after_env_replaced_or_appended():
    cfg = {"config": {"Env": ["A=1"]}}
    f = ConfigFolder(cfg)
    f.apply([ConfigChange("env", "A", "2")])
    f.apply([ConfigChange("set", "Env", '["B=1", "A=9"]')])
    f.apply([ConfigChange("env", "A", "3"), ConfigChange("append", "Env", '["C=1"]'),
             ConfigChange("env", "C", "2"), ConfigChange("env", "D", "4")])
    assert cfg["config"]["Env"] == ["B=1", "A=3", "C=2", "D=4"]


def test_twenty_thousand_env_lines_lower(tmp_path):
    from mason.driver import LowerRequest, lower_request

    n = 20_000
    lines = ["FROM scratch"] + [f"ENV V{i}=v{i}" for i in range(n)] + ["ENV V7=again", "LABEL a=b",
                                                                        "COPY Dockerfile /d"]
    (tmp_path / "Dockerfile").write_text("\n".join(lines) + "\n")
    low = lower_request(LowerRequest(context=str(tmp_path), resolve=False))
    env = low.image_config["config"]["Env"]
    assert len(env) == n + 1 and env[0].startswith("PATH=") and env[8] == "V7=again" and env[-1] == f"V{n - 1}=v{n - 1}"
    assert len([h for h in low.image_config["history"] if h.get("empty_layer")]) == n + 2
