"""The topology manager: reconciles the links an overlay wants with the links a node has open.

Theory of operation
-------------------
Overlay cores are *edge-triggered*: they emit ``Connect``/``Disconnect`` as their views change and the
Node performs them at once. Edges get deferred or missed: a ``Disconnect`` is put off while the
application uses the link (an on-demand link to a non-neighbour, or the links an overlay switch
inherits), a probe exchange can end without its ``Disconnect`` (an answer that never came), and a link
can vanish under a wanted neighbour (its endpoint taken over by a new process, ``Node.disconnect``).

:class:`TopologyManager` is the *level-triggered* half. At most every ``interval`` seconds the Node gives
it what the overlay wants (its neighbours), what is open (each link, and whether it is a probe link, the
``membership`` channel only) and the members known gone (down or left); it returns a :class:`LinkPlan`:

* **open**: wanted neighbours without a link (a repair), each at most once per ``repair_backoff``;
* **close**, with a reason:

  - ``member gone``: a link to a member known down or left, at once, whatever its use;
  - ``idle``: an on-demand (or inherited) link that is not wanted and unused for ``idle_close``;
  - ``stray probe``: a probe link that is neither wanted nor in use and has been so for
    ``stray_grace`` (longer than any probe exchange, so a ping still waiting for its answer is safe).

Use is recorded with :meth:`TopologyManager.used` (the application sent or called over a link that is not
a neighbour: it becomes an on-demand link) and :meth:`TopologyManager.hold` (an overlay switch: every
current link is kept for one idle period while the new overlay forms). Sans-IO: no clock, no sockets;
the caller passes ``now`` and performs the plan. Not thread-safe (the node's loop drives it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """What to do to make the open links match the wanted ones."""

    open: list[bytes] = field(default_factory=list)
    """Wanted neighbours to link (they have no link)."""
    close: list[tuple[bytes, str]] = field(default_factory=list)
    """Links to close, with the reason (``member gone``, ``idle``, ``stray probe``)."""


class TopologyManager:
    """Level-triggered link reconciliation (see the module docstring).

    Args:
        idle_close: seconds an on-demand link may stay unused before it is closed (> 0).
        stray_grace: seconds a probe link may stay unwanted and unused before it is closed (> 0); keep it
            above the overlay's longest probe exchange (HyParView: two ``neighbor_timeout``).
        repair_backoff: seconds between two repairs of the same missing neighbour link (> 0).
        interval: seconds between two reconciliations (> 0); :meth:`due` says when.

    Raises:
        ConfigError: a parameter is not a positive number.
    """

    def __init__(self, *, idle_close: float = 60.0, stray_grace: float = 60.0, repair_backoff: float = 5.0,
                 interval: float = 1.0) -> None:
        for name, value in (("idle_close", idle_close), ("stray_grace", stray_grace),
                            ("repair_backoff", repair_backoff), ("interval", interval)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"TopologyManager.{name} must be a number > 0, got {value!r}")
        self.idle_close = float(idle_close)
        self.stray_grace = float(stray_grace)
        self.repair_backoff = float(repair_backoff)
        self.interval = float(interval)
        self._used: dict[bytes, float] = {}  # on-demand links -> last use
        self._unwanted_since: dict[bytes, float] = {}  # probe links nobody wants -> since when
        self._repaired: dict[bytes, float] = {}  # neighbour -> last repair
        self._next = 0.0
        self.counters: dict[str, int] = {"opened_on_demand": 0, "repaired": 0, "closed_gone": 0,
                                         "closed_idle": 0, "closed_stray": 0}

    # -- use -------------------------------------------------------------------------------------------

    def used(self, link: bytes, now: float) -> None:
        """The application uses ``link`` (a send or call to a member that is not a neighbour): it is an
        on-demand link from now on, kept until unused for ``idle_close``."""
        if link not in self._used:
            self.counters["opened_on_demand"] += 1
        self._used[link] = now

    def touch(self, link: bytes, now: float) -> None:
        """Refresh the last use of ``link`` if it is an on-demand link (the Node calls it per send over one)."""
        if link in self._used:
            self._used[link] = now

    def hold(self, links: Iterable[bytes], now: float) -> None:
        """Keep ``links`` for one idle period (an overlay switch: calls in flight keep their link)."""
        for link in links:
            self._used.setdefault(link, now)

    def in_use(self, link: bytes) -> bool:
        """True for an on-demand link: the overlay's ``Disconnect`` is deferred to the idle rule."""
        return link in self._used

    def forget(self, link: bytes) -> None:
        """``link`` was closed: drop what is known about it."""
        self._used.pop(link, None)
        self._unwanted_since.pop(link, None)

    @property
    def on_demand(self) -> int:
        """How many on-demand links are open."""
        return len(self._used)

    # -- reconciliation --------------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        """True when :meth:`reconcile` should run (at most every ``interval``)."""
        return now >= self._next

    def reconcile(self, wanted: Collection[bytes], linked: Mapping[bytes, bool], gone: Collection[bytes],
                  now: float) -> LinkPlan:
        """Compare and plan. ``wanted``: the overlay's neighbours; ``linked``: open links -> is it a probe
        link; ``gone``: members known down or left. The caller performs the plan (and calls
        :meth:`forget` for each closed link)."""
        self._next = now + self.interval
        plan = LinkPlan()
        for link, probe in linked.items():
            if link in gone:
                plan.close.append((link, "member gone"))
                self.counters["closed_gone"] += 1
                continue
            if link in wanted:
                self._unwanted_since.pop(link, None)
                continue
            last = self._used.get(link)
            if last is not None:
                if now - last > self.idle_close:
                    plan.close.append((link, "idle"))
                    self.counters["closed_idle"] += 1
                continue
            if probe:
                since = self._unwanted_since.setdefault(link, now)
                if now - since > self.stray_grace:
                    plan.close.append((link, "stray probe"))
                    self.counters["closed_stray"] += 1
        for link in wanted:
            if link in linked and not linked[link]:
                continue
            if link in gone or now - self._repaired.get(link, -self.repair_backoff) < self.repair_backoff:
                continue
            self._repaired[link] = now
            plan.open.append(link)
            self.counters["repaired"] += 1
        # bounded state: only links that still exist
        for table in (self._used, self._unwanted_since):
            for link in [k for k in table if k not in linked]:
                del table[link]
        for link in [k for k, t in self._repaired.items() if now - t > self.repair_backoff]:
            del self._repaired[link]
        return plan


__all__ = ["LinkPlan", "TopologyManager"]
