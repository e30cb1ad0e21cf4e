"""The one interpreter of overlay effects, shared by ``fabric.Node`` and the simulators in ``fabric.testing``.

Theory of operation
-------------------
An overlay core (:class:`~fabric.membership.Overlay`: full-mesh, HyParView, client-server, static) is
sans-IO: it takes an input and the time and returns effects. :class:`MembershipDriver` owns the core of
one node and everything between the core and the outside world that used to exist three times:

* **effects**: ``Send``/``TreeSend`` go to :meth:`DriverHost.send_overlay` (only to a linked peer; a send
  without a link is counted and dropped), ``Connect``/``Disconnect`` to :meth:`DriverHost.link` /
  :meth:`DriverHost.unlink`, ``Dial`` to :meth:`DriverHost.dial`, ``Deliver`` to
  :meth:`DriverHost.deliver`, membership events to :meth:`DriverHost.member_event`;
* **topology epochs**: a :class:`~fabric.topology.TopologyCoordinator` holds ``(overlay, epoch,
  proposer)``. Every overlay message carries it (``tp``) once the epoch is above 0; a receiver merges it
  first (and switches when it is newer: heartbeats are the anti-entropy of the topology) and drops a
  message spoken in an older epoch, so two overlays never read each other's messages;
* **switching** (:meth:`switch`, :meth:`propose`, automatic by size in :meth:`on_timer`): the new core
  adopts the members the old one knew alive and joins through their seeds; the links that exist are
  held (``TopologyManager.hold``) so the ones still used are not closed under a call in flight;
* **event de-duplication**: members that were up before a switch are not announced up again by the new
  core (and neither is ``Joined``), until the new overlay has settled (one idle period);
* **link retention and repair**: a ``Disconnect`` of a link the application uses is deferred, and once a
  ``reconcile_interval`` the :class:`~fabric.topology.TopologyManager` closes links nobody wants and
  repairs missing neighbour links;
* **timers**: one deadline (the core's ``next_deadline``), handed to :meth:`DriverHost.set_timer`.

The host performs I/O: the Node with its transport and event loop, the simulators in memory with a
manual clock. All methods run on the host's one thread (the Node's loop); ``now`` is monotonic seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ProtocolError
from ..membership import (
    BadMembershipMessage,
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
    Overlay,
    OverlayEffect,
    Send,
    TreeSend,
)
from ..wire import node_id_str
from .coordinator import TopologyCoordinator, TopologyError, TopologyState
from .manager import TopologyManager

log = logging.getLogger(__name__)

MEMBERSHIP_CHANNEL = "membership"
"""The channel whose endpoint is a member's seed address (same name as ``fabric.config``)."""

TOPOLOGY_OP = "topo"
"""Membership op of a bare topology announcement (a message that carries only ``tp``)."""

OverlayFactory = Callable[[str, Identity, float], Overlay]
"""``factory(overlay_name, identity, now)``: builds the overlay core called ``overlay_name``."""

_UP = (MemberStatus.ALIVE, MemberStatus.SUSPECT)
_SENDS = (Send, TreeSend)  # a tuple: isinstance is faster with it than with a union


class DriverHost(Protocol):
    """What a :class:`MembershipDriver` needs from the node it drives (the Node, or a simulated node)."""

    def send_overlay(self, to: bytes, tree: bool, op: str, body: dict[str, Any]) -> bool | None:
        """Send a MEMBERSHIP (``tree=False``) or TREE message to ``to`` over the link to it. Returns
        True when sent, False when the transport refused it (full), None when there is no link to ``to``
        (nothing sent)."""
        ...

    def linked(self) -> dict[bytes, bool]:
        """Open links: node id -> is it a probe link (membership channel only)."""
        ...

    def linked_identities(self) -> list[Identity]:
        """Identities of the linked members (what a new overlay core is introduced to after a switch)."""
        ...

    def link(self, identity: Identity, probe: bool) -> None:
        """Open (or upgrade) the link to ``identity`` (``probe``: the membership channel only)."""
        ...

    def unlink(self, node_id: bytes, reason: str) -> None:
        """Close the link to ``node_id`` (unknown ids are ignored)."""
        ...

    def dial(self, endpoint: str) -> None:
        """Run the HELLO/WELCOME handshake with ``endpoint``; on success, link and call :meth:`MembershipDriver.contact`."""
        ...

    def deliver(self, effect: Deliver) -> None:
        """Hand a broadcast (or relayed message) the overlay carried to the application."""
        ...

    def member_event(self, event: MembershipEvent) -> None:
        """Publish a membership event (already de-duplicated across switches)."""
        ...

    def set_timer(self, at: float) -> None:
        """Call :meth:`MembershipDriver.on_timer` at ``at`` (replacing the timer set before, if any)."""
        ...


@dataclass(frozen=True, slots=True)
class AutoTopology:
    """Automatic switching by cluster size (between full-mesh and HyParView only); see ``NodeConfig``."""

    threshold: int
    """Members at which the cluster moves to HyParView."""
    hysteresis: int
    """It moves back to full-mesh at ``threshold - hysteresis`` members or fewer."""
    dwell: float
    """Seconds the size must hold before a switch is proposed."""


class MembershipDriver:
    """Drives one overlay core for one node (see the module docstring).

    Args:
        host: performs the effects (see :class:`DriverHost`).
        identity: this node's identity.
        overlay: the overlay to start with (a name known to ``factory`` and in ``overlays``).
        factory: builds overlay cores (:data:`OverlayFactory`).
        overlays: the overlay names a topology state may carry.
        now: current time.
        cooldown: seconds between two switches (see :class:`TopologyCoordinator`).
        auto: automatic switching by size, or None.
        links: the link manager (default one with ``idle_close`` 60 s); its ``in_use`` links survive a
            ``Disconnect``.
        settle: seconds after a switch during which members announced before it are not announced again.
        counters: where to count (``membership_send_unlinked``, ``membership_send_full``,
            ``stale_topology_messages``); a fresh dict when None.
        errors: where to count bad input (``bad_membership``); a fresh dict when None.
    """

    def __init__(self, host: DriverHost, identity: Identity, overlay: str, factory: OverlayFactory,
                 overlays: Sequence[str], now: float, *, cooldown: float = 10.0, auto: AutoTopology | None = None,
                 links: TopologyManager | None = None, settle: float = 60.0,
                 counters: MutableMapping[str, int] | None = None,
                 errors: MutableMapping[str, int] | None = None) -> None:
        self.host = host
        self.factory = factory
        self.overlay_name = overlay
        self.core: Overlay = factory(overlay, identity, now)
        self.node_id = identity.node_id
        self.topology = TopologyCoordinator(identity.node_id, overlay, tuple(overlays), cooldown=cooldown, now=now)
        self.auto = auto
        self.links = links if links is not None else TopologyManager(idle_close=settle, stray_grace=settle)
        self.settle = settle
        self.counters: MutableMapping[str, int] = counters if counters is not None else {}
        self.errors: MutableMapping[str, int] = errors if errors is not None else {}
        self.history: deque[dict[str, Any]] = deque(maxlen=16)
        """The switches seen here (newest last), for ``current_topology()``."""
        self.running = True
        self._announced_up: set[tuple[bytes, int]] = set()
        self._settled_at = math.inf
        self._auto_pending: tuple[str, float] | None = None
        self._timer_at = math.inf
        self._traffic_noted: dict[bytes, float] = {}
        self._told: dict[bytes, float] = {}  # source -> when it was last told the topology (stale sender)
        self._seeds: list[str] = []  # the seeds of the latest join(): a switch keeps joining through them
        self._reschedule()

    # -- inputs ------------------------------------------------------------------------------------------

    def join(self, seeds: Sequence[str], now: float) -> None:
        """Join (again) through these seed endpoints."""
        self._seeds = list(seeds)
        self.apply(self.core.join(seeds, now))

    def contact(self, identity: Identity, now: float) -> None:
        """The handshake with ``identity`` completed (either direction)."""
        self.apply(self.core.contact(identity, now))

    def receive(self, source: bytes, tree: bool, op: str, body: Any, now: float) -> None:
        """A MEMBERSHIP (``tree=False``) or TREE message from ``source``. Merges the topology state it
        carries first (possibly switching), drops it when spoken in an older epoch, else hands it to the
        core. A bad body is counted (``bad_membership``) and dropped."""
        try:
            if isinstance(body, dict):
                sender_epoch = 0
                if "tp" in body:
                    sender_epoch = self.merge_topology(body.pop("tp"), now)  # may switch our overlay first
                    if op == TOPOLOGY_OP:
                        return
                if sender_epoch < self.topology.state.epoch:
                    # Spoken in an older topology: drop it, and tell the sender the current one. A
                    # node that just joined (configured with another overlay, epoch 0) may have no
                    # other way to hear it: its first messages are the ones we drop, and the overlay
                    # we run may send nothing to a node it never heard from.
                    self._count("stale_topology_messages")
                    self._tell_topology(source, now)
                    return
            core = self.core
            effects = core.receive_tree(source, op, body, now) if tree else core.receive(source, op, body, now)
        except (BadMembershipMessage, ProtocolError) as exc:
            self.errors["bad_membership"] = self.errors.get("bad_membership", 0) + 1
            log.debug("bad membership message from %s: %s", source.hex()[:8], exc)
            return
        self.apply(effects)

    def _tell_topology(self, source: bytes, now: float) -> None:
        """Send the current topology state to ``source`` (at most once a second per source)."""
        told = self._told
        if now - told.get(source, -math.inf) < 1.0:
            return
        if len(told) >= 4096:  # bounded: forget the oldest half
            for key in list(told)[:2048]:
                del told[key]
        told[source] = now
        self._count("topology_told")
        self.host.send_overlay(source, False, TOPOLOGY_OP, {"tp": self.topology.state.to_wire()})

    def note_traffic(self, source: bytes, now: float) -> None:
        """Any other message from ``source``: a sign of life (told to the core at most every 50 ms, which
        keeps this cheap enough for every message)."""
        noted = self._traffic_noted
        if now - noted.get(source, -1.0) >= 0.05:
            if len(noted) >= 4096 and source not in noted:  # bounded: any id can send (forget the oldest half)
                for key in list(noted)[:2048]:
                    del noted[key]
            noted[source] = now
            effects = self.core.traffic(source, now)
            if effects:
                self.apply(effects)

    def forget(self, source: bytes) -> None:
        """``source`` left or its link closed: drop per-source state (bounded memory)."""
        self._traffic_noted.pop(source, None)
        self._told.pop(source, None)

    def link_up(self, node_id: bytes, now: float) -> None:
        """The transport reports the link to ``node_id`` (re)connected."""
        self.apply(self.core.link_up(node_id, now))

    def link_down(self, node_id: bytes, now: float) -> None:
        """The transport reports the link to ``node_id`` broke."""
        self.apply(self.core.link_down(node_id, now))

    def broadcast(self, payload: Any, now: float) -> None:
        """Send ``payload`` to every live member over the overlay (each gets one ``Deliver``)."""
        self.apply(self.core.broadcast(payload, now))

    def send_to(self, target: bytes, payload: Any, now: float, *, ttl: int | None = None) -> None:
        """Send ``payload`` to ``target``, directly or relayed by the overlay."""
        self.apply(self.core.send_to(target, payload, now, ttl=ttl))

    def set_metadata(self, metadata: dict[str, str], now: float) -> None:
        """Replace this node's metadata and spread it."""
        self.apply(self.core.set_metadata(metadata, now))

    def leave(self, now: float) -> None:
        """Say goodbye (a state push with this node marked left); the driver stops afterwards."""
        self.apply(self.core.leave(now))

    def stop(self) -> None:
        """No more timers or effects after this."""
        self.running = False

    def on_timer(self, now: float) -> None:
        """The timer set through :meth:`DriverHost.set_timer` fired."""
        self._timer_at = math.inf
        if not self.running:
            return
        self.apply(self.core.tick(now))
        if now >= self._settled_at:
            self._settled_at = math.inf
            self._announced_up.clear()
        if self.links.due(now):  # once a reconcile interval, not on every heartbeat tick
            self.reconcile(now)
            if self.auto is not None:
                self._auto_topology(now)
        self._reschedule()

    # -- effects -----------------------------------------------------------------------------------------

    def apply(self, effects: Iterable[OverlayEffect]) -> None:
        """Perform what the overlay core asked for, in order."""
        host = self.host
        for effect in effects:
            if isinstance(effect, _SENDS):
                body = effect.body
                epoch = self.topology.state.epoch
                if epoch:
                    # Every overlay message says which topology epoch it belongs to (see receive()).
                    body = {**body, "tp": self.topology.state.to_wire()}
                sent = host.send_overlay(effect.to, isinstance(effect, TreeSend), effect.op, body)
                if not sent:
                    self._count("membership_send_full" if sent is False else "membership_send_unlinked")
            elif isinstance(effect, Deliver):
                host.deliver(effect)
            elif isinstance(effect, Connect):
                host.link(effect.identity, effect.probe)
            elif isinstance(effect, Disconnect):
                if self.links.in_use(effect.node_id):
                    continue  # the application still uses this link: the idle rule closes it later
                host.unlink(effect.node_id, "membership")
            elif isinstance(effect, Dial):
                if self.running:
                    host.dial(effect.endpoint)
            else:
                if isinstance(effect, MemberUp) and (effect.member.node_id, effect.member.incarnation) in self._announced_up:
                    continue  # already up before an overlay switch: events fire once per change
                if isinstance(effect, Joined) and self._announced_up:
                    continue
                host.member_event(effect)
        self._reschedule()

    def _reschedule(self) -> None:
        if not self.running:
            return
        deadline = self.core.next_deadline()
        if deadline is None or deadline >= self._timer_at:
            return
        self._timer_at = deadline
        self.host.set_timer(deadline)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- links -------------------------------------------------------------------------------------------

    def reconcile(self, now: float) -> None:
        """The topology manager's level-triggered pass (see :mod:`fabric.topology.manager`): close links
        nobody wants, repair missing neighbour links. Only members known to be gone count as gone: right
        after a switch the new core does not know everyone yet, and "unknown" must not close a link a call
        is using."""
        core = self.core
        members = core.members()
        gone = {m.node_id for m in members if m.status in (MemberStatus.DOWN, MemberStatus.LEFT)}
        wanted = set(core.neighbours()) if core.joined and not core.leaving else set()
        plan = self.links.reconcile(wanted, self.host.linked(), gone, now)
        for key, reason in plan.close:
            self.host.unlink(key, reason)
        if plan.open:
            by_id = {m.node_id: m for m in members}
            for key in plan.open:
                m = by_id.get(key)
                if m is not None and m.status in _UP:
                    log.info("node %s repairs its link to neighbour %s", core.local.name, m.name)
                    self.host.link(m.identity(), False)

    # -- topology ----------------------------------------------------------------------------------------

    @property
    def state(self) -> TopologyState:
        """The cluster topology as this node knows it."""
        return self.topology.state

    def propose(self, overlay: str, now: float, *, expected: str | tuple[str, int] | None = None,
                reason: str = "proposed here") -> TopologyState:
        """Switch the cluster to ``overlay`` as a new epoch proposed here: adopt it, announce it to every
        linked member and switch this node. Raises as :meth:`TopologyCoordinator.propose`."""
        state = self.topology.propose(overlay, now, expected=expected)
        log.info("node %s proposes topology %s (epoch %d)", self.core.local.name, overlay, state.epoch)
        for key in list(self.host.linked()):
            self.host.send_overlay(key, False, TOPOLOGY_OP, {"tp": state.to_wire()})
        self.switch(overlay, reason, now)
        return state

    def merge_topology(self, raw: Any, now: float) -> int:
        """Merge a topology state a peer sent; switch when it wins. Returns its epoch (-1: malformed)."""
        heard = TopologyState.from_wire(raw, self.topology.overlays)
        state = self.topology.merge(raw, now)
        if state is not None and state.overlay != self.overlay_name:
            log.info("node %s adopts topology %s (epoch %d)", self.core.local.name, state.overlay, state.epoch)
            self.switch(state.overlay, "adopted", now)
        return heard.epoch if heard is not None else -1

    def switch(self, name: str, reason: str, now: float) -> None:
        """Replace the overlay core live: the new core starts from the members the old one knew alive
        (:meth:`~fabric.membership.Overlay.adopt`) and joins through their seeds; links the new overlay
        does not want are closed a little later, unless the application uses them. ``reason`` goes to
        :attr:`history`."""
        if name == self.overlay_name:
            return
        old = self.core
        state = self.topology.state
        self.history.append({
            "at": time.time(), "from": self.overlay_name, "to": name, "epoch": state.epoch,
            "proposer": node_id_str(state.proposer) if state.epoch else None, "reason": reason,
            "members": len(old.alive_members()),
        })
        alive = [m for m in old.members() if m.node_id != self.node_id and m.status in _UP]
        self._announced_up.update((m.node_id, m.incarnation) for m in alive)
        self._timer_at = math.inf  # the old core's deadline no longer matters
        self.overlay_name = name
        self.core = self.factory(name, old.local, now)
        seeds = [m.endpoints[MEMBERSHIP_CHANNEL][1] for m in alive if MEMBERSHIP_CHANNEL in m.endpoints]
        # A node that has not joined yet knows nobody alive: the seeds it joins through keep it joining (an
        # empty seed list would make the new core declare itself joined alone).
        seeds = list(dict.fromkeys([*seeds, *self._seeds]))
        # Links the old overlay made stay up meanwhile (calls in flight keep their link): mark them as in
        # use now, so the reconcile step closes only the ones nobody uses any more.
        self.links.hold(list(self.host.linked()), now)
        self.apply(self.core.adopt(alive, now))
        self.apply(self.core.join(seeds, now))
        for identity in self.host.linked_identities():
            self.apply(self.core.contact(identity, now))
        self._settled_at = now + self.settle
        self._reschedule()

    def _auto_topology(self, now: float) -> None:
        """Automatic mode: the alive member with the lowest node id proposes HyParView once the cluster
        has had ``threshold`` members for ``dwell`` seconds, and full-mesh once it has had at most
        ``threshold - hysteresis``. Only between those two overlays: a cluster an operator moved to
        another overlay stays there."""
        auto = self.auto
        if auto is None or not self.core.joined or self.overlay_name not in ("full-mesh", "hyparview"):
            self._auto_pending = None
            return
        alive = self.core.alive_members()
        if not alive or min(m.node_id for m in alive) != self.node_id:
            self._auto_pending = None
            return  # not the decider
        size, current = len(alive), self.overlay_name
        want, rule = current, ""
        if current == "full-mesh" and size >= auto.threshold:
            want, rule = "hyparview", f"{size} members >= auto_threshold {auto.threshold}"
        elif current == "hyparview" and size <= auto.threshold - auto.hysteresis:
            want, rule = "full-mesh", (f"{size} members <= auto_threshold - auto_hysteresis "
                                       f"{auto.threshold - auto.hysteresis}")
        if want == current:
            self._auto_pending = None
            return
        if self._auto_pending is None or self._auto_pending[0] != want:
            self._auto_pending = (want, now)  # a join storm or a brief partition must not switch at once
        if now - self._auto_pending[1] < auto.dwell:
            return
        try:
            state = self.topology.propose(want, now, expected=current)
        except (ValueError, TopologyError) as exc:  # cooldown or a concurrent switch: try again later
            log.debug("node %s: automatic topology switch postponed: %s", self.core.local.name, exc)
            return
        self._auto_pending = None
        log.warning("node %s: automatic topology: %s -> %s (epoch %d): %s", self.core.local.name, current, want,
                    state.epoch, rule)
        for key in list(self.host.linked()):
            self.host.send_overlay(key, False, TOPOLOGY_OP, {"tp": state.to_wire()})
        self.switch(want, f"auto: {rule}", now)

    # -- views -------------------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """The core's membership view."""
        return self.core.members()

    def alive_members(self) -> list[Member]:
        """Members that are up (alive or suspect), this node included."""
        return [m for m in self.core.members() if m.status in _UP]


__all__ = ["AutoTopology", "DriverHost", "MembershipDriver", "OverlayFactory", "TOPOLOGY_OP"]
