"""Properties of the one member-record CRDT (fabric.membership.records) that every membership core merges.

The state is a map node id -> merge key ``(in, st, v)``; merging a set of claims must be commutative (any
order), associative (any grouping into messages), idempotent (duplicates change nothing), the winner per
node id must be the largest key claimed, a live node's refutation must always win over any stale down
claim about it - and the full-mesh core and a record overlay (HyParView) must reach the *same* state from
the same claims (one CRDT, not two).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fabric.membership import FullMeshMembership, Identity, MembershipConfig, MemberStatus
from fabric.membership.hyparview import HyParView
from fabric.membership.overlay import identity_to_wire

ME = b"\x01" * 16
SENDER = b"\x02" * 16
IDS = [bytes([i]) * 16 for i in range(3, 7)]

# one RECORD wire form and one key (in, st, v) for every core; full-mesh peers of earlier versions sent
# the version as ``mv`` (still read)
mesh_claims = st.lists(st.builds(
    lambda i, inc, s, mv: {"id": IDS[i], "nm": f"n{i}", "in": inc, "st": s, "mv": mv, "md": {}, "ep": {}},
    st.integers(0, len(IDS) - 1), st.integers(1, 4), st.sampled_from([0, 2, 3]), st.integers(0, 3)),
    min_size=1, max_size=25)
record_claims = st.lists(st.builds(
    lambda i, inc, v, s: {**identity_to_wire(Identity(IDS[i], f"n{i}", inc, {}, {})), "v": v, "st": s},
    st.integers(0, len(IDS) - 1), st.integers(1, 4), st.integers(0, 3), st.sampled_from([0, 2, 3])),
    min_size=1, max_size=25)


def mesh_state(messages: list[list[dict[str, Any]]]) -> dict[bytes, tuple[int, int, int]]:
    core = FullMeshMembership(Identity(ME, "me", 1), MembershipConfig.local(), now=0.0)
    for m in messages:
        core.receive(SENDER, "sync", {"in": 1, "r": 0, "m": m}, 0.0)
    state = core.digest()
    state.pop(ME)
    return state


def record_state(messages: list[list[dict[str, Any]]]) -> dict[bytes, tuple[int, int, int]]:
    core = HyParView(Identity(ME, "me", 1, {}, {}), MembershipConfig.local(), rng=random.Random(0))
    for m in messages:
        core.receive(SENDER, "sync", {"m": m}, 0.0)
    state = core.digest()
    state.pop(ME)
    return state


def mesh_key(c: dict[str, Any]) -> tuple[int, int, int]:
    return (c["in"], c["st"], c.get("v", c.get("mv", 0)))


record_key = mesh_key  # one key for every core


CORES: list[tuple[Callable[[list[list[dict[str, Any]]]], dict[bytes, tuple[int, int, int]]],
                  Callable[[dict[str, Any]], tuple[int, int, int]]]] = [(mesh_state, mesh_key), (record_state, record_key)]


def groups(claims: list[dict[str, Any]], rnd: random.Random) -> list[list[dict[str, Any]]]:
    out, i = [], 0
    while i < len(claims):
        n = rnd.randint(1, 4)
        out.append(claims[i:i + n])
        i += n
    return out


def check_crdt(claims: list[dict[str, Any]], rnd: random.Random, state: Any, key: Any) -> None:
    one_by_one = state([[c] for c in claims])
    # commutative: any order
    shuffled = list(claims)
    rnd.shuffle(shuffled)
    assert state([[c] for c in shuffled]) == one_by_one
    # associative: any grouping into messages
    assert state(groups(claims, rnd)) == one_by_one
    # idempotent: duplicates (and a second full pass) change nothing
    assert state([[c] for c in claims + rnd.sample(claims, len(claims) // 2)] + [claims]) == one_by_one
    # the winner per node id is the largest key claimed
    for node_id, k in one_by_one.items():
        assert k == max(key(c) for c in claims if c["id"] == node_id)


@settings(max_examples=80, deadline=None)
@given(mesh_claims, st.randoms(use_true_random=False))
def test_full_mesh_entries_merge_like_a_crdt(claims: list[dict[str, Any]], rnd: random.Random) -> None:
    check_crdt(claims, rnd, mesh_state, mesh_key)


@settings(max_examples=80, deadline=None)
@given(record_claims, st.randoms(use_true_random=False))
def test_overlay_records_merge_like_a_crdt(claims: list[dict[str, Any]], rnd: random.Random) -> None:
    check_crdt(claims, rnd, record_state, record_key)


@settings(max_examples=80, deadline=None)
@given(st.one_of(mesh_claims, record_claims), st.randoms(use_true_random=False))
def test_every_core_merges_the_same_crdt(claims: list[dict[str, Any]], rnd: random.Random) -> None:
    # the same claims, in any grouping, leave the full-mesh core and a record overlay in the same state
    messages = groups(claims, rnd)
    assert mesh_state(messages) == record_state(messages)


stale_downs = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 3)), min_size=1, max_size=8)


@settings(max_examples=80, deadline=None)
@given(stale_downs, st.randoms(use_true_random=False))
def test_full_mesh_refutation_wins_over_any_stale_down(downs: list[tuple[int, int]], rnd: random.Random) -> None:
    me = FullMeshMembership(Identity(ME, "me", 1), MembershipConfig.local(), now=0.0)
    other = FullMeshMembership(Identity(SENDER, "other", 1), MembershipConfig.local(), now=0.0)
    claims = [{"id": ME, "nm": "me", "in": inc, "st": 2, "mv": mv, "md": {}, "ep": {}} for inc, mv in downs]
    for c in claims:
        me.receive(SENDER, "sync", {"in": 1, "r": 0, "m": [c]}, 0.0)
    mine = me.digest()[ME]
    assert mine[1] == 0 and all(mine > mesh_key(c) for c in claims)  # alive, above every down claim
    # the refutation, merged in any order with the stale downs, wins on every other node
    refutation = {"id": ME, "nm": "me", "in": mine[0], "st": 0, "mv": mine[2], "md": {}, "ep": {}}
    order = [*claims, refutation]
    rnd.shuffle(order)
    for c in order:
        other.receive(SENDER, "sync", {"in": 1, "r": 0, "m": [c]}, 0.0)
    assert other.digest()[ME] == mine


@settings(max_examples=80, deadline=None)
@given(stale_downs, st.randoms(use_true_random=False))
def test_overlay_refutation_wins_over_any_stale_down(downs: list[tuple[int, int]], rnd: random.Random) -> None:
    me = HyParView(Identity(ME, "me", 1, {}, {}), MembershipConfig.local(), rng=random.Random(0))
    other = HyParView(Identity(SENDER, "other", 1, {}, {}), MembershipConfig.local(), rng=random.Random(1))
    claims = [{**identity_to_wire(Identity(ME, "me", inc, {}, {})), "v": v, "st": 2} for inc, v in downs]
    for c in claims:
        me.receive(SENDER, "sync", {"m": [c]}, 0.0)
    mine = me.digest()[ME]
    assert mine[1] == 0 and all(mine > record_key(c) for c in claims)  # alive, above every down claim
    assert mine[0] > max(c["in"] for c in claims) and mine[2] == 0  # a new incarnation, version reset
    refutation = {**identity_to_wire(me.local), "v": mine[2], "st": 0}
    order = [*claims, refutation]
    rnd.shuffle(order)
    for c in order:
        other.receive(IDS[0], "sync", {"m": [c]}, 0.0)
    assert other.digest()[ME] == mine
    assert [m.status for m in other.members() if m.node_id == ME] == [MemberStatus.ALIVE]
