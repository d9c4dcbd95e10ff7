"""``mason rebase``'s plan without containerd (an in-memory resolver): the graph is a DiffOp of
the old base and the image merged onto the new base, the config keeps the app's and takes the
new base's layers and history, the old base comes from --base or the buildpacks label, and a
wrong or unknown base is one clear error."""

from __future__ import annotations

import json

import pytest

from mason.ir.errors import MasonError
from mason.ir.ops import DiffOp, MergeOp, SourceOp
from mason.ir.resolver import InMemoryResolver
from mason.rebase import LIFECYCLE_LABEL, RebaseRequest, plan


def cfg(diff_ids, history, **config):
    return {"architecture": "amd64", "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}, "history": list(history)}


OLD = cfg(["sha256:" + "a" * 64], [{"created_by": "old base"}], Env=["PATH=/bin"])
NEW = cfg(["sha256:" + "b" * 64, "sha256:" + "c" * 64], [{"created_by": "new 1"}, {"created_by": "new 2"}])


def app(labels=None):
    return cfg(["sha256:" + "a" * 64, "sha256:" + "d" * 64],
               [{"created_by": "old base"}, {"created_by": "ENV X=1", "empty_layer": True}, {"created_by": "app"}],
               Env=["PATH=/bin", "X=1"], Entrypoint=["/app"], Labels=labels or {"l": "v"})


def resolver(image_cfg):
    return InMemoryResolver({"old:1": OLD, "new:2": NEW, "app:1": image_cfg})


def test_plan_is_diff_merged_onto_the_new_base(tmp_path):
    r = resolver(app())
    graph, old, new = plan(RebaseRequest("app:1", "new:2", base="old:1", root=str(tmp_path)), r)
    out = graph.output("default")
    merge = out.ref.op
    assert isinstance(merge, MergeOp)
    first, second = (merge.inputs[i].op for i in merge.merge_inputs)
    assert isinstance(first, SourceOp) and first.identifier == "docker-image://" + new
    assert isinstance(second, DiffOp)
    lower, upper = second.inputs[second.lower].op, second.inputs[second.upper].op
    assert lower.identifier == "docker-image://" + old and "app:1@sha256:" in upper.identifier
    c = out.image_config
    assert c["config"]["Entrypoint"] == ["/app"] and c["config"]["Env"] == ["PATH=/bin", "X=1"]
    assert c["rootfs"]["diff_ids"] == NEW["rootfs"]["diff_ids"] + ["sha256:" + "d" * 64]
    assert [h["created_by"] for h in c["history"]] == ["new 1", "new 2", "ENV X=1", "app"]


def test_plan_takes_the_base_from_the_buildpacks_label(tmp_path):
    label = json.dumps({"runImage": {"image": "old:1", "reference": "docker.io/library/old:1"}, "builder": "b"})
    graph, old, _ = plan(RebaseRequest("app:1", "new:2", root=str(tmp_path)), resolver(app({LIFECYCLE_LABEL: label})))
    assert old.startswith("docker.io/library/old:1@sha256:")
    life = json.loads(graph.output("default").image_config["config"]["Labels"][LIFECYCLE_LABEL])
    assert life["runImage"]["image"] == "new:2" and life["runImage"]["topLayer"] == "sha256:" + "c" * 64
    assert life["builder"] == "b"


def test_unknown_or_wrong_base_is_an_error(tmp_path):
    with pytest.raises(MasonError, match=r"the base of app:1 is not known .* --base"):
        plan(RebaseRequest("app:1", "new:2", root=str(tmp_path)), resolver(app()))
    with pytest.raises(MasonError, match="app:1 is not built on new:2"):
        plan(RebaseRequest("app:1", "old:1", base="new:2", root=str(tmp_path)), resolver(app()))
    with pytest.raises(MasonError, match="rebase: image not found: nope"):
        plan(RebaseRequest("nope", "new:2", root=str(tmp_path)), resolver(app()))
