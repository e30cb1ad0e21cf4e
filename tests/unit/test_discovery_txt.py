"""mDNS TXT records: building, parsing, and rejecting malformed ones."""

from __future__ import annotations

import uuid

import pytest

from fabric.discovery import ConfigurationError, LocalNode, MalformedInput
from fabric.discovery.mdns import build_service_txt, parse_service_txt

NODE = str(uuid.uuid4())


def as_wire(txt: dict[str, str]) -> dict[bytes, bytes | None]:
    """What zeroconf hands back after a round trip: bytes keys and values."""
    return {k.encode(): v.encode() for k, v in txt.items()}


def test_round_trip_with_wildcard_endpoints() -> None:
    local = LocalNode(
        node_id=NODE,
        name="alpha",
        endpoints={"membership": "tcp://*:7946", "events": "tcp://*:7950"},
        metadata={"zone": "eu-1"},
        public_key="Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
    )
    txt = build_service_txt(local)
    assert txt["fv"] == "1" and txt["id"] == NODE and txt["ep.membership"] == "tcp://*:7946"
    cand = parse_service_txt(as_wire(txt), ["10.0.0.9"], 7946)
    assert cand.node_id == NODE and cand.name == "alpha" and cand.source == "mdns"
    assert cand.seed == "tcp://10.0.0.9:7946"
    assert dict(cand.endpoints) == {"membership": "tcp://10.0.0.9:7946", "events": "tcp://10.0.0.9:7950"}
    assert dict(cand.meta) == {"zone": "eu-1", "public_key": local.public_key}


def test_seed_from_srv_when_no_membership_entry_and_unknown_keys_ignored() -> None:
    cand = parse_service_txt({b"id": NODE.encode(), b"future": b"x", b"flag": None}, ["fe80::1"], 9000)
    assert cand.seed == "tcp://[fe80::1]:9000" and cand.name is None


@pytest.mark.parametrize(
    ("properties", "addresses", "port"),
    [
        ({b"name": b"x"}, ["10.0.0.1"], 1),  # no id
        ({b"id": None}, ["10.0.0.1"], 1),  # id without value
        ({b"id": b"nope"}, ["10.0.0.1"], 1),  # not a UUID
        ({b"id": b"\xff\xfe"}, ["10.0.0.1"], 1),  # not UTF-8
        ({b"\xff": b"x", b"id": NODE.encode()}, ["10.0.0.1"], 1),  # key not UTF-8
        ({b"id": NODE.encode(), b"ep.membership": b"udp://x"}, ["10.0.0.1"], 1),
        ({b"id": NODE.encode(), b"ep.data": None}, ["10.0.0.1"], 1),
        ({b"id": NODE.encode()}, [], 1),  # no membership entry and no address
        ({b"id": NODE.encode()}, ["10.0.0.1"], 0),  # ... or no port
        ({b"fv": b"2", b"id": NODE.encode()}, ["10.0.0.1"], 1),  # future format
    ],
)
def test_malformed_records(properties: dict[bytes, bytes | None], addresses: list[str], port: int) -> None:
    with pytest.raises(MalformedInput):
        parse_service_txt(properties, addresses, port)


def test_oversized_txt_entry_is_a_local_config_error() -> None:
    local = LocalNode(node_id=NODE, name="a", endpoints={"membership": "tcp://*:1"}, metadata={"big": "x" * 300})
    with pytest.raises(ConfigurationError):
        build_service_txt(local)
