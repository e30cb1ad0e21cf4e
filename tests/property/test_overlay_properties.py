"""Properties of the overlay cores: membership records merge like a CRDT (order does not matter, events
stay consistent), and Plumtree's link sets stay well-formed under any sequence of messages."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fabric.membership import Identity, MemberDown, MemberLeft, MemberUp
from fabric.membership.config import MembershipConfig, PlumtreeConfig
from fabric.membership.hyparview import HyParView
from fabric.membership.overlay import OverlayEffect, identity_to_wire
from fabric.membership.plumtree import KIND_APP, Plumtree

IDS = [bytes([i]) * 16 for i in range(2, 6)]
ME = b"\x01" * 16

records = st.lists(
    st.builds(lambda i, inc, v, s: {**identity_to_wire(Identity(IDS[i], f"n{i}", inc, {}, {})), "v": v, "st": s},
              st.integers(0, len(IDS) - 1), st.integers(1, 3), st.integers(0, 3), st.sampled_from([0, 2, 3])),
    max_size=25)


def _apply(order: list[dict[str, Any]]) -> tuple[dict[bytes, tuple[int, int, int]], list[OverlayEffect]]:
    hv = HyParView(Identity(ME, "me", 1, {}, {}), MembershipConfig.local(), rng=random.Random(0))
    effects: list[OverlayEffect] = []
    for rec in order:
        effects.extend(hv.receive(IDS[0], "sync", {"m": [rec]}, 0.0))
    return hv.digest(), effects


@settings(max_examples=60, deadline=None)
@given(records, st.randoms(use_true_random=False))
def test_record_merge_is_order_independent_and_events_consistent(recs: list[dict[str, Any]], rnd: random.Random) -> None:
    shuffled = list(recs)
    rnd.shuffle(shuffled)
    digest_a, events_a = _apply(recs)
    digest_b, _ = _apply(shuffled)
    assert digest_a == digest_b
    # per subject: up and down/left alternate, and each (id, incarnation) comes up at most once per down
    state: dict[bytes, bool] = {}
    for e in events_a:
        if isinstance(e, MemberUp):
            assert not state.get(e.member.node_id, False), "two ups without a down"
            state[e.member.node_id] = True
        elif isinstance(e, MemberDown | MemberLeft):
            assert state.get(e.member.node_id, False), "down/left of a member that was not up"
            state[e.member.node_id] = False


PEERS = [bytes([0x10 + i]) * 16 for i in range(4)]
msg_ids = st.builds(lambda o, s: bytes([0x30 + o]) * 16 + bytes(4) + s.to_bytes(8, "big"),
                    st.integers(0, 3), st.integers(0, 5))
tree_ops = st.one_of(
    st.tuples(st.just("gossip"), st.sampled_from(PEERS), msg_ids.map(lambda i: {"i": i, "h": 1, "k": KIND_APP, "p": 0})),
    st.tuples(st.just("ihave"), st.sampled_from(PEERS), st.lists(msg_ids, max_size=3).map(lambda ids: {"i": ids})),
    st.tuples(st.just("graft"), st.sampled_from(PEERS), st.lists(msg_ids, max_size=3).map(lambda ids: {"i": ids})),
    st.tuples(st.just("prune"), st.sampled_from(PEERS), st.just({})),
    st.tuples(st.just("tick"), st.sampled_from(PEERS), st.just({})),
    st.tuples(st.just("down"), st.sampled_from(PEERS), st.just({})),
    st.tuples(st.just("up"), st.sampled_from(PEERS), st.just({})),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(tree_ops, max_size=60))
def test_plumtree_link_sets_stay_well_formed(steps: list[tuple[str, bytes, dict[str, Any]]]) -> None:
    t = Plumtree(ME, 1, PlumtreeConfig(cache_size=4, seen_size=6, lazy_interval=0.1, graft_timeout=0.2,
                                       graft_retry=0.1, cache_ttl=1.0, seen_ttl=2.0))
    neighbours = set(PEERS)
    for p in PEERS:
        t.add_neighbour(p)
    now = 0.0
    for op, peer, body in steps:
        now += 0.05
        if op == "tick":
            sends = t.tick(now)
        elif op == "down":
            t.remove_neighbour(peer)
            neighbours.discard(peer)
            sends = []
        elif op == "up":
            t.add_neighbour(peer)
            neighbours.add(peer)
            sends = []
        else:
            seen_before = op == "gossip" and t.has_seen(body["i"])
            sends, delivery = t.receive(peer, op, body, now, linked=peer in neighbours)
            if seen_before:
                assert delivery is None  # never delivered twice while remembered
            if delivery is not None:
                assert op == "gossip" and delivery.msg_id == body["i"]
        assert not t.eager & t.lazy
        assert t.eager | t.lazy <= neighbours
        assert all(s.to in neighbours for s in sends)
        assert t.stats()["seen"] <= 6 and t.stats()["cached"] <= 4
        if op in ("down", "up") and t.lazy:
            assert t.eager  # a view change never leaves the node off the tree
