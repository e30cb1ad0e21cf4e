"""Property: membership state merges like a CRDT (order, duplication and grouping of messages do not matter)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from fabric.membership import FullMeshMembership, Identity
from fabric.membership.config import MembershipConfig

IDS = [bytes([i]) * 16 for i in range(1, 6)]

claims = st.lists(
    st.fixed_dictionaries({
        "id": st.sampled_from(IDS),
        "nm": st.sampled_from(["p", "q"]),
        "in": st.integers(1, 4),
        "st": st.sampled_from([0, 2, 3]),
        "mv": st.integers(0, 3),
        "md": st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"]), max_size=2),
        "ep": st.just({}),
    }),
    min_size=1,
    max_size=30,
)


def core(name: bytes) -> FullMeshMembership:
    return FullMeshMembership(Identity(name, "self", 1), MembershipConfig.local(), now=0.0)


@given(claims, st.randoms(use_true_random=False), st.integers(1, 5))
def test_any_delivery_order_converges_to_the_same_state(entries: list[dict[str, object]], rnd: random.Random,
                                                        chunk: int) -> None:
    a, b = core(b"A" * 16), core(b"B" * 16)
    for entry in entries:
        a.receive(IDS[0], "sync", {"in": 1, "r": 0, "m": [entry]}, 0.0)
    shuffled = entries + rnd.sample(entries, len(entries) // 2)  # reordered and partly duplicated
    rnd.shuffle(shuffled)
    for i in range(0, len(shuffled), chunk):
        b.receive(IDS[1], "sync", {"in": 1, "r": 0, "m": shuffled[i:i + chunk]}, 0.0)
    da, db = a.digest(), b.digest()
    da.pop(b"A" * 16)
    db.pop(b"B" * 16)
    assert da == db
    # and the winner per node id is the largest (incarnation, st, mv) claimed
    for node_id in da:
        best = max((e["in"], e["st"], e["mv"]) for e in entries if e["id"] == node_id)  # type: ignore[type-var]
        assert da[node_id] == best
