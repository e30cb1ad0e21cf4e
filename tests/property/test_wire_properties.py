"""Property tests: the codec round-trips anything valid and never fails on garbage but with ProtocolError."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fabric import errors, wire

node_ids = st.binary(min_size=16, max_size=16)
names = st.text(min_size=1, max_size=64)
payloads = st.binary(max_size=4096)
u64 = st.integers(min_value=0, max_value=2**64 - 1)


@given(node_ids, names, payloads, st.integers(0, 255), u64, st.sampled_from(list(wire.ContentType)))
def test_send_round_trip(src: bytes, channel: str, payload: bytes, lane: int, seq: int, ct: wire.ContentType) -> None:
    env = wire.decode(wire.send(src, channel, payload, lane=lane, seq=seq, content_type=ct))
    assert (env.source, env.channel, env.lane, env.header["q"], env.payload) == (src, channel, lane, seq, payload)
    assert env.header.get("ct", 0) == ct


@given(node_ids, names, payloads, u64, st.integers(0, 2**31))
def test_call_round_trip(src: bytes, service: str, payload: bytes, msg_id: int, timeout_ms: int) -> None:
    env = wire.decode(wire.call(src, service, payload, msg_id=msg_id, timeout_ms=timeout_ms))
    assert (env.header["sv"], env.header["i"], env.header["to"], env.payload) == (service, msg_id, timeout_ms, payload)


@given(node_ids, st.lists(st.tuples(names, payloads), min_size=1, max_size=50))
def test_batch_round_trip(src: bytes, items: list[tuple[str, bytes]]) -> None:
    inner = [wire.send(src, c, p, seq=i) for i, (c, p) in enumerate(items)]
    parts = wire.split_batch(wire.decode(wire.encode_batch(src, inner)))
    assert [wire.decode(p).payload for p in parts] == [p for _c, p in items]


@given(st.lists(st.binary(max_size=256), max_size=8))
def test_random_frames_only_ever_raise_protocol_errors(frames: list[bytes]) -> None:
    try:
        env = wire.decode(frames)
        if env.type == wire.MsgType.BATCH:
            wire.split_batch(env)
    except errors.ProtocolError:
        pass


@given(st.binary(max_size=512))
def test_random_bytes_after_a_valid_preamble_only_raise_protocol_errors(tail: bytes) -> None:
    for mtype in wire.MsgType:
        try:
            wire.decode([b"\xaa\xfb\x01" + bytes((mtype,)) + tail, b"payload"])
        except errors.ProtocolError:
            pass
