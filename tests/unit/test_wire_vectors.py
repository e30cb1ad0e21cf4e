"""Golden vectors (docs/protocol/vectors.json): the spec, msgpack+struct alone, and fabric.wire agree.

The first test deliberately does not import fabric.wire: it decodes every vector the way a peer in another
language would, from the specification. The second checks fabric.wire produces the very same bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import msgpack
import pytest

from tests.support import REPO

DOC = json.loads((REPO / "docs" / "protocol" / "vectors.json").read_text())
VECTORS = DOC["vectors"]
TYPE_IDS = {"HELLO": 1, "WELCOME": 2, "REJECT": 3, "SEND": 4, "CALL": 5, "REPLY": 6, "ERROR": 7, "PING": 8,
            "PONG": 9, "BYE": 10, "BATCH": 11, "PUBLISH": 12, "MEMBERSHIP": 16, "TREE": 17}


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _decode_head_by_spec(head: bytes) -> tuple[int, int, dict[str, Any]]:
    signature, version, mtype = struct.unpack_from("!2sBB", head)
    assert signature == b"\xaa\xfb"
    header = msgpack.unpackb(head[4:], raw=False)
    assert isinstance(header, dict)
    return version, mtype, header


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_decodes_with_msgpack_and_struct_alone(vec: dict[str, Any]) -> None:
    frames = [bytes.fromhex(f) for f in vec["frames"]]
    if vec["topic_frame"]:
        frames = frames[1:]
    version, mtype, header = _decode_head_by_spec(frames[0])
    assert version == DOC["protocol_version"]
    assert mtype == vec["type_id"] == TYPE_IDS[vec["type"]]
    assert header == _from_json(vec["header"])
    assert len(header["s"]) == 16
    if vec["type"] == "BATCH":
        counts = header["f"]
        assert sum(counts) == len(frames) - 1
        pos = 1
        for count in counts:
            _v, inner_type, inner_header = _decode_head_by_spec(frames[pos])
            assert inner_type == TYPE_IDS["SEND"] and inner_header["c"] == "coordination"
            pos += count
    elif vec["type"] in {"SEND", "PUBLISH", "CALL", "REPLY", "MEMBERSHIP", "TREE"}:
        assert len(frames) == 2  # head + one payload frame
        if header.get("ct") == 1 or vec["type"] in {"MEMBERSHIP", "TREE"}:
            msgpack.unpackb(frames[1], raw=False)  # payload is valid msgpack


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_fabric_wire_produces_the_vector_bytes(vec: dict[str, Any]) -> None:
    from fabric import wire

    args = _from_json(vec["args"])
    if vec["constructor"] == "encode_batch":
        messages = [[bytes.fromhex(f) for f in m] for m in vec["args"]["messages"]]
        frames = wire.encode_batch(args["source"], messages)
    else:
        frames = getattr(wire, vec["constructor"])(**args)
    assert [f.hex() for f in frames] == vec["frames"]
    decoded = wire.decode(frames[1:] if vec["topic_frame"] else frames)
    assert decoded.type == vec["type_id"]


def test_every_message_type_has_a_vector() -> None:
    from fabric.wire import MsgType

    assert {t.name for t in MsgType} == {v["type"] for v in VECTORS}
