"""``--output`` parsing and the checks made before a build runs (unit tests, no daemons)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mason.backends.exporters.outputs import OutputSpec, check_outputs, parse_output, parse_outputs
from mason.ir.errors import MasonError


@pytest.mark.parametrize("spec, expected", [
    ("type=image,name=hello", OutputSpec("image", ("docker.io/library/hello:latest",))),
    ("type=image,name=hello,push=true", OutputSpec("image", ("docker.io/library/hello:latest",), push=True)),
    ('type=image,"name=a,b:2"', OutputSpec("image", ("docker.io/library/a:latest", "docker.io/library/b:2"))),
    ("type=registry,name=127.0.0.1:5000/x:1",
     OutputSpec("registry", ("127.0.0.1:5000/x:1",))),
    ("type=oci,dest=out.tar", OutputSpec("oci", dest="out.tar")),
    ("type=docker,dest=out.tar,name=app", OutputSpec("docker", ("docker.io/library/app:latest",), dest="out.tar")),
    ("type=local,dest=out", OutputSpec("local", dest="out")),
    ("type=local,dest=out,preserve-owner=true", OutputSpec("local", dest="out", preserve_owner=True)),
    ("type=local,dest=out,preserve-owner=false", OutputSpec("local", dest="out")),
    ("type=tar,dest=-", OutputSpec("tar", dest="-")),
    ("TYPE=Local, dest=out", OutputSpec("local", dest="out")),
    ("outdir", OutputSpec("local", dest="outdir")),
    ("-", OutputSpec("tar", dest="-")),
])
def test_parse_output(spec: str, expected: OutputSpec) -> None:
    assert parse_output(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("type=foo", "unknown output type 'foo' (valid: docker, image, local, oci, registry, tar)"),
    ("type=oci", "output type=oci needs dest=PATH"),
    ("type=local,dest=", "output type=local needs dest=PATH"),
    ("type=registry", "output type=registry needs name=NAME"),
    ("type=local,dest=x,name=y", "output type=local: unknown option 'name' (valid: dest, preserve-owner)"),
    ("type=image,push=maybe,name=x", "output type=image: push must be true or false, not 'maybe'"),
    ("type=image,push=true", "output type=image,push=true needs name=NAME"),
    ("dest=x", "invalid output 'dest=x': type is missing"),
    ("type=local,dest", "invalid output 'type=local,dest': 'dest' is not KEY=VALUE"),
    ("type=local,dest=a,dest=b", "invalid output 'type=local,dest=a,dest=b': dest given twice"),
    ("type=local,dest=-", "output type=local cannot write to stdout (dest=-)"),
    ("type=local,dest=x,preserve-owner=yes", "output type=local: preserve-owner must be true or false, not 'yes'"),
    ("type=tar,dest=x,preserve-owner=true", "output type=tar: unknown option 'preserve-owner' (valid: dest)"),
    ("type=image,name=Bad Name", "output type=image: invalid image reference 'Bad Name': contains white space"),
    ("", "invalid output '': expected type=TYPE[,KEY=VALUE...] or a directory"),
])
def test_bad_output_specs(spec: str, message: str) -> None:
    with pytest.raises(MasonError) as e:
        parse_output(spec)
    assert e.value.message == message


def test_preserve_owner_needs_root(monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(MasonError, match="output type=local: preserve-owner=true needs root"):
        parse_output("type=local,dest=x,preserve-owner=true")
    assert parse_output("type=local,dest=x") == OutputSpec("local", dest="x")


def test_tags_name_image_outputs() -> None:
    assert parse_outputs([], ["app:1"]) == [OutputSpec("image", ("docker.io/library/app:1",))]
    assert parse_outputs([]) == []
    outs = parse_outputs(["type=oci,dest=o.tar", "type=local,dest=d", "type=image,name=other"], ["app"])
    assert [o.names for o in outs] == [("docker.io/library/app:latest",), (), ("docker.io/library/other:latest",)]


def test_check_outputs_unwritable_paths(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    cases = [
        (f"type=oci,dest={tmp_path}/missing/o.tar",
         f"output type=oci: cannot write {tmp_path}/missing/o.tar: {tmp_path}/missing does not exist"),
        (f"type=docker,dest={tmp_path}/file/o.tar",
         f"output type=docker: cannot write {tmp_path}/file/o.tar: {tmp_path}/file is not a directory"),
        (f"type=tar,dest={tmp_path}", f"output type=tar: dest {tmp_path} is a directory"),
        (f"type=local,dest={tmp_path}/file", f"output type=local: dest {tmp_path}/file is not a directory"),
        (f"type=local,dest={tmp_path}/file/sub", f"output type=local: cannot create {tmp_path}/file/sub: "
                                                 f"{tmp_path}/file is not a directory"),
        ("type=oci,dest=/proc/o.tar", "output type=oci: cannot write /proc/o.tar: No such file or directory"),
    ]
    for spec, message in cases:
        with pytest.raises(MasonError) as e:
            check_outputs([parse_output(spec)])
        assert e.value.message == message, spec
    check_outputs([parse_output(f"type=oci,dest={tmp_path}/o.tar"), parse_output(f"{tmp_path}/new/dir")])
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # checking leaves nothing behind
    with pytest.raises(MasonError) as e:
        check_outputs(parse_outputs([f"type=oci,dest={tmp_path}/o.tar", f"type=tar,dest={tmp_path}/o.tar"]))
    assert e.value.message == f"outputs type=oci and type=tar both write {tmp_path}/o.tar"


def test_check_outputs_unreachable_registry() -> None:
    with pytest.raises(MasonError) as e:
        check_outputs([parse_output("type=registry,name=127.0.0.1:1/app:1")])
    assert e.value.message.startswith("output type=registry: registry 127.0.0.1:1 is unreachable: ")


def test_source_date_epoch_from_build_args_then_environment() -> None:
    from mason.backends.exporters.outputs import source_date_epoch

    assert source_date_epoch({"SOURCE_DATE_EPOCH": "10"}, {"SOURCE_DATE_EPOCH": "20"}) == 10
    assert source_date_epoch({}, {"SOURCE_DATE_EPOCH": "20"}) == 20
    assert source_date_epoch({}, {}) is None
    assert source_date_epoch({"SOURCE_DATE_EPOCH": ""}, {}) is None
    with pytest.raises(MasonError) as e:
        source_date_epoch({"SOURCE_DATE_EPOCH": "yesterday"}, {})
    assert e.value.message == ("invalid SOURCE_DATE_EPOCH 'yesterday': expected seconds since 1970 "
                               "(a non-negative integer)")
