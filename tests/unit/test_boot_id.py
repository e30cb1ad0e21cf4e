"""Boot id (HELLO/WELCOME ``bi``): a new incarnation under the same boot id is a refutation by the same
process and keeps the link and what is queued on it; a new boot id is a restart and relinks; a peer
without a boot id (an older one) relinks on every new incarnation, as before."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from fabric import NodeConfig, wire
from fabric.errors import MalformedHeader
from fabric.membership import Connect, Disconnect, FullMeshMembership, Identity, MembershipConfig
from fabric.membership.errors import BadMembershipMessage
from fabric.membership.interface import identity_from_wire, identity_to_wire
from fabric.membership.records import mesh_wire
from fabric.membership.types import ST_ALIVE
from fabric.node.message import PeerInfo, identity_of, peer_from_header, peer_of
from fabric.node.peers import Peers
from fabric.wire.types import K_BOOT

PEER = uuid.uuid4()
EP = {"membership": "tcp://127.0.0.1:7001", "data": "tcp://127.0.0.1:7002"}


class FakeTransport:
    """Records what Peers asks of the sockets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def connect(self, link: Any, endpoints: Mapping[str, str], parallelism: Mapping[str, int] | None = None,
                **_: Any) -> None:
        self.calls.append(("connect", link))

    def disconnect(self, link: Any) -> None:
        self.calls.append(("disconnect", link))

    def send(self, link: Any, channel: str, lane: int, frames: Sequence[bytes]) -> bool:
        return True


def info(incarnation: int, boot: bytes = b"") -> PeerInfo:
    return PeerInfo(id=str(PEER), name="b", incarnation=incarnation, endpoints=EP,
                    channels={"membership": ("control", 1), "data": ("bulk", 1)}, boot=boot)


def make_peers() -> tuple[Peers, FakeTransport, Counter[str], list[str]]:
    transport = FakeTransport()
    counters: Counter[str] = Counter()
    unlinked: list[str] = []
    peers = Peers(NodeConfig.local(name="a"), uuid.uuid4().bytes, "a", transport, {"membership", "data"},  # type: ignore[arg-type]
                  hello=lambda: [], welcome=lambda v: [], answer=lambda *a: None, on_topology=lambda raw: None,
                  on_contact=lambda i: None, on_link=lambda i: None,
                  on_unlink=lambda key, i, reason: unlinked.append(reason), forget=lambda key: None,
                  counters=counters, errors=Counter())
    return peers, transport, counters, unlinked


def test_a_refutation_keeps_the_sockets_and_a_restart_relinks() -> None:
    peers, transport, counters, unlinked = make_peers()
    key = PEER.bytes
    peers.link(info(1, b"boot-one"))
    assert transport.calls == [("connect", key)]
    peers.link(info(2, b"boot-one"))  # refuted a suspicion: same process
    assert transport.calls == [("connect", key)] and unlinked == []
    assert peers.linked[key].info.incarnation == 2 and counters["refutations_kept_link"] == 1
    peers.link(info(1, b"boot-one"))  # a stale report of the older incarnation changes nothing
    assert peers.linked[key].info.incarnation == 2 and transport.calls == [("connect", key)]
    peers.link(info(3, b"boot-two"))  # a new process: relink
    assert transport.calls[1:] == [("disconnect", key), ("connect", key)]
    assert unlinked == ["restarted"] and counters["restart_relinks"] == 1


@pytest.mark.parametrize("old, new", [(b"", b""), (b"boot-one", b""), (b"", b"boot-one")])
def test_without_a_boot_id_on_both_sides_every_new_incarnation_relinks(old: bytes, new: bytes) -> None:
    peers, transport, counters, unlinked = make_peers()
    peers.link(info(1, old))
    peers.link(info(2, new))
    assert transport.calls == [("connect", PEER.bytes), ("disconnect", PEER.bytes), ("connect", PEER.bytes)]
    assert unlinked == ["restarted"] and counters["restart_relinks"] == 1


def test_the_same_incarnation_learns_the_boot_id() -> None:
    peers, transport, _counters, _unlinked = make_peers()
    peers.link(info(1))  # first known from a source without the boot id
    peers.link(info(1, b"boot-one"))
    assert peers.linked[PEER.bytes].info.boot == b"boot-one" and len(transport.calls) == 1
    peers.link(info(2, b"boot-one"))
    assert len(transport.calls) == 1


def test_hello_and_welcome_carry_the_boot_id_and_older_peers_omit_it() -> None:
    src = uuid.uuid4().bytes
    for frames in (wire.hello(src, role=wire.Role.MEMBER, incarnation=5, boot=b"12345678"),
                   wire.welcome(src, version=wire.PROTOCOL_VERSION, incarnation=5, boot=b"12345678")):
        header = wire.decode(frames).header
        assert header[K_BOOT] == b"12345678"
        assert peer_from_header(header, wire.PROTOCOL_VERSION).boot == b"12345678"
    old = wire.decode(wire.hello(src, role=wire.Role.MEMBER, incarnation=5)).header
    assert K_BOOT not in old and peer_from_header(old, wire.PROTOCOL_VERSION).boot == b""
    with pytest.raises(MalformedHeader):
        wire.decode(wire.encode(wire.MsgType.HELLO, {**old, K_BOOT: "text"}))
    with pytest.raises(MalformedHeader):
        peer_from_header({**old, K_BOOT: b"x" * 40}, wire.PROTOCOL_VERSION)


def test_membership_records_carry_the_boot_id() -> None:
    ident = Identity(PEER.bytes, "b", 3, {}, {"membership": ("control", EP["membership"], 1)}, b"boot-one")
    raw = identity_to_wire(ident)
    assert raw["bi"] == b"boot-one" and identity_from_wire(raw) == ident
    assert "bi" not in identity_to_wire(Identity(PEER.bytes, "b", 3))  # unknown: not sent (older peers)
    assert identity_from_wire({k: v for k, v in raw.items() if k != "bi"}).boot == b""
    with pytest.raises(BadMembershipMessage):
        identity_from_wire({**raw, "bi": b"x" * 40})
    assert identity_of(peer_of(ident)) == ident


def full_mesh_update(boot_old: bytes, boot_new: bytes) -> list[Any]:
    me = Identity(uuid.uuid4().bytes, "a", 1, {}, {"membership": ("control", "tcp://127.0.0.1:7000", 1)}, b"mine")
    core = FullMeshMembership(me, MembershipConfig.local(), rng=random.Random(1), now=0.0)
    old = Identity(PEER.bytes, "b", 1, {}, {"membership": ("control", EP["membership"], 1)}, boot_old)
    core.contact(old, 0.0)
    new = Identity(PEER.bytes, "b", 2, {}, old.endpoints, boot_new)
    from fabric.membership.records import _Record

    body = {"in": 1, "r": 0, "m": [mesh_wire(_Record(new, 0, ST_ALIVE, 0.0))]}
    return core.receive(PEER.bytes, "sync", body, 0.1)


def test_full_mesh_keeps_the_link_of_a_refuting_member_and_drops_a_restarted_ones() -> None:
    same = full_mesh_update(b"boot-one", b"boot-one")
    assert not any(isinstance(e, Disconnect) for e in same)
    assert any(isinstance(e, Connect) and e.identity.incarnation == 2 for e in same)
    restarted = full_mesh_update(b"boot-one", b"boot-two")
    assert any(isinstance(e, Disconnect) for e in restarted)
    older = full_mesh_update(b"", b"")
    assert any(isinstance(e, Disconnect) for e in older)
