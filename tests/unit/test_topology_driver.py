"""MembershipDriver on its own: a scripted overlay core and a recording host (no network, no clock)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fabric.membership import (
    Connect,
    Deliver,
    Dial,
    Disconnect,
    Identity,
    Joined,
    Member,
    MembershipEvent,
    MemberStatus,
    MemberUp,
    OverlayEffect,
    Send,
)
from fabric.topology.driver import TOPOLOGY_OP, MembershipDriver

OVERLAYS = ("full-mesh", "hyparview")


def ident(n: int) -> Identity:
    return Identity(bytes([n]) * 16, f"n{n}", 1, {}, {"membership": ("control", f"mem://n{n}", 1)})


class FakeCore:
    """Returns what the test queued in ``script`` and records the inputs."""

    def __init__(self, overlay: str, identity: Identity, now: float) -> None:
        self.overlay = overlay
        self.local = identity
        self.node_id = identity.node_id
        self.joined = True
        self.leaving = False
        self.script: list[OverlayEffect] = []
        self.calls: list[tuple[str, Any]] = []
        self.known: list[Member] = [Member(identity.node_id, identity.name, 1, MemberStatus.ALIVE, {},
                                           dict(identity.endpoints))]
        self.deadline: float | None = None

    def _out(self, name: str, arg: Any = None) -> list[OverlayEffect]:
        self.calls.append((name, arg))
        out, self.script = self.script, []
        return out

    def members(self) -> list[Member]:
        return list(self.known)

    def alive_members(self) -> list[Member]:
        return [m for m in self.known if m.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT)]

    def neighbours(self) -> list[bytes]:
        return [m.node_id for m in self.known if m.node_id != self.node_id]

    def join(self, seeds: Sequence[str], now: float) -> list[OverlayEffect]:
        return self._out("join", list(seeds))

    def adopt(self, members: Sequence[Member], now: float) -> list[OverlayEffect]:
        self.known += [m for m in members if m.node_id != self.node_id]
        return self._out("adopt", [m.name for m in members])

    def contact(self, identity: Identity, now: float) -> list[OverlayEffect]:
        return self._out("contact", identity.name)

    def receive(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        return self._out("receive", (op, dict(body)))

    def receive_tree(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        return self._out("receive_tree", (op, dict(body)))

    def traffic(self, source: bytes, now: float) -> list[OverlayEffect]:
        return self._out("traffic", source)

    def tick(self, now: float) -> list[OverlayEffect]:
        return self._out("tick", now)

    def leave(self, now: float) -> list[OverlayEffect]:
        return self._out("leave")

    def next_deadline(self) -> float | None:
        return self.deadline


class Host:
    def __init__(self) -> None:
        self.links: dict[bytes, bool] = {}
        self.sent: list[tuple[bytes, bool, str, dict[str, Any]]] = []
        self.log: list[tuple[str, Any]] = []
        self.timer: float | None = None

    def send_overlay(self, to: bytes, tree: bool, op: str, body: dict[str, Any]) -> bool | None:
        if to not in self.links:
            return None
        self.sent.append((to, tree, op, body))
        return True

    def linked(self) -> dict[bytes, bool]:
        return dict(self.links)

    def linked_identities(self) -> list[Identity]:
        return [ident(k[0]) for k in self.links]

    def link(self, identity: Identity, probe: bool) -> None:
        self.links[identity.node_id] = probe
        self.log.append(("link", identity.name))

    def unlink(self, node_id: bytes, reason: str) -> None:
        self.links.pop(node_id, None)
        self.log.append(("unlink", reason))

    def dial(self, endpoint: str) -> None:
        self.log.append(("dial", endpoint))

    def deliver(self, effect: Deliver) -> None:
        self.log.append(("deliver", effect.payload))

    def member_event(self, event: MembershipEvent) -> None:
        self.log.append((type(event).__name__, getattr(getattr(event, "member", None), "name", "")))

    def set_timer(self, at: float) -> None:
        self.timer = at


def make(host: Host) -> MembershipDriver:
    return MembershipDriver(host, ident(1), "full-mesh", FakeCore, OVERLAYS, 0.0, cooldown=1.0, settle=10.0)


def test_effects_are_performed_in_order_and_sends_need_a_link() -> None:
    host = Host()
    driver = make(host)
    core = driver.core
    assert isinstance(core, FakeCore)
    core.script = [Connect(ident(2)), Send(ident(2).node_id, "hb", {"x": 1}), Send(ident(3).node_id, "hb", {}),
                   Dial("mem://n4"), Deliver(ident(2).node_id, "payload", False, 1), Joined()]
    driver.join(["mem://n2"], 0.0)
    assert host.log == [("link", "n2"), ("dial", "mem://n4"), ("deliver", "payload"), ("Joined", "")]
    assert host.sent == [(ident(2).node_id, False, "hb", {"x": 1})]  # epoch 0: no ``tp`` stamped
    assert driver.counters["membership_send_unlinked"] == 1


def test_a_disconnect_waits_while_the_application_uses_the_link() -> None:
    host = Host()
    driver = make(host)
    host.links[ident(2).node_id] = False
    driver.links.used(ident(2).node_id, 0.0)
    driver.apply([Disconnect(ident(2).node_id)])
    assert ident(2).node_id in host.links
    driver.links.forget(ident(2).node_id)
    driver.apply([Disconnect(ident(2).node_id)])
    assert host.log[-1] == ("unlink", "membership")


def test_the_timer_follows_the_earliest_deadline() -> None:
    host = Host()
    driver = make(host)
    core = driver.core
    assert isinstance(core, FakeCore) and host.timer is None
    core.deadline = 5.0
    driver.apply([])
    assert host.timer == 5.0
    core.deadline = 3.0
    driver.apply([])
    assert host.timer == 3.0
    core.deadline = 4.0
    driver.apply([])
    assert host.timer == 3.0  # a later deadline waits for the earlier timer
    driver.on_timer(3.0)
    assert host.timer == 4.0 and ("tick", 3.0) in core.calls


def test_a_switch_stamps_the_epoch_announces_it_and_does_not_repeat_member_events() -> None:
    host = Host()
    driver = make(host)
    old = driver.core
    assert isinstance(old, FakeCore)
    peer = ident(2)
    host.links[peer.node_id] = False
    old.known.append(Member(peer.node_id, peer.name, 1, MemberStatus.ALIVE, {}, dict(peer.endpoints)))
    state = driver.propose("hyparview", 1.0)
    assert state.epoch == 1 and driver.overlay_name == "hyparview"
    assert host.sent[0][2] == TOPOLOGY_OP and host.sent[0][3]["tp"]["o"] == "hyparview"
    new = driver.core
    assert isinstance(new, FakeCore) and new is not old and new.overlay == "hyparview"
    assert [c[0] for c in new.calls] == ["adopt", "join", "contact"]  # adopted, joined through the seeds, met
    assert new.calls[1] == ("join", ["mem://n2"])
    # every overlay message now says its epoch
    driver.apply([Send(peer.node_id, "hb", {"x": 1})])
    assert host.sent[-1][3] == {"x": 1, "tp": state.to_wire()}
    # the new core announcing a member that was up before the switch: not an event again
    driver.apply([MemberUp(new.known[1]), Joined()])
    assert not any(kind in ("MemberUp", "Joined") for kind, _ in host.log)
    # after the settle period, events fire again
    driver.on_timer(1.0 + 10.0)
    driver.apply([MemberUp(new.known[1])])
    assert host.log[-1] == ("MemberUp", "n2")
    assert driver.history[-1]["from"] == "full-mesh" and driver.history[-1]["to"] == "hyparview"


def test_a_message_from_an_older_epoch_is_dropped_and_its_sender_told_the_topology_once_a_second() -> None:
    host = Host()
    driver = make(host)
    newcomer = ident(3)
    host.links[newcomer.node_id] = False
    state = driver.propose("hyparview", 1.0)
    host.sent.clear()
    core = driver.core
    assert isinstance(core, FakeCore)
    for t in (2.0, 2.5, 3.1):
        driver.receive(newcomer.node_id, False, "join", {"a": 1}, t)  # no ``tp``: epoch 0
    assert not any(c[0] == "receive" for c in core.calls)
    assert driver.counters["stale_topology_messages"] == 3
    assert [(s[2], s[3]["tp"]["e"]) for s in host.sent] == [(TOPOLOGY_OP, state.epoch)] * 2  # at 2.0 and 3.1
    # a current message reaches the core, without its ``tp``
    driver.receive(newcomer.node_id, True, "gossip", {"a": 2, "tp": state.to_wire()}, 4.0)
    assert core.calls[-1] == ("receive_tree", ("gossip", {"a": 2}))


def test_a_newer_topology_heard_from_a_peer_switches_this_node() -> None:
    host = Host()
    driver = make(host)
    other = MembershipDriver(Host(), ident(9), "full-mesh", FakeCore, OVERLAYS, 0.0)
    announced = other.propose("hyparview", 0.0).to_wire()
    # a stranger's announcement is refused (issue 16: a forged topo from a non-member switched a node)
    driver.receive(ident(8).node_id, False, TOPOLOGY_OP, {"tp": announced}, 4.0)
    driver.receive(ident(8).node_id, False, "hb", {"tp": announced}, 4.0)
    assert driver.overlay_name == "full-mesh" and driver.errors["topology_refused"] == 2
    host.links[ident(9).node_id] = False  # a linked member
    driver.receive(ident(9).node_id, False, TOPOLOGY_OP, {"tp": announced}, 5.0)
    assert driver.overlay_name == "hyparview" and driver.state.epoch == 1
    assert driver.history[-1]["reason"] == "adopted"
    # a malformed body is counted, never raised
    driver.receive(ident(9).node_id, False, "hb", {"tp": {"e": "bad"}}, 6.0)
    assert driver.counters["stale_topology_messages"] == 1
