"""Structured fuzzing of the wire decoder: valid messages of every type, mutated in their structure
(header fields, frame lists) and bytes; only ProtocolError subclasses may escape."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fabric import errors, wire
from fabric.testing.fuzz import DecoderTarget, Mutation, apply
from tests.property._fuzz import FUZZ, hostile, mutations

TARGET = DecoderTarget()
CORPUS = TARGET.corpus()
HEADS = [wire.decode_head(frames[0]) for frames in CORPUS if isinstance(frames[0], bytes)]


@FUZZ
@given(st.sampled_from(CORPUS), mutations)
def test_mutated_frames_only_raise_protocol_errors(frames: list[bytes], muts: list[Mutation]) -> None:
    TARGET.feed(apply(frames, muts))


@FUZZ
@given(st.sampled_from(HEADS), mutations, st.integers(0, 255), st.integers(0, 255), st.lists(st.binary(max_size=64), max_size=70))
def test_mutated_headers_past_the_preamble_only_raise_protocol_errors(
    head: tuple[int, int, dict[str, Any]], muts: list[Mutation], version: int, mtype: int, payload: list[bytes]
) -> None:
    _t, _v, header = head
    mutated = apply(header, muts)
    try:
        packed = wire.packb(mutated)
    except (TypeError, ValueError, OverflowError):
        return  # not encodable as msgpack: no peer can send it
    frames = [wire.SIGNATURE + bytes((version if version % 4 else 1, mtype)) + packed, *payload]
    TARGET.feed(frames)


@FUZZ
@given(hostile, st.integers(0, 1 << 20))
def test_unpackb_with_limits_only_raises_protocol_errors(value: Any, limit: int) -> None:
    try:
        data = wire.packb(value)
    except (TypeError, ValueError, OverflowError):
        return
    for tail in (b"", b"\x00", b"\xc1"):
        try:
            assert wire.unpackb(data + tail, max_bytes=limit) is not None or value is None or tail
        except errors.ProtocolError:
            pass


def test_deep_nesting_and_huge_counts_are_refused_as_protocol_errors() -> None:
    deep = b"\x91" * 100_000 + b"\xc0"  # a list nested 100,000 deep
    huge_map = b"\xdf\xff\xff\xff\xff"  # a map announcing 2**32-1 entries, none present
    for data in (deep, huge_map, b"\xdd\xff\xff\xff\xff"):
        try:
            wire.unpackb(data)
        except errors.ProtocolError:
            pass
        TARGET.feed([wire.SIGNATURE + bytes((1, wire.MsgType.MEMBERSHIP)) + data, data])
    assert TARGET.fed >= 3
