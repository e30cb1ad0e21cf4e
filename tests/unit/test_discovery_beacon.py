"""The sans-IO beacon codec (msgpack + HMAC-SHA256) and the table of heard nodes."""

from __future__ import annotations

import uuid

import msgpack
import pytest

from fabric.discovery import Beacon, BeaconCodec, BeaconTable, ConfigurationError, MalformedInput

NODE = str(uuid.uuid4())
BEACON = Beacon(
    node_id=NODE,
    name="alpha",
    endpoints={"membership": "tcp://*:7946", "data": "tcp://*:7949"},
    meta={"zone": "a"},
    public_key="rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
)


def category(codec: BeaconCodec, datagram: bytes) -> str:
    with pytest.raises(MalformedInput) as info:
        codec.decode(datagram)
    return info.value.category


@pytest.mark.parametrize("secret", [None, "s3cret", b"\x00binary"])
def test_round_trip(secret: str | bytes | None) -> None:
    codec = BeaconCodec(secret)
    assert codec.decode(codec.encode(BEACON)) == BEACON
    assert codec.signed is (secret is not None)


def test_signed_beacon_layout() -> None:
    data = BeaconCodec("k").encode(BEACON)
    assert data[:3] == b"FFB" and data[3] == 1 and data[4] == 1
    unsigned = BeaconCodec(None).encode(BEACON)
    assert unsigned[4] == 0 and len(data) == len(unsigned) + 32


def test_wrong_secret_unsigned_and_foreign_are_rejected_by_category() -> None:
    signed = BeaconCodec("right").encode(BEACON)
    unsigned = BeaconCodec(None).encode(BEACON)
    assert category(BeaconCodec("wrong"), signed) == "hmac"
    assert category(BeaconCodec("right"), unsigned) == "hmac"
    assert category(BeaconCodec(None), signed) == "foreign"
    tampered = bytearray(signed)
    tampered[10] ^= 0x01
    assert category(BeaconCodec("right"), bytes(tampered)) == "hmac"
    assert category(BeaconCodec("right"), signed[:20]) == "hmac"


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"FF",
        b"hello world",
        b"FFB\x02\x00" + msgpack.packb({"id": NODE}),  # unknown version
        b"FFB\x01\x00\xc1",  # reserved msgpack byte
        b"FFB\x01\x00" + msgpack.packb([1, 2, 3]),
        b"FFB\x01\x00" + msgpack.packb({"id": 5, "ep": {"membership": "tcp://h:1"}}),
        b"FFB\x01\x00" + msgpack.packb({"id": NODE, "ep": {"data": "tcp://h:1"}}),
        b"FFB\x01\x00" + msgpack.packb({"id": NODE, "ep": {"membership": 7}}),
        b"FFB\x01\x00" + msgpack.packb({"id": NODE, "ep": {"membership": "tcp://h:1"}, "pk": 3}),
        b"FFB\x01\x00" + msgpack.packb({"id": NODE, "ep": {"membership": "tcp://h:1"}, "m": [1]}),
        b"FFB\x01\x00" + b"\xdb\xff\xff\xff\xff",  # str32 claiming 4 GiB
        b"FFB\x01\x00" + b"x" * 9000,
    ],
)
def test_garbage_is_malformed(datagram: bytes) -> None:
    assert category(BeaconCodec(None), datagram) == "malformed"


def test_unknown_payload_keys_are_ignored() -> None:
    payload = {"id": NODE, "n": "a", "ep": {"membership": "tcp://h:1"}, "future": {"x": [1, 2]}}
    beacon = BeaconCodec(None).decode(b"FFB\x01\x00" + msgpack.packb(payload))
    assert beacon.node_id == NODE and beacon.meta == {}


def test_empty_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigurationError):
        BeaconCodec("")


def test_table_concretizes_expires_and_reports_changes() -> None:
    table = BeaconTable(candidate_ttl=10.0)
    assert table.observe(BEACON, "192.0.2.7", now=0.0) is True
    assert table.observe(BEACON, "192.0.2.7", now=5.0) is False  # same data: refresh only
    (cand,) = table.candidates()
    assert cand.seed == "tcp://192.0.2.7:7946" and cand.endpoints["data"] == "tcp://192.0.2.7:7949"
    assert cand.node_id == NODE and cand.name == "alpha" and cand.source == "gossip"
    assert cand.meta["public_key"] == BEACON.public_key and cand.meta["zone"] == "a"
    assert table.expire(now=14.9) == []
    assert table.observe(BEACON, "192.0.2.8", now=14.9) is True  # moved address: changed
    assert [c.key for c in table.expire(now=24.9)] == [NODE]
    assert len(table) == 0


def test_table_rejects_beacons_that_are_not_valid_candidates() -> None:
    bad = Beacon(node_id="not-a-uuid", name="x", endpoints={"membership": "tcp://*:1"})
    with pytest.raises(MalformedInput):
        BeaconTable(10.0).observe(bad, "192.0.2.1", now=0.0)
    bad_ep = Beacon(node_id=NODE, name="x", endpoints={"membership": "nonsense"})
    with pytest.raises(MalformedInput):
        BeaconTable(10.0).observe(bad_ep, "192.0.2.1", now=0.0)
