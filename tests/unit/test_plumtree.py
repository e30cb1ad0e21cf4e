"""Plumtree core: eager push, batched lazy push, prune on duplicates, graft on timeout, bounded caches."""

from __future__ import annotations

import pytest

from fabric.membership.config import PlumtreeConfig
from fabric.membership.errors import BadMembershipMessage
from fabric.membership.plumtree import KIND_APP, Plumtree, TreeSend, message_origin

ME = b"\x01" * 16
A, B, C = b"\xaa" * 16, b"\xbb" * 16, b"\xcc" * 16
CFG = PlumtreeConfig(lazy_interval=0.2, graft_timeout=0.5, graft_retry=0.25, cache_size=4, cache_ttl=10.0,
                     seen_size=8, seen_ttl=20.0)


def tree(*eager: bytes, lazy: tuple[bytes, ...] = ()) -> Plumtree:
    t = Plumtree(ME, 1, CFG)
    for peer in eager:
        t.eager.add(peer)
    for peer in lazy:
        t.lazy.add(peer)
    return t


def ops(sends: list[TreeSend]) -> list[tuple[bytes, str]]:
    return [(s.to, s.op) for s in sends]


def test_first_neighbour_is_eager_later_ones_lazy() -> None:
    t = Plumtree(ME, 1, CFG)
    t.add_neighbour(A)
    t.add_neighbour(B)
    assert t.eager == {A} and t.lazy == {B}
    t.remove_neighbour(A)
    assert t.neighbours() == {B}


def test_broadcast_pushes_eagerly_and_batches_ihaves_per_lazy_round() -> None:
    t = tree(A, lazy=(B,))
    id1, sends = t.broadcast("x", KIND_APP, 0.0)
    assert ops(sends) == [(A, "gossip")] and sends[0].body == {"i": id1, "h": 0, "k": KIND_APP, "p": "x"}
    assert message_origin(id1) == ME and len(id1) == 28
    id2, _ = t.broadcast("y", KIND_APP, 0.1)
    assert t.next_deadline() == pytest.approx(0.2)
    assert t.tick(0.19) == []
    flushed = t.tick(0.2)
    assert ops(flushed) == [(B, "ihave")] and flushed[0].body == {"i": [id1, id2]}
    assert t.next_deadline() == float("inf")


def test_first_copy_is_delivered_and_forwarded_duplicate_is_pruned() -> None:
    sender = Plumtree(A, 1, CFG)
    msg_id, _ = sender.broadcast("m", KIND_APP, 0.0)
    t = tree(A, B, C)
    sends, delivery = t.receive(A, "gossip", {"i": msg_id, "h": 0, "k": 0, "p": "m"}, 0.0)
    assert delivery is not None and delivery.payload == "m" and delivery.hops == 1 and delivery.origin == A
    assert sorted(ops(sends)) == [(B, "gossip"), (C, "gossip")] and sends[0].body["h"] == 1
    assert t.route(A) == A
    sends, delivery = t.receive(B, "gossip", {"i": msg_id, "h": 3, "k": 0, "p": "m"}, 0.1)
    assert delivery is None and ops(sends) == [(B, "prune")]
    assert B in t.lazy and B not in t.eager
    # the pruned side
    sends, _ = t.receive(C, "prune", {}, 0.2)
    assert sends == [] and C in t.lazy


def test_missing_message_is_grafted_from_announcers_in_turn() -> None:
    t = tree(A, lazy=(B, C))
    msg_id = b"\x09" * 16 + b"\x00" * 12
    t.receive(B, "ihave", {"i": [msg_id]}, 0.0)
    t.receive(C, "ihave", {"i": [msg_id]}, 0.1)
    assert t.next_deadline() == pytest.approx(0.5)
    sends = t.tick(0.5)
    assert ops(sends) == [(B, "graft")] and sends[0].body == {"i": [msg_id]}
    assert B in t.eager
    sends = t.tick(0.75)  # graft_retry later, still missing: the next announcer
    assert ops(sends) == [(C, "graft")]
    # the payload arrives: no more grafts
    t.receive(C, "gossip", {"i": msg_id, "h": 2, "k": 0, "p": 1}, 0.8)
    assert all(s.op != "graft" for s in t.tick(5.0))
    assert t.stats()["missing"] == 0


def test_graft_is_answered_from_the_cache_and_makes_the_link_eager() -> None:
    t = tree(lazy=(B,))
    msg_id, _ = t.broadcast("payload", KIND_APP, 0.0)
    sends, _ = t.receive(B, "graft", {"i": [msg_id, b"\x00" * 28]}, 0.1)
    assert ops(sends) == [(B, "gossip")] and sends[0].body["p"] == "payload"
    assert B in t.eager and t.counters["graft_miss"] == 1


def test_caches_are_bounded_by_size_and_age() -> None:
    t = tree(A)
    ids = [t.broadcast(i, KIND_APP, float(i))[0] for i in range(10)]
    stats = t.stats()
    assert stats["cached"] == CFG.cache_size and stats["seen"] == CFG.seen_size
    assert t.has_seen(ids[-1]) and not t.has_seen(ids[0])
    t.tick(100.0)
    assert t.stats()["seen"] == 0 and t.stats()["cached"] == 0


def test_unlinked_sender_is_delivered_but_changes_nothing() -> None:
    t = tree(A)
    msg_id = b"\x07" * 16 + b"\x00" * 12
    sends, delivery = t.receive(C, "gossip", {"i": msg_id, "h": 0, "k": 0, "p": 5}, 0.0, linked=False)
    assert delivery is not None and ops(sends) == [(A, "gossip")]
    assert C not in t.neighbours() and t.route(b"\x07" * 16) is None
    sends, _ = t.receive(C, "graft", {"i": [msg_id]}, 0.0, linked=False)
    assert sends == []


@pytest.mark.parametrize("op, body", [
    ("gossip", {"i": b"short", "h": 0, "k": 0}),
    ("gossip", {"i": b"\x00" * 28, "h": -1, "k": 0}),
    ("gossip", {"i": b"\x00" * 28, "h": 0, "k": 9}),
    ("ihave", {"i": "nope"}),
    ("ihave", {"i": [b"\x00" * 27]}),
    ("graft", {}),
    ("gossip", [1, 2]),
])
def test_bad_bodies_raise_and_change_nothing(op: str, body: object) -> None:
    t = tree(A, lazy=(B,))
    with pytest.raises(BadMembershipMessage):
        t.receive(A, op, body, 0.0)
    assert t.eager == {A} and t.lazy == {B} and t.stats()["seen"] == 0


def test_unknown_op_is_counted() -> None:
    t = tree(A)
    assert t.receive(A, "future-op", {}, 0.0) == ([], None)
    assert t.counters["unknown_op"] == 1


def test_new_neighbour_gets_an_ihave_of_recent_messages() -> None:
    t = tree(A)
    old, _ = t.broadcast("old", KIND_APP, 0.0)
    recent, _ = t.broadcast("recent", KIND_APP, 9.0)
    t.tick(9.5)
    t.add_neighbour(B, 10.0)  # B is lazy (we are on the tree) and hears of what spread in the window
    sends = t.tick(10.0 + CFG.lazy_interval)
    assert [(s.to, s.op, s.body["i"]) for s in sends] == [(B, "ihave", [recent])]
    assert old not in sends[0].body["i"]
