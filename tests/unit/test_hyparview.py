"""HyParView core, message by message: join, forward join walks, neighbor priority, disconnect, failure
and promotion, shuffle, refutation, bad input."""

from __future__ import annotations

import random
from typing import Any

import pytest

from fabric.membership import Connect, Dial, Disconnect, Identity, Joined, MemberDown, MemberUp, Send
from fabric.membership.config import HyParViewConfig, MembershipConfig
from fabric.membership.errors import BadMembershipMessage
from fabric.membership.hyparview import HyParView
from fabric.membership.overlay import OverlayEffect, identity_to_wire
from fabric.membership.plumtree import TreeSend
from fabric.testing.overlay_sim import OverlaySim

CFG = MembershipConfig.local(hyparview=HyParViewConfig(active_max=3, active_min=2, passive_max=5, arwl=3, prwl=2,
                                                    shuffle_interval=5.0, neighbor_timeout=0.5,
                                                    promotion_interval=1.0))


def ident(n: int) -> Identity:
    return Identity(bytes([n]) * 16, f"n{n}", 1, {}, {"membership": ("control", f"sim://n{n}", 1)})


def node(n: int) -> HyParView:
    return HyParView(ident(n), CFG, rng=random.Random(n), now=0.0)


def sends(effects: list[OverlayEffect], op: str | None = None) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and (op is None or e.op == op)]


def entry(n: int) -> dict[str, Any]:
    return identity_to_wire(ident(n))


def with_active(hv: HyParView, *peers: int) -> HyParView:
    for p in peers:
        hv._add_active(ident(p), 0.0, [])
    return hv


def test_join_dials_then_links_to_the_seed_and_sends_join() -> None:
    hv = node(1)
    assert hv.join(["sim://n9"], 0.0) == [Dial("sim://n9")]
    effects = hv.contact(ident(9), 0.1)
    assert Connect(ident(9)) in effects and Joined() in effects
    (join,) = sends(effects, "join")
    assert join.to == ident(9).node_id and join.body["m"]["id"] == ident(1).node_id
    assert hv.active_view() == [ident(9).node_id]


def test_contact_node_admits_sends_state_and_starts_the_walks() -> None:
    seed = with_active(node(9), 2, 3)
    effects = seed.receive(ident(1).node_id, "join", {"m": entry(1)}, 0.0)
    assert ident(1).node_id in seed.active_view()
    assert any(isinstance(e, MemberUp) and e.member.name == "n1" for e in effects)
    (state,) = sends(effects, "sync")
    assert {r["id"] for r in state.body["m"]} >= {ident(9).node_id, ident(1).node_id}
    walks = sends(effects, "forward_join")
    assert sorted(w.to for w in walks) == sorted([ident(2).node_id, ident(3).node_id])
    assert all(w.body["t"] == CFG.hyparview.arwl for w in walks)
    # the joiner's record is announced (batched) on the next announce tick
    announced = [e for e in seed.tick(0.2) if isinstance(e, TreeSend) and e.op == "gossip"]
    assert announced and any(r["id"] == ident(1).node_id for r in announced[0].body["p"])


def test_join_storm_into_a_full_view_drops_a_random_neighbour_with_disconnect() -> None:
    seed = with_active(node(9), 2, 3, 4)
    effects = seed.receive(ident(1).node_id, "join", {"m": entry(1)}, 0.0)
    (bye,) = sends(effects, "disconnect")
    assert bye.to in {ident(p).node_id for p in (2, 3, 4)}
    assert Disconnect(bye.to) in effects
    assert len(seed.active_view()) == 3 and bye.to in seed.passive_view()


def test_forward_join_walk_passive_at_prwl_and_active_at_the_end() -> None:
    hop = with_active(node(5), 2, 3)
    effects = hop.receive(ident(2).node_id, "forward_join", {"m": entry(1), "t": CFG.hyparview.prwl}, 0.0)
    assert ident(1).node_id in hop.passive_view()
    (fwd,) = sends(effects, "forward_join")
    assert fwd.to == ident(3).node_id and fwd.body["t"] == CFG.hyparview.prwl - 1
    last = with_active(node(6), 2, 3)
    effects = last.receive(ident(2).node_id, "forward_join", {"m": entry(1), "t": 0}, 0.0)
    assert ident(1).node_id in last.active_view()
    (req,) = sends(effects, "neighbor")
    assert req.to == ident(1).node_id and req.body["p"] == 1


def test_neighbor_priority() -> None:
    full = with_active(node(5), 2, 3, 4)
    effects = full.receive(ident(1).node_id, "neighbor", {"m": entry(1), "p": 0}, 0.0)
    (reply,) = sends(effects, "neighbor_reply")
    assert reply.body["a"] == 0 and ident(1).node_id not in full.active_view()
    assert effects[-1] == Disconnect(ident(1).node_id) and ident(1).node_id in full.passive_view()
    effects = full.receive(ident(1).node_id, "neighbor", {"m": entry(1), "p": 1}, 0.1)
    (reply,) = sends(effects, "neighbor_reply")
    assert reply.body["a"] == 1 and ident(1).node_id in full.active_view() and len(full.active_view()) == 3
    assert len(sends(effects, "disconnect")) == 1


def test_disconnect_moves_the_peer_to_passive_and_refills_below_min() -> None:
    hv = with_active(node(5), 2, 3)
    hv._add_passive(ident(7))
    effects = hv.receive(ident(2).node_id, "disconnect", {}, 0.0)
    assert ident(2).node_id not in hv.active_view()
    assert Disconnect(ident(2).node_id) in effects
    (req,) = sends(effects, "neighbor")  # below active_min: promote at once, with high priority
    assert req.body["p"] == 1 and req.to in {ident(2).node_id, ident(7).node_id}


def test_link_down_fails_the_neighbour_announces_it_and_promotes() -> None:
    hv = with_active(node(5), 2, 3)
    hv._merge(hv._records.get(ident(2).node_id) or _alive_record(2), 0.0, [])
    hv._add_passive(ident(7))
    effects = hv.link_down(ident(2).node_id, 0.5)
    assert any(isinstance(e, MemberDown) and e.reason == "unreachable" for e in effects)
    assert ident(2).node_id not in hv.active_view() + hv.passive_view()
    (req,) = sends(effects, "neighbor")
    assert req.to == ident(7).node_id
    down = [e for e in hv.tick(1.65) if isinstance(e, TreeSend) and e.op == "gossip"]  # jittered: 0.1 + U(0, 1) s
    assert down and down[0].body["p"][0]["st"] == 2
    # no answer within neighbor_timeout: the passive node is considered dead
    hv.tick(1.2)
    assert ident(7).node_id not in hv.passive_view() and hv.stats()["promotion_timeouts"] == 1


def _alive_record(n: int) -> Any:
    from fabric.membership.overlay import ST_ALIVE, _Record

    return _Record(ident(n), 0, ST_ALIVE, 0.0)


def test_phi_on_active_neighbours_fails_a_silent_one() -> None:
    hv = with_active(node(5), 2)
    hv._merge(_alive_record(2), 0.0, [])
    t, failed = 0.0, []
    while t < 10 and not failed:
        t += CFG.heartbeat_interval
        failed = [e for e in hv.tick(t) if isinstance(e, MemberDown)]
    # local(): phi crosses after about 1.4 s; nobody else to ask, so the suspicion lasts suspect_timeout_max
    # (checked once per heartbeat round)
    assert failed and t < 1.5 + CFG.suspect_timeout_max + CFG.heartbeat_interval
    assert hv.active_view() == []


def test_stray_heartbeat_restores_symmetry_with_disconnect() -> None:
    hv = with_active(node(5), 2)
    hv._merge(_alive_record(3), 0.0, [])
    effects = hv.receive(ident(3).node_id, "hb", {"in": 1}, 0.0)
    assert [type(e) for e in effects] == [Connect, Send, Disconnect] and effects[1].op == "disconnect"


def test_refutes_a_down_record_about_itself() -> None:
    hv = with_active(node(5), 2)
    down = {**entry(5), "v": 0, "st": 2}
    hv.receive(ident(2).node_id, "sync", {"m": [down]}, 0.0)
    # the one refutation rule of every core (fabric.membership.records): a new incarnation at v = 0
    assert hv.digest()[ident(5).node_id] == (2, 0, 0) and hv.stats()["refuted"] == 1
    assert hv.incarnation == 2 and hv.local.incarnation == 2
    # the refuted record goes out in the next announcement
    out = [e for e in hv.tick(1.0) if isinstance(e, TreeSend) and e.op == "gossip"]
    assert out and out[0].body["p"][0]["in"] == 2 and out[0].body["p"][0]["st"] == 0


def test_shuffle_walk_and_reply_route_back_along_the_path() -> None:
    sim = OverlaySim(4, lambda i, rng, now: HyParView(i, CFG, rng=rng, now=now))
    nodes = sim.spawn(12)
    sim.join_storm(nodes[0], nodes, spread=2.0)
    sim.run(30.0)
    assert sim.healed()
    shuffles = sim.sent.get("membership.shuffle", 0)
    replies = sim.sent.get("membership.shuffle_reply", 0)
    assert shuffles > 0 and replies > 0
    for n in nodes:
        core = n.core
        assert isinstance(core, HyParView)
        passive, active = set(core.passive_view()), set(core.active_view())
        assert not passive & active and n.node_id not in passive and len(passive) <= CFG.hyparview.passive_max
    # shuffles filled passive views beyond what the joins left there
    assert sum(len(n.core.passive_view()) for n in nodes if isinstance(n.core, HyParView)) >= 3 * len(nodes)


@pytest.mark.parametrize("op, body", [
    ("join", {"m": entry(3)}),  # not the sender's entry
    ("join", {"m": {"id": b"x"}}),
    ("forward_join", {"m": entry(1), "t": -1}),
    ("neighbor", {"m": "nope", "p": 1}),
    ("shuffle", {"o": entry(1), "t": 0, "n": "x", "p": [ident(1).node_id]}),
    ("shuffle_reply", {"n": [], "p": [b"short"]}),
    ("sync", {"m": "x"}),
    ("sync", {"s": -1}),
    ("hb", [1]),
])
def test_bad_bodies_raise(op: str, body: Any) -> None:
    hv = with_active(node(5), 1, 2)
    before = (hv.active_view(), hv.passive_view(), hv.digest())
    with pytest.raises(BadMembershipMessage):
        hv.receive(ident(1).node_id, op, body, 0.0)
    assert (hv.active_view(), hv.passive_view(), hv.digest()) == before


def test_unknown_ops_are_counted() -> None:
    hv = node(5)
    assert hv.receive(ident(1).node_id, "x-future", {}, 0.0) == []
    assert hv.receive_tree(ident(1).node_id, "x-future", {}, 0.0) == []
    assert hv.stats()["unknown_op"] == 2
