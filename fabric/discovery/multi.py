"""The ``multi`` strategy: several strategies at once, merged, with failover and periodic re-offers.

Theory of operation
-------------------
Every ``polling_interval`` (or at once when a push-style child such as mDNS or gossip reports a change)
:meth:`MultiDiscovery.refresh` polls every child concurrently and hands each answer, with the time of
the child's last *real* backend answer (:attr:`DiscoveryPlugin.last_success`), to the pure
:class:`CandidateMerger`. The merged view is the de-duplicated union (by node id; an anonymous DNS/static
candidate folds into an identified one with the same seed) of the answers of every child whose backend
answered within ``answer_ttl`` seconds. So:

* **failover**: a child whose backend is down keeps returning its last good answer (the plugin
  contract), which stays in the view for ``answer_ttl`` and then ages out, while the other children
  keep supplying candidates;
* **change callback**: subscribers get a :class:`CandidateUpdate` (``reason="changed"``) whenever the
  merged view changes, with what was added and removed;
* **re-offer**: every ``reoffer_interval`` seconds without a change, subscribers get the unchanged view
  again (``reason="reoffer"``), so the join path retries known peers it is not linked to even though
  discovery saw nothing new (libcluster #148: no reconnect after a node drops unless DNS "bounces").

A candidate in the view is only a suggestion: whether it is a live member is decided by the membership
layer from the peer's own traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .base import (
    Candidate,
    Clock,
    ConfigurationError,
    DiscoveryPlugin,
    LocalNode,
    check_positive,
    merge_candidates,
)

if TYPE_CHECKING:
    from .registry import DiscoveryRegistry

__all__ = ["CandidateMerger", "CandidateUpdate", "MultiConfig", "MultiDiscovery"]


@dataclasses.dataclass(frozen=True)
class MultiConfig:
    """Configuration of the ``multi`` strategy.

    Attributes:
        strategies: names of the child strategies, highest priority first (its seed/name win when two
            children describe the same node). Used when building from a registry.
        options: strategy name -> its options mapping (as for ``registry.create``). Missing: defaults.
        polling_interval: seconds between polls of every child. Push-style children wake the loop early.
        answer_ttl: seconds a child's last good answer stays in the merged view after its backend stopped
            answering. Longer rides out longer outages; shorter stops suggesting dead addresses sooner.
        reoffer_interval: seconds after which an unchanged view is offered again (reason ``reoffer``)
            so the node retries known peers. 0 disables re-offers.
        lookup_timeout: seconds one child's lookup may take before it counts as failed for that round
            (plugins must not hang; this bounds a buggy third-party one).
        auto_refresh: run the polling loop after start(). Off: the caller drives :meth:`refresh`
            (tests with a manual clock).
    """

    strategies: tuple[str, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    polling_interval: float = 5.0
    answer_ttl: float = 60.0
    reoffer_interval: float = 15.0
    lookup_timeout: float = 10.0
    auto_refresh: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.strategies, str):
            object.__setattr__(self, "strategies", (self.strategies,))
        if "multi" in self.strategies:
            raise ConfigurationError("MultiConfig.strategies cannot contain 'multi'")
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigurationError("MultiConfig.strategies has duplicates")
        unknown = sorted(set(self.options) - set(self.strategies))
        if unknown:
            raise ConfigurationError(f"MultiConfig.options for strategies not listed: {unknown}")
        check_positive(self.polling_interval, "MultiConfig.polling_interval")
        check_positive(self.answer_ttl, "MultiConfig.answer_ttl")
        check_positive(self.lookup_timeout, "MultiConfig.lookup_timeout")
        if isinstance(self.reoffer_interval, bool) or not self.reoffer_interval >= 0:
            raise ConfigurationError("MultiConfig.reoffer_interval must be >= 0")

    @classmethod
    def local(cls, **overrides: Any) -> MultiConfig:
        """Tests and demos: fast polls, short ageing, frequent re-offers."""
        return cls(**{"polling_interval": 0.5, "answer_ttl": 5.0, "reoffer_interval": 2.0, **overrides})

    @classmethod
    def lan(cls, **overrides: Any) -> MultiConfig:
        """The defaults: 5 s polls, 60 s ageing, re-offer every 15 s."""
        return cls(**overrides)


@dataclasses.dataclass(frozen=True)
class CandidateUpdate:
    """What a subscriber of :class:`MultiDiscovery` receives.

    Attributes:
        candidates: the whole merged view.
        added: candidates whose key (node id or seed) was not in the previous view.
        removed: candidates of the previous view whose key is gone.
        reason: ``"changed"`` (the view differs from the last one) or ``"reoffer"`` (unchanged, offered
            again so the node retries peers it is not linked to).
    """

    candidates: tuple[Candidate, ...]
    added: tuple[Candidate, ...]
    removed: tuple[Candidate, ...]
    reason: str


class CandidateMerger:
    """Per-source answers -> one merged view, ageing out sources whose backend stopped answering. Pure."""

    def __init__(self, sources: Sequence[str], answer_ttl: float) -> None:
        """``sources``: source names in priority order; ``answer_ttl``: seconds, see MultiConfig."""
        self._order = list(sources)
        self._ttl = answer_ttl
        self._answers: dict[str, tuple[list[Candidate], float | None]] = {s: ([], None) for s in sources}

    def record(self, source: str, candidates: Sequence[Candidate], last_success: float | None) -> None:
        """Store ``source``'s latest answer and the time its backend last really answered (None: never)."""
        if source not in self._answers:
            raise ConfigurationError(f"unknown source {source!r}")
        self._answers[source] = (list(candidates), last_success)

    def live_sources(self, now: float) -> list[str]:
        """Sources whose backend answered within the TTL, in priority order."""
        return [
            s for s in self._order
            if (t := self._answers[s][1]) is not None and now - t <= self._ttl
        ]

    def stale_sources(self, now: float) -> list[str]:
        """Sources whose answer is currently excluded (never answered, or answered too long ago)."""
        live = set(self.live_sources(now))
        return [s for s in self._order if s not in live]

    def merged(self, now: float) -> list[Candidate]:
        """The de-duplicated union of the live sources' answers (see :func:`merge_candidates`)."""
        return merge_candidates(c for s in self.live_sources(now) for c in self._answers[s][0])


Subscriber = Callable[[CandidateUpdate], Awaitable[None] | None]


class MultiDiscovery(DiscoveryPlugin):
    """Runs several discovery plugins as one. See the module docstring.

    Counters: lookups, failures (child lookups that timed out or raised), ``changes``, ``reoffers``;
    :meth:`stats` adds every child's counters as ``<child>.<counter>``.
    """

    name: ClassVar[str] = "multi"
    config_type: ClassVar[type[MultiConfig]] = MultiConfig
    config: MultiConfig

    def __init__(
        self,
        config: MultiConfig | None = None,
        *,
        plugins: Sequence[DiscoveryPlugin] | None = None,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """Combine ``plugins`` (priority order), or build ``config.strategies`` from the default registry."""
        super().__init__(config, clock=clock, logger=logger)
        if plugins is None:
            from . import registry as default_registry

            plugins = [
                default_registry.create(n, self.config.options.get(n), clock=self.clock)
                for n in self.config.strategies
            ]
        if not plugins:
            raise ConfigurationError("multi needs at least one child strategy")
        self.children: list[DiscoveryPlugin] = list(plugins)
        self._source_names = self._unique_names(self.children)
        self._merger = CandidateMerger(self._source_names, self.config.answer_ttl)
        self._view: list[Candidate] = []
        self._last_offer: float | None = None
        self._subscribers: list[Subscriber] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._refresh_lock = asyncio.Lock()
        self.counters.update({"changes": 0, "reoffers": 0})

    @classmethod
    def from_registry(
        cls,
        config: MultiConfig,
        *,
        registry: DiscoveryRegistry,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> MultiDiscovery:
        """Build the children named in ``config.strategies`` from ``registry`` (used by registry.create)."""
        children = [registry.create(n, config.options.get(n), clock=clock) for n in config.strategies]
        return cls(config, plugins=children, clock=clock, logger=logger)

    @staticmethod
    def _unique_names(children: Sequence[DiscoveryPlugin]) -> list[str]:
        names: list[str] = []
        for child in children:
            base = child.name or type(child).__name__
            name, n = base, 2
            while name in names:
                name, n = f"{base}#{n}", n + 1
            names.append(name)
        return names

    # -- public API beyond DiscoveryPlugin ---------------------------------------------------------------

    @property
    def candidates(self) -> list[Candidate]:
        """The current merged view (as of the last refresh)."""
        return list(self._view)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(update)`` on every change and re-offer (on the loop; may be async).

        Returns a function that unsubscribes. A callback that raises is logged; the others still run.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def sources(self) -> dict[str, bool]:
        """Child name -> whether its answer is currently in the view (False: down longer than answer_ttl)."""
        live = set(self._merger.live_sources(self.clock.now()))
        return {name: name in live for name in self._source_names}

    async def refresh(self) -> CandidateUpdate | None:
        """Poll every child once, recompute the view, notify subscribers; return what was emitted (or None)."""
        async with self._refresh_lock:
            answers = await asyncio.gather(*(self._poll_child(c) for c in self.children))
            for name, child, answer in zip(self._source_names, self.children, answers, strict=True):
                self._merger.record(name, answer, child.last_success)
            now = self.clock.now()
            if self._merger.live_sources(now):
                self._mark_success()
            view = [c for c in self._merger.merged(now) if not self._is_self(c)]
            update = self._diff(view, now)
            self._view = view
        if update is not None:
            await self._emit(update)
        return update

    def stats(self) -> dict[str, int]:
        """Own counters plus every child's, prefixed ``<child>.``."""
        out = dict(self.counters)
        for name, child in zip(self._source_names, self.children, strict=True):
            out.update({f"{name}.{k}": v for k, v in child.stats().items()})
        return out

    # -- internals ---------------------------------------------------------------------------------------

    async def _poll_child(self, child: DiscoveryPlugin) -> list[Candidate]:
        if not child.running:
            return []
        try:
            return await asyncio.wait_for(child.lookup(), timeout=self.config.lookup_timeout)
        except Exception as exc:  # a plugin breaking its contract must not break the others
            self._count("failures")
            self.rate_limited.warning(f"child:{child.name}", "multi: %s lookup failed: %r", child.name, exc)
            return []

    def _diff(self, view: list[Candidate], now: float) -> CandidateUpdate | None:
        old = {c.key: c for c in self._view}
        new = {c.key: c for c in view}
        if frozenset(view) != frozenset(self._view):
            self._count("changes")
            reason = "changed"
        elif (
            self.config.reoffer_interval > 0
            and view
            and (self._last_offer is None or now - self._last_offer >= self.config.reoffer_interval)
        ):
            self._count("reoffers")
            reason = "reoffer"
        else:
            return None
        self._last_offer = now
        return CandidateUpdate(
            candidates=tuple(view),
            added=tuple(c for k, c in new.items() if k not in old),
            removed=tuple(c for k, c in old.items() if k not in new),
            reason=reason,
        )

    async def _emit(self, update: CandidateUpdate) -> None:
        if update.reason == "changed":
            self._notify_changed()
        for callback in list(self._subscribers):
            try:
                result = callback(update)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a subscriber's bug must not stop discovery
                self.log.exception("multi: subscriber %r failed", callback)

    async def _start(self, local: LocalNode) -> None:
        started: list[DiscoveryPlugin] = []
        try:
            for child in self.children:
                await child.start(local)
                started.append(child)
        except BaseException:
            for child in started:
                await child.stop()
            raise
        if self.config.auto_refresh:
            self._loop_task = asyncio.create_task(self._run(), name="fabric.discovery.multi")

    async def _run(self) -> None:
        while True:
            events = [c._changed for c in self.children if c._changed is not None]
            # Clear before polling, so a change a child reports while we poll still wakes the wait.
            for event in events:
                event.clear()
            await self.refresh()
            waiters = [asyncio.create_task(e.wait()) for e in events]
            try:
                await asyncio.wait(waiters, timeout=self.config.polling_interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _lookup(self) -> list[Candidate]:
        await self.refresh()
        return list(self._view)

    async def _stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for child in self.children:
            try:
                await child.stop()
            except Exception:  # stop must reach every child
                self.log.exception("multi: stopping %s failed", child.name)
        self._view = []

    def default_poll_interval(self) -> float:
        """The configured ``polling_interval``."""
        return self.config.polling_interval
