"""Codec: every constructor round-trips; every kind of malformed input gives a typed ProtocolError."""

from __future__ import annotations

import msgpack
import pytest

from fabric import errors, wire
from fabric.wire import MsgType, Role

SRC = bytes(range(16))


def test_send_round_trip_keeps_every_field() -> None:
    frames = wire.send(SRC, "data", b"payload", lane=3, seq=9, content_type=wire.ContentType.MSGPACK, trace="00-ab")
    env = wire.decode(frames)
    assert env.type == MsgType.SEND and env.source == SRC and env.channel == "data" and env.lane == 3
    assert env.header["q"] == 9 and env.header["ct"] == 1 and env.header["x"] == "00-ab"
    assert env.payload == b"payload"


def test_hello_round_trip_and_defaults() -> None:
    env = wire.decode(wire.hello(SRC, role=Role.CLIENT, incarnation=5))
    assert env.header == {"s": SRC, "vn": wire.MIN_VERSION, "vx": wire.MAX_VERSION, "ro": 1, "in": 5}


def test_batch_splits_into_the_original_messages() -> None:
    inner = [wire.send(SRC, "c", bytes([i]), seq=i) for i in range(5)] + [wire.call(SRC, "svc", b"x", msg_id=1)]
    batch = wire.decode(wire.encode_batch(SRC, inner))
    parts = wire.split_batch(batch)
    assert parts == inner
    assert [wire.decode(p).type for p in parts] == [MsgType.SEND] * 5 + [MsgType.CALL]


def test_routing_id_carries_role_node_incarnation_generation_and_lane() -> None:
    rid = wire.routing_id(SRC, 7, role=Role.CLIENT, incarnation=2**40 + 5, generation=3)
    assert rid[0] != 0 and len(rid) == 26
    assert rid.startswith(wire.routing_prefix(SRC, role=Role.CLIENT, incarnation=5))
    assert wire.parse_routing_id(rid) == (Role.CLIENT, SRC, 5, 3, 7)
    # a restart (new incarnation) never presents the routing id of the previous process, nor a new link
    # (new generation) that of an earlier link
    assert wire.routing_id(SRC, 0, incarnation=1) != wire.routing_id(SRC, 0, incarnation=2)
    assert wire.routing_id(SRC, 0, generation=1) != wire.routing_id(SRC, 0, generation=2)
    assert wire.parse_routing_id(b"\x00abcd") is None
    with pytest.raises(ValueError):
        wire.routing_id(b"short", 0)


def _head(mtype: int, header: object, version: int = 1) -> bytes:
    return b"\xaa\xfb" + bytes((version, mtype)) + msgpack.packb(header, use_bin_type=True)


@pytest.mark.parametrize(
    ("frames", "error"),
    [
        ([], errors.TruncatedMessage),
        ([b""], errors.TruncatedMessage),
        ([b"\xaa\xfb\x01"], errors.TruncatedMessage),
        ([b"GET / HTTP/1.1\r\n"], errors.BadSignature),
        ([b"\xaa\xfb\x09\x04\x80"], errors.UnsupportedVersion),
        ([b"\xaa\xfb\x01\xee\x80"], errors.UnknownMessageType),
        ([b"\xaa\xfb\x01\x04\xc1"], errors.MalformedHeader),  # 0xc1 is never valid msgpack
        ([b"\xaa\xfb\x01\x04\x92\x01\x02"], errors.MalformedHeader),  # an array, not a map
        ([_head(4, {"c": "x"})], errors.MalformedHeader),  # no source
        ([_head(4, {"s": b"short", "c": "x"})], errors.MalformedHeader),  # source not 16 octets
        ([_head(4, {"s": SRC})], errors.MalformedHeader),  # SEND without channel
        ([_head(4, {"s": SRC, "c": 5})], errors.MalformedHeader),  # channel of the wrong type
        ([_head(4, {"s": SRC, "c": "x", "l": 300})], errors.MalformedHeader),  # lane out of range
        ([_head(4, {"s": SRC, "c": "x", "l": True})], errors.MalformedHeader),  # bool is not an int here
        ([_head(4, {"s": SRC, "c": "x" * 300})], errors.OversizedMessage),
        ([_head(5, {"s": SRC, "sv": "svc"})], errors.MalformedHeader),  # CALL without id
        ([b"\xaa\xfb\x01\x04" + b"\xde" + b"\x00" * (70 * 1024)], errors.OversizedMessage),
        ([b"\xaa\xfb\x01\x04\xd4\x01\x00"], errors.MalformedHeader),  # msgpack ext type
        ([_head(4, {"s": SRC, "c": "x"}) + b"\x00"], errors.MalformedHeader),  # trailing bytes
        ([_head(4, {"s": SRC, "c": "x"}), *([b"p"] * 65)], errors.OversizedMessage),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_malformed_input_gives_a_typed_protocol_error(frames: list[bytes], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        wire.decode(frames)
    assert isinstance(info.value, errors.ProtocolError)
    assert info.value.category


@pytest.mark.parametrize(
    ("counts", "nframes", "error"),
    [
        ([2, 2], 3, errors.TruncatedMessage),
        ([1], 2, errors.MalformedHeader),  # frames not covered by counts
        ([0], 0, errors.MalformedHeader),
        (["x"], 1, errors.MalformedHeader),
    ],
)
def test_bad_batches_are_typed_errors(counts: list[object], nframes: int, error: type[Exception]) -> None:
    inner = wire.send(SRC, "c", b"p")
    frames = [_head(11, {"s": SRC, "f": counts})] + (inner * nframes)[:nframes]
    with pytest.raises(error):
        wire.split_batch(wire.decode(frames))


def test_nested_batches_are_refused() -> None:
    inner = wire.encode_batch(SRC, [wire.send(SRC, "c", b"p")])
    outer = wire.decode(wire.encode_batch(SRC, [inner]))
    with pytest.raises(errors.MalformedHeader):
        wire.split_batch(outer)


def test_unknown_header_keys_are_kept_and_ignored() -> None:
    env = wire.decode([_head(4, {"s": SRC, "c": "x", "zz": [1, 2]}), b"p"])
    assert env.header["zz"] == [1, 2] and env.channel == "x"
