"""JSON dump of a Definition, in the shape of BuildKit v0.32.2's ``buildctl debug dump-llb``.

One object per op per line, in ``def`` order: ``{"Op":{…},"Digest":"sha256:…","OpMetadata":{…}}``.
BuildKit prints its Go structs with ``encoding/json``, so this mirrors Go's rules rather than
protobuf's JSON mapping (checked against ``buildctl debug dump-llb`` on generated Definitions):

* keys are the proto field names, in declaration order; map keys sorted;
* a oneof is one key named after the oneof in Go's CamelCase (``Op``, ``Action``, ``User``)
  holding ``{"<field>": value}``, or ``{}`` when unset (the terminal op's ``"Op":{}``);
* every field is ``omitempty`` (zero scalars, empty lists and maps, absent messages are left
  out; a present empty message prints ``{}``) except ``FileAction``'s ``input``,
  ``secondaryInput`` and ``output``, which always print — so a root mount is ``{"dest":"/"}``
  while a file action shows ``"input":0``;
* enums and 64-bit integers are JSON numbers, bytes are base64;
* strings escape as Go's ``encoding/json`` does (:func:`mason.ir.golang.go_json`).

Deliberate differences, where buildctl v0.32.2 prints less than the op holds: a symlink file
action prints its fields (buildctl prints ``"Action":{}``), an owner given by id prints
``{"byID":N}`` (buildctl prints ``"User":{}`` whatever the id), and mason's ``ConfigOp`` prints as
``"config"`` (BuildKit does not know the field). Before v0.17 (gogo structs) BuildKit printed
zero indices (``"index":0``) and the terminal op as ``"Op":null``; ``../shared/corpus/buildkit-llb``
has that shape.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Iterable

from google.protobuf.descriptor import FieldDescriptor

from mason.backends.dump.model import DumpedOp
from mason.ir.golang import go_json

# (message, field) pairs that print even when zero (the rest is omitempty).
ALWAYS_PRINTED: frozenset[tuple[str, str]] = frozenset(
    {
        ("FileAction", "input"),
        ("FileAction", "secondaryInput"),
        ("FileAction", "output"),
    }
)

_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_BYTES = FieldDescriptor.TYPE_BYTES

# A plan per message type: ("field", name, kind, always) | ("oneof", go_name, oneof_name).
_plans: dict[str, list[tuple]] = {}


def _kind(f: FieldDescriptor) -> str:
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        value = f.message_type.fields_by_name["value"]
        return "map_msg" if value.type == _MESSAGE else "map"
    # ``is_repeated`` is protobuf 6+; older releases only have ``label``
    rep = f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED
    if f.type == _MESSAGE:
        return "rep_msg" if rep else "msg"
    if f.type == _BYTES:
        return "rep_bytes" if rep else "bytes"
    return "rep" if rep else "scalar"


def _plan(desc: Any) -> list[tuple]:
    plan = _plans.get(desc.full_name)
    if plan is not None:
        return plan
    plan = []
    seen_oneofs: set[str] = set()
    for f in desc.fields:
        oneof = f.containing_oneof
        if oneof is not None:
            if oneof.name not in seen_oneofs:
                seen_oneofs.add(oneof.name)
                plan.append(("oneof", _go_name(oneof.name), oneof.name))
            continue
        plan.append(("field", f.name, _kind(f), (desc.name, f.name) in ALWAYS_PRINTED))
    _plans[desc.full_name] = plan
    return plan


def _go_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def message_to_go(msg: Any) -> dict:
    """``msg`` as BuildKit's Go structs marshal it with encoding/json (as a Python dict)."""
    out: dict[str, Any] = {}
    for entry in _plan(msg.DESCRIPTOR):
        if entry[0] == "oneof":
            _, go_name, oneof_name = entry
            which = msg.WhichOneof(oneof_name)
            if which is None:
                out[go_name] = {}
                continue
            f = msg.DESCRIPTOR.fields_by_name[which]
            value = getattr(msg, which)
            if f.type == _MESSAGE:
                out[go_name] = {which: message_to_go(value)}
            elif value:  # the wrapper's field is omitempty: byID 0 prints as {}
                out[go_name] = {which: _b64(value) if f.type == _BYTES else value}
            else:
                out[go_name] = {}
            continue
        _, name, kind, always = entry
        if kind == "msg":
            if msg.HasField(name):
                out[name] = message_to_go(getattr(msg, name))
        elif kind == "scalar":
            value = getattr(msg, name)
            if value or always:
                out[name] = value
        elif kind == "rep":
            value = getattr(msg, name)
            if value:
                out[name] = list(value)
        elif kind == "rep_msg":
            value = getattr(msg, name)
            if value:
                out[name] = [message_to_go(v) for v in value]
        elif kind == "map":
            value = getattr(msg, name)
            if value:
                out[name] = {k: value[k] for k in sorted(value)}
        elif kind == "map_msg":
            value = getattr(msg, name)
            if value:
                out[name] = {k: message_to_go(value[k]) for k in sorted(value)}
        elif kind == "bytes":
            value = getattr(msg, name)
            if value or always:
                out[name] = _b64(value)
        else:  # rep_bytes
            value = getattr(msg, name)
            if value:
                out[name] = [_b64(v) for v in value]
    return out


def record_to_go(rec: DumpedOp) -> dict:
    """One line of ``dump-llb``: the op, its digest, its metadata (``{}`` when it has none)."""
    return {
        "Op": message_to_go(rec.op),
        "Digest": rec.digest,
        "OpMetadata": message_to_go(rec.metadata) if rec.metadata is not None else {},
    }


def dump_json(records: Iterable[DumpedOp], *, pretty: bool = False) -> str:
    """``dump-llb`` output: one compact JSON object per line; or, with ``pretty``, one indented
    JSON array (the corpus's ``NAME.pretty.json``, as ``jq -s .`` prints it)."""
    if pretty:
        return json.dumps([record_to_go(r) for r in records], indent=2, ensure_ascii=False) + "\n"
    return "".join(go_json(record_to_go(r)) + "\n" for r in records)
