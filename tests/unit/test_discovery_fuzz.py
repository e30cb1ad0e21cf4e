"""Seeded fuzzing of every parser that takes bytes from the network: only MalformedInput ever escapes."""

from __future__ import annotations

import random
import uuid

import msgpack

from fabric.discovery import Beacon, BeaconCodec, BeaconTable, GossipConfig, GossipPlugin, MalformedInput
from fabric.discovery.mdns import parse_service_txt

NODE = str(uuid.uuid4())
VALID = Beacon(node_id=NODE, name="n", endpoints={"membership": "tcp://*:7946", "data": "tcp://*:7949"},
               meta={"k": "v"}, public_key="pk")


def mutations(rng: random.Random, data: bytes, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        buf = bytearray(data)
        choice = rng.randrange(4)
        if choice == 0 and buf:  # flip bits
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif choice == 1:  # truncate
            del buf[rng.randrange(len(buf) + 1):]
        elif choice == 2:  # splice random bytes in
            pos = rng.randrange(len(buf) + 1)
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        else:  # a random msgpack payload behind a valid header
            value = rng.choice([{"id": rng.random()}, {"ep": [1]}, {"id": NODE, "ep": {"membership": rng.randbytes(4)}},
                                [None] * 3, "x" * rng.randint(0, 50), {b"id": NODE}, {"id": NODE, "ep": {}}])
            buf = bytearray(b"FFB\x01\x00" + msgpack.packb(value, use_bin_type=True))
        out.append(bytes(buf))
    return out


def test_beacon_codec_and_table_only_raise_malformed() -> None:
    rng = random.Random(20261128)
    for secret in (None, "s"):
        codec = BeaconCodec(secret)
        table = BeaconTable(10.0)
        valid = codec.encode(VALID)
        accepted = 0
        for datagram in mutations(rng, valid, 3000):
            try:
                beacon = codec.decode(datagram)
                table.observe(beacon, "192.0.2.1", now=0.0)
                accepted += datagram != valid  # a no-op truncation leaves the valid beacon
            except MalformedInput:
                pass
        # With a secret nothing mutated verifies; without one, some mutations still parse (e.g. bit flips
        # inside the name): those are well-formed beacons, and the table held up.
        if secret is not None:
            assert accepted == 0


def test_gossip_datagram_handler_never_raises_and_counts_everything() -> None:
    rng = random.Random(7)
    plugin = GossipPlugin(GossipConfig(secret="s"))
    datagrams = mutations(rng, BeaconCodec("s").encode(VALID), 500) + [rng.randbytes(rng.randint(0, 2000)) for _ in range(500)]
    for datagram in datagrams:
        plugin._on_datagram(datagram, "192.0.2.9")
    stats = plugin.stats()
    assert stats["beacons_received"] == 1000
    assert stats["beacons_accepted"] + stats["beacons_malformed"] + stats["beacons_rejected_hmac"] + stats["beacons_foreign"] == 1000
    assert stats["beacons_malformed"] > 0 and stats["beacons_rejected_hmac"] > 0


def test_txt_parser_only_raises_malformed() -> None:
    rng = random.Random(11)
    keys = [b"id", b"name", b"fv", b"pk", b"ep.membership", b"ep.data", b"m.x", b"\xff", b"", b"ep.", b"m."]
    values = [None, b"", NODE.encode(), b"1", b"2", b"tcp://*:1", b"tcp://h:99999", b"\xfe\xff", b"ipc:///x",
              b"tcp://[::1]:5", rng.randbytes(8)]
    for _ in range(3000):
        props = {rng.choice(keys): rng.choice(values) for _ in range(rng.randint(0, 6))}
        addresses = rng.choice([[], ["10.0.0.1"], ["fe80::1", "10.0.0.2"]])
        try:
            cand = parse_service_txt(props, addresses, rng.choice([None, 0, 1, 65535]))
        except MalformedInput:
            continue
        assert cand.node_id == NODE and cand.seed.startswith(("tcp://", "ipc://"))
