"""The one failure-detection loop of the membership engine (fabric.membership.engine.MemberEngine._monitor):
every policy monitors its members the same way - a detector per monitored member, a suspicion started
at the exact threshold crossing, the member failed when the suspicion outlives its Lifeguard timeout -
and differs only in which members it monitors and in two flags."""

from __future__ import annotations

import random
from typing import Any

import pytest

from fabric.membership import Identity, MemberChanged, MemberDown, MemberStatus, make_overlay
from fabric.membership.config import MembershipConfig
from fabric.membership.engine import MemberEngine
from fabric.membership.types import ST_ALIVE, Send

ME = b"\x01" * 16
PEER = b"\x02" * 16
OTHER = b"\x03" * 16
KINDS = ("full-mesh", "hyparview", "client-server", "static")
MESH = MembershipConfig.local()


def ident(node_id: bytes, name: str, inc: int = 1) -> Identity:
    return Identity(node_id, name, inc, {}, {"membership": ("control", f"sim://{name}", 1)})


def claim(node_id: bytes, name: str, inc: int, st: int) -> dict[str, Any]:
    return {"id": node_id, "nm": name, "in": inc, "st": st, "v": 0, "md": {}, "ep": {}}


def monitoring_peer(kind: str) -> MemberEngine[Any]:
    """A core of ``kind`` that monitors PEER (up since t = 0) and nobody else."""
    overlay = make_overlay(kind, ident(ME, "me"), membership=MESH,
                           static_members=[ident(PEER, "peer")], rng=random.Random(1), now=0.0)
    engine: Any = overlay.core if kind == "full-mesh" else overlay  # type: ignore[attr-defined]
    assert isinstance(engine, MemberEngine)
    if kind == "full-mesh":
        engine.contact(ident(PEER, "peer"), 0.0)  # the handshake: direct evidence, PEER is up
    elif kind == "static":
        engine.receive(PEER, "hb", {"in": 1}, 0.0)  # a configured member is up once heard from
    else:
        engine._add_neighbour(ident(PEER, "peer"), 0.0, [])
        engine.receive(PEER, "sync", {"m": [claim(PEER, "peer", 1, ST_ALIVE)]}, 0.0)
    assert engine.neighbours() == [PEER] and engine.member(PEER) is not None
    return engine


def silent_run(engine: MemberEngine[Any], until: float) -> tuple[float, float, float, float]:
    """Drive the core at its own deadlines while PEER stays silent. Returns when PEER became suspect,
    phi just before and at that instant, and when it was declared down."""
    suspect_at = phi_before = phi_at = down_at = -1.0
    while True:
        t = engine.next_deadline()
        assert t is not None
        if t > until:
            break
        for effect in engine.tick(t):
            if isinstance(effect, MemberChanged) and effect.member.node_id == PEER \
                    and effect.member.status == MemberStatus.SUSPECT:
                suspect_at = t
                phi_before, phi_at = engine.phi(PEER, t - 1e-3) or 0.0, engine.phi(PEER, t) or 0.0
            elif isinstance(effect, MemberDown) and effect.member.node_id == PEER:
                assert effect.reason == "unreachable"
                down_at = t
        if down_at >= 0:
            break
    return suspect_at, phi_before, phi_at, down_at


@pytest.mark.parametrize("kind", KINDS)
def test_every_policy_suspects_at_the_exact_crossing_and_fails_after_the_suspicion_timeout(kind: str) -> None:
    engine = monitoring_peer(kind)
    assert engine.phi(PEER, 0.0) is not None  # every policy exposes its detectors (Node.phi)
    suspect_at, phi_before, phi_at, down_at = silent_run(engine, 30.0)
    threshold = engine.config.phi_threshold
    # the suspicion starts where phi reaches the threshold, not at the next heartbeat round
    assert phi_before < threshold - 0.01 and phi_at == pytest.approx(threshold)
    # nobody to confirm (no other monitored member): the suspicion lasts suspect_timeout_max
    assert down_at - suspect_at == pytest.approx(engine.config.suspect_timeout_max)
    assert engine.member(PEER) is not None and engine.member(PEER).status == MemberStatus.DOWN  # type: ignore[union-attr]
    assert PEER not in engine.neighbours() and engine.phi(PEER, down_at) is None


def test_the_same_silence_is_detected_at_the_same_instant_by_every_policy() -> None:
    # the detector fields are the same in both configuration classes' presets, and one loop runs them
    timings = {kind: silent_run(monitoring_peer(kind), 30.0) for kind in KINDS}
    suspects = {round(t[0], 9) for t in timings.values()}
    downs = {round(t[3], 9) for t in timings.values()}
    assert len(suspects) == 1 and len(downs) == 1, timings


@pytest.mark.parametrize("kind", KINDS)
def test_a_sign_of_life_ends_the_suspicion_on_every_policy(kind: str) -> None:
    engine = monitoring_peer(kind)
    suspect_at = -1.0
    while suspect_at < 0:
        t = engine.next_deadline()
        assert t is not None and t < 30.0
        if any(isinstance(e, MemberChanged) and e.member.status == MemberStatus.SUSPECT for e in engine.tick(t)):
            suspect_at = t
    heard = suspect_at + 0.01
    effects = engine.traffic(PEER, heard)
    back = [e for e in effects if isinstance(e, MemberChanged)]
    assert back and back[0].member.status == MemberStatus.ALIVE and back[0].previous.status == MemberStatus.SUSPECT
    # the suspicion's timeout no longer applies: nothing is declared where it would have run out
    deadline = suspect_at + engine.config.suspect_timeout_max
    while (t := engine.next_deadline()) is not None and t <= deadline + 0.01:
        assert not any(isinstance(e, MemberDown) for e in engine.tick(t))
    assert engine.member(PEER).status == MemberStatus.ALIVE  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
def test_the_two_policy_flags(kind: str) -> None:
    engine = monitoring_peer(kind)
    full_mesh = kind == "full-mesh"
    assert engine.evidence_required is full_mesh and engine.replace_names is full_mesh
    if kind == "static":
        return  # no membership gossip: members come only from the configuration
    # a gossiped alive claim nobody confirmed directly: up at once on a partial view, not on full mesh
    body: dict[str, Any] = {"m": [claim(OTHER, "other", 1, ST_ALIVE)]}
    if full_mesh:
        body.update({"in": 1, "r": 0})
    engine.receive(PEER, "sync", body, 1.0)
    assert (engine.member(OTHER) is None) is full_mesh
    if full_mesh:
        engine.receive(OTHER, "hb", {"in": 1}, 1.1)  # direct evidence of that incarnation
        assert engine.member(OTHER) is not None and OTHER in engine.neighbours()


def test_name_replacement_fails_a_silent_older_incarnation_only_where_the_flag_is_set() -> None:
    engine = monitoring_peer("full-mesh")
    # a new process under PEER's name (another node id, a higher incarnation), PEER silent for a while
    engine.contact(ident(OTHER, "peer", inc=2), 5.0)
    assert engine.member(PEER).status == MemberStatus.DOWN  # type: ignore[union-attr]
    assert engine.stats()["declared_down"] == 1 and PEER not in engine.neighbours()
    hv = monitoring_peer("hyparview")
    hv.receive(PEER, "sync", {"m": [claim(OTHER, "peer", 2, ST_ALIVE)]}, 5.0)
    assert hv.member(PEER).status == MemberStatus.ALIVE  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["hyparview", "client-server", "static"])
def test_record_overlays_answer_a_direct_probe(kind: str) -> None:
    engine = monitoring_peer(kind)
    effects = engine.receive(PEER, "hb", {"in": 1, "a": 1}, 0.5)
    assert [e for e in effects if isinstance(e, Send)] == [Send(PEER, "hb", {"in": 1})]


@pytest.mark.parametrize("kind", KINDS)
def test_a_late_tick_declares_nothing_until_the_recheck_on_every_policy(kind: str) -> None:
    engine = monitoring_peer(kind)
    suspect_at = -1.0
    while suspect_at < 0:
        t = engine.next_deadline()
        assert t is not None and t < 30.0
        if any(isinstance(e, MemberChanged) and e.member.status == MemberStatus.SUSPECT for e in engine.tick(t)):
            suspect_at = t
    engine.next_deadline()
    # the node was starved: its timer runs long after the suspicion's deadline. The silence it measured
    # is its own, so this tick declares nothing (Lifeguard), and the node's health score rises.
    late = suspect_at + engine.config.suspect_timeout_max + 0.5
    assert not any(isinstance(e, MemberDown) for e in engine.tick(late))
    assert engine.health.stats()["late_ticks"] == 1 and engine.member(PEER).status == MemberStatus.SUSPECT  # type: ignore[union-attr]
    recheck = late + engine.config.heartbeat_interval / 2
    down_at = -1.0
    while down_at < 0:
        t = engine.next_deadline()
        assert t is not None and t < late + 30.0
        if any(isinstance(e, MemberDown) for e in engine.tick(t)):
            down_at = t
    assert down_at >= recheck
