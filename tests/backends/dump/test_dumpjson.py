"""JSON dump: BuildKit v0.32.2's ``dump-llb`` output in the corpus, and on ops the corpus lacks
(merge, diff, mkfile bytes, chown) what ``../shared/tools/buildkit/buildctl debug dump-llb`` prints
for the same Definition; Go's JSON rules on mason's ConfigOp."""

from __future__ import annotations

import json
import subprocess

import pytest

from mason.backends.dump import dump_definition
from mason.backends.dump.dumpjson import go_json
from mason.ir import golang
from mason.ir.llb_pb import pb
from tests.backends.dump.llbdata import CORPUS, build_definition, corpus_names, digests_of

P = pb()
PLATFORM = P.Platform(Architecture="amd64", OS="linux")
IMAGE = "docker-image://docker.io/library/alpine:latest"
BUILDCTL = CORPUS.parents[1] / "tools" / "buildkit" / "buildctl"  # BuildKit v0.32.2


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_json_matches_dump_llb(name: str) -> None:
    out = dump_definition((CORPUS / f"{name}.llb").read_bytes(), "json")
    expected = (CORPUS / f"{name}.json").read_text()
    assert _lines(out) == _lines(expected)
    assert out == expected  # byte for byte, Go's escaping and key order included


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_pretty_json(name: str) -> None:
    out = dump_definition((CORPUS / f"{name}.llb").read_bytes(), "json", pretty=True)
    assert json.loads(out) == _lines((CORPUS / f"{name}.json").read_text())


def _dump(ops: list, metadata: dict | None = None) -> list[dict]:
    return _lines(dump_definition(build_definition(ops, metadata), "json"))


def _same_as_buildctl(data: bytes) -> list[dict]:
    """mason's dump of ``data`` is ``buildctl debug dump-llb``'s (BuildKit v0.32.2, run here)
    byte for byte; the parsed lines are returned for the test's own checks."""
    out = dump_definition(data, "json")
    bk = subprocess.run([str(BUILDCTL), "debug", "dump-llb"], input=data, capture_output=True, check=True)
    assert out == bk.stdout.decode()
    return _lines(out)


def test_terminal_op_and_missing_metadata() -> None:
    src = P.Op(source=P.SourceOp(identifier=IMAGE), platform=PLATFORM)
    data = build_definition([src])
    src_d, term_d = digests_of(data)
    lines = _same_as_buildctl(data)
    assert lines == [
        {"Op": {"Op": {"source": {"identifier": IMAGE}}, "platform": {"Architecture": "amd64", "OS": "linux"}},
         "Digest": src_d, "OpMetadata": {}},
        {"Op": {"inputs": [{"digest": src_d}], "Op": {}}, "Digest": term_d, "OpMetadata": {}},
    ]


def test_merge_and_diff_print_their_input_indices() -> None:
    a = P.Op(source=P.SourceOp(identifier=IMAGE))
    b = P.Op(source=P.SourceOp(identifier="local://context"))
    merge = P.Op(inputs=[P.Input(digest="#0"), P.Input(digest="#1")],
                 merge=P.MergeOp(inputs=[P.MergeInput(input=0), P.MergeInput(input=1)]))
    diff = P.Op(inputs=[P.Input(digest="#0"), P.Input(digest="#2")],
                diff=P.DiffOp(lower=P.LowerDiffInput(input=0), upper=P.UpperDiffInput(input=1)))
    lines = _same_as_buildctl(build_definition([a, b, merge, diff]))
    # zero indices are omitempty in v0.32.2 (protobuf-go structs)
    assert lines[2]["Op"]["Op"] == {"merge": {"inputs": [{}, {"input": 1}]}}
    assert lines[3]["Op"]["Op"] == {"diff": {"lower": {}, "upper": {"input": 1}}}


def test_file_actions_bytes_owner_and_always_printed_indices() -> None:
    root = P.Op(source=P.SourceOp(identifier=IMAGE))
    owner = P.ChownOpt(user=P.UserOpt(byID=0), group=P.UserOpt(byName=P.NamedUserOpt(name="app", input=0)))
    actions = [
        P.FileAction(input=0, secondaryInput=-1, output=-1,
                     mkfile=P.FileActionMkFile(path="/a", mode=0o644, data=b"hi\n", owner=owner, timestamp=-1)),
        P.FileAction(input=1, secondaryInput=-1, output=0, rm=P.FileActionRm(path="/b", allowNotFound=True)),
    ]
    file = P.Op(inputs=[P.Input(digest="#0")], file=P.FileOp(actions=actions))
    got = _same_as_buildctl(build_definition([root, file]))[1]["Op"]["Op"]["file"]["actions"]
    assert got == [
        {"input": 0, "secondaryInput": -1, "output": -1,
         "Action": {"mkfile": {"path": "/a", "mode": 420, "data": "aGkK",
                               # byID 0: the Go oneof wrapper's field is omitempty, so {}
                               "owner": {"user": {"User": {}},
                                         "group": {"User": {"byName": {"name": "app"}}}},
                               "timestamp": -1}}},
        {"input": 1, "secondaryInput": -1, "output": 0, "Action": {"rm": {"path": "/b", "allowNotFound": True}}},
    ]


def test_symlink_prints_its_fields_where_buildctl_prints_nothing() -> None:
    """The one deliberate difference: buildctl v0.32.2 prints a symlink action as ``"Action":{}``."""
    root = P.Op(source=P.SourceOp(identifier=IMAGE))
    act = P.FileAction(input=0, secondaryInput=-1, output=0, symlink=P.FileActionSymlink(oldpath="/a", newpath="/c"))
    data = build_definition([root, P.Op(inputs=[P.Input(digest="#0")], file=P.FileOp(actions=[act]))])
    out = _lines(dump_definition(data, "json"))
    bk = _lines(subprocess.run([str(BUILDCTL), "debug", "dump-llb"], input=data, capture_output=True,
                               check=True).stdout.decode())
    assert bk[1]["Op"]["Op"]["file"]["actions"][0]["Action"] == {}
    assert out[1]["Op"]["Op"]["file"]["actions"][0]["Action"] == {"symlink": {"oldpath": "/a", "newpath": "/c"}}
    bk[1]["Op"]["Op"]["file"]["actions"][0]["Action"] = out[1]["Op"]["Op"]["file"]["actions"][0]["Action"]
    assert out == bk


def test_exec_enums_and_empty_messages() -> None:
    root = P.Op(source=P.SourceOp(identifier=IMAGE))
    ex = P.Op(
        inputs=[P.Input(digest="#0")],
        exec=P.ExecOp(
            meta=P.Meta(args=["sh"], cwd="/", proxy_env=P.ProxyEnv()),
            mounts=[P.Mount(input=0, dest="/", output=0),
                    P.Mount(input=-1, dest="/run/s", output=-1, mountType=1,
                            secretOpt=P.SecretOpt(ID="tok", mode=0o400))],
            network=1, security=1,
        ),
        constraints=P.WorkerConstraints(),
    )
    got = _same_as_buildctl(build_definition([root, ex]))[1]["Op"]
    assert got == {
        "inputs": [{"digest": got["inputs"][0]["digest"]}],
        "Op": {"exec": {"meta": {"args": ["sh"], "cwd": "/", "proxy_env": {}},
                        "mounts": [{"dest": "/"},
                                   {"input": -1, "dest": "/run/s", "output": -1, "mountType": 1,
                                    "secretOpt": {"ID": "tok", "mode": 256}}],
                        "network": 1, "security": 1}},
        "constraints": {},
    }


def test_config_op_and_metadata_fields() -> None:
    root = P.Op(source=P.SourceOp(identifier=IMAGE))
    cfg = P.Op(inputs=[P.Input(digest="#0")],
               config=P.ConfigOp(changes=[P.ConfigChange(action="env", key="A", value="1")], created_by="ENV A=1"))
    md = P.OpMetadata(ignore_cache=True, description={"b": "2", "a": "1"}, caps={"z": True, "a": True},
                      progress_group=P.ProgressGroup(id="g"))
    md.export_cache.SetInParent()
    lines = _dump([root, cfg], {1: md})
    assert lines[1]["Op"]["Op"] == {"config": {"changes": [{"action": "env", "key": "A", "value": "1"}],
                                               "created_by": "ENV A=1"}}
    assert lines[1]["OpMetadata"] == {"ignore_cache": True, "description": {"a": "1", "b": "2"},
                                      "export_cache": {}, "caps": {"a": True, "z": True},
                                      "progress_group": {"id": "g"}}
    # maps print with sorted keys, as Go does
    assert list(lines[1]["OpMetadata"]["description"]) == ["a", "b"]


def test_go_string_escaping_is_buildctls() -> None:
    """Strings with every class of escape, inside the op and inside a followpaths attribute
    (JSON in JSON): byte for byte what buildctl v0.32.2 (Go 1.27: ``\\b``, ``\\f`` short, other
    controls ``\\u00XX``, ``<>&`` and U+2028/9 escaped) prints."""
    text = "a\bb\fc\n\t\r\x01\x1f\x7f<>&\u2028\u2029\"\\é"
    src = P.Op(source=P.SourceOp(identifier="local://context",
                                 attrs={"local.followpaths": golang.go_json([text, "x"])}))
    ex = P.Op(inputs=[P.Input(digest="#0")],
              exec=P.ExecOp(meta=P.Meta(args=["/bin/echo", text], cwd="/"), mounts=[P.Mount(input=0, dest="/")]))
    md = P.OpMetadata(description={"llb.customname": text})
    lines = _same_as_buildctl(build_definition([src, ex], {1: md}))
    assert lines[1]["Op"]["Op"]["exec"]["meta"]["args"][1] == text
    assert go_json is golang.go_json


def test_go_json_literals() -> None:
    assert go_json({"n": None, "t": True, "i": -1, "l": []}) == '{"n":null,"t":true,"i":-1,"l":[]}'
