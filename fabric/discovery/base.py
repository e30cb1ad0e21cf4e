"""The discovery plugin contract: candidates, the local node description, the plugin base class, errors.

Theory of operation
-------------------
A discovery plugin answers one question: *which nodes might I join?* Its answer is a list of
:class:`Candidate` values, each naming at least a peer's **membership endpoint** (the ROUTER socket of its
``membership`` control channel, e.g. ``tcp://10.0.0.5:7946``), which is all the join path needs. When the
backend knows more (node id, name, every channel's endpoint, metadata) the candidate carries it too.

Discovery is *never* liveness: a candidate may be stale, spoofed (when the backend is unauthenticated) or
simply down. Only traffic from the peer itself makes it a live member; a record that disappears from a
backend stops further join/reconnect attempts towards it but never removes a live member.

Life cycle, all on the node's asyncio loop (the plugin must never block it: blocking work goes to an
executor, network I/O uses asyncio libraries)::

    plugin = SomePlugin(SomeConfig(...))
    await plugin.start(local)          # open sockets, announce ``local`` if the backend announces
    cands = await plugin.lookup()      # one poll; cheap for push backends (mDNS, gossip)
    async for cands in plugin.watch(): # optional: the candidate list, each time it changes
        ...
    await plugin.stop()                # close everything; idempotent

Backend failures (timeouts, refused connections, bad answers) never raise out of :meth:`lookup`: the plugin
logs them (rate-limited), counts them in :attr:`DiscoveryPlugin.counters`, and returns its last good answer.
Only local misuse (bad config, lookup before start) raises, always a :class:`DiscoveryError` subclass.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import importlib
import ipaddress
import logging
import types
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from fabric.clock import Clock, SystemClock
from fabric.errors import ConfigError, FabricError

__all__ = [
    "CHANNEL_ORDER",
    "MEMBERSHIP_CHANNEL",
    "DEFAULT_MEMBERSHIP_PORT",
    "Candidate",
    "Clock",
    "ConfigurationError",
    "DiscoveryError",
    "DiscoveryPlugin",
    "LocalNode",
    "MalformedInput",
    "MissingDependencyError",
    "PluginLoadError",
    "PluginStateError",
    "RateLimitedLog",
    "UnknownPluginError",
    "require_backend",
    "config_from_mapping",
    "concretize_endpoint",
    "endpoints_from_port_base",
    "merge_candidates",
    "format_tcp_endpoint",
    "parse_tcp_endpoint",
]

#: The fixed channel order behind a port base P: channel ``CHANNEL_ORDER[i]`` binds port ``P + i``.
#: So a DNS A record plus P is enough to reach every channel of a node. Append only.
CHANNEL_ORDER: tuple[str, ...] = ("membership", "coordination", "gossip", "data", "events")
#: The channel whose endpoint is a node's seed address.
MEMBERSHIP_CHANNEL = "membership"
#: The membership port used when a configuration names a host without a port.
DEFAULT_MEMBERSHIP_PORT = 7946

_SCHEMES = ("tcp://", "ipc://", "inproc://")


# -- errors --------------------------------------------------------------------------------------------


class DiscoveryError(FabricError):
    """Root of every exception raised by :mod:`fabric.discovery` (itself under the fabric's root)."""


class ConfigurationError(DiscoveryError, ConfigError):
    """A discovery configuration value is invalid (our caller's fault); the message names the field.

    Also a :class:`fabric.errors.ConfigError` (and so a ValueError): code that validates a whole node
    configuration catches one type.
    """


class UnknownPluginError(DiscoveryError, LookupError):
    """No plugin is registered (built in or through entry points) under the requested name."""


class PluginLoadError(DiscoveryError, ImportError):
    """A third-party plugin's entry point could not be imported or is not a :class:`DiscoveryPlugin`."""


class MissingDependencyError(PluginLoadError):
    """A strategy was built but the library its backend needs is not installed; the message names it.

    The backend libraries (zeroconf, dnspython, httpx) are imported when their strategy is built, never
    at ``import fabric``, so a missing one only disables its own strategy.
    """


def require_backend(module: str, package: str, strategy: str) -> None:
    """Import ``module`` (the library behind ``strategy``) or raise :class:`MissingDependencyError`.

    Called by a backend plugin's constructor, so building the strategy fails with one line that names the
    distribution to install (``package``) instead of an ImportError traceback at the first lookup.
    """
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the {strategy!r} discovery strategy needs the {package!r} package ({exc}); "
            f"install it with: pip install {package}"
        ) from None


class PluginStateError(DiscoveryError, RuntimeError):
    """A plugin was used in the wrong state (lookup before start, start twice, start after stop)."""


class MalformedInput(DiscoveryError):
    """A backend returned input we cannot use (bad TXT record, garbage beacon, bad SRV target).

    Raised only by the pure parsers; plugins catch it, count it under ``category`` and skip the input.
    """

    category = "malformed"

    def __init__(self, message: str, *, category: str | None = None) -> None:
        super().__init__(message)
        if category is not None:
            self.category = category


# -- endpoints -----------------------------------------------------------------------------------------


def format_tcp_endpoint(host: str, port: int) -> str:
    """Return ``tcp://host:port``, bracketing IPv6 literals (``tcp://[::1]:7946``)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"tcp://{host}:{port}"


def parse_tcp_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``tcp://host:port`` into ``(host, port)`` (IPv6 brackets removed).

    Raises :class:`ConfigurationError` when ``endpoint`` is not a tcp endpoint with a numeric port.
    """
    if not endpoint.startswith("tcp://"):
        raise ConfigurationError(f"not a tcp:// endpoint: {endpoint!r}")
    rest = endpoint[len("tcp://") :]
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigurationError(f"endpoint needs host:port: {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigurationError(f"port out of range in {endpoint!r}")
    return host, port


def endpoints_from_port_base(
    host: str, port_base: int, channels: Iterable[str] = CHANNEL_ORDER
) -> dict[str, str]:
    """Endpoints of a node that uses port base ``port_base``: ``channels[i]`` -> ``tcp://host:(P+i)``.

    Raises :class:`ConfigurationError` when the last port would exceed 65535.
    """
    names = list(channels)
    if not 0 < port_base or port_base + len(names) - 1 > 65535:
        raise ConfigurationError(f"port base {port_base} leaves no room for {len(names)} channels")
    return {name: format_tcp_endpoint(host, port_base + i) for i, name in enumerate(names)}


def _is_wildcard_host(host: str) -> bool:
    return host in {"*", "0.0.0.0", "::", ""}


def concretize_endpoint(endpoint: str, address: str) -> str:
    """Replace a wildcard host (``*``, ``0.0.0.0``, ``::``) in a tcp endpoint by ``address``.

    A node bound to ``tcp://*:7946`` announces that string; the receiver only knows where the announcement
    came from, so it substitutes the sender's address. Other endpoints are returned unchanged.
    """
    if not endpoint.startswith("tcp://"):
        return endpoint
    try:
        host, port = parse_tcp_endpoint(endpoint)
    except ConfigurationError:
        return endpoint
    return format_tcp_endpoint(address, port) if _is_wildcard_host(host) else endpoint


def _frozen_str_map(value: Mapping[str, str] | None, field: str) -> Mapping[str, str]:
    items = dict(value or {})
    for key, val in items.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise ConfigurationError(f"{field} must map str to str, got {key!r}: {val!r}")
    return types.MappingProxyType(items)


def _check_endpoint(endpoint: str, field: str) -> None:
    if not isinstance(endpoint, str) or not endpoint.startswith(_SCHEMES):
        raise ConfigurationError(f"{field} must be a tcp://, ipc:// or inproc:// endpoint, got {endpoint!r}")


def _check_node_id(node_id: str | None, field: str = "node_id") -> None:
    if node_id is None:
        return
    try:
        uuid.UUID(node_id)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"{field} must be a UUID string, got {node_id!r}") from exc


# -- values --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A peer that discovery suggests joining. Immutable and hashable.

    Attributes:
        seed: the peer's membership endpoint (``tcp://10.0.0.5:7946``); enough to join it.
        node_id: the peer's node id (UUID string) when the backend knows it (mDNS, gossip), else None
            (DNS, static). Two candidates with the same node id are the same node.
        name: the peer's human name, or the DNS name it was found under; metadata only.
        endpoints: channel name -> endpoint, for the channels the backend knows (may be empty).
        meta: free-form string metadata from the backend (SRV priority, public key, ...).
        source: the strategy that produced it (``"dns"``, ``"mdns"``, ``"gossip+dns"`` after merging).
    """

    seed: str
    node_id: str | None = None
    name: str | None = None
    endpoints: Mapping[str, str] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, str] = dataclasses.field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        _check_endpoint(self.seed, "Candidate.seed")
        _check_node_id(self.node_id, "Candidate.node_id")
        endpoints = _frozen_str_map(self.endpoints, "Candidate.endpoints")
        for channel, endpoint in endpoints.items():
            _check_endpoint(endpoint, f"Candidate.endpoints[{channel!r}]")
        object.__setattr__(self, "endpoints", endpoints)
        object.__setattr__(self, "meta", _frozen_str_map(self.meta, "Candidate.meta"))

    @property
    def key(self) -> str:
        """Identity used for de-duplication: the node id when known, else the seed endpoint."""
        return self.node_id if self.node_id is not None else self.seed

    def __hash__(self) -> int:
        return hash(
            (
                self.seed,
                self.node_id,
                self.name,
                tuple(sorted(self.endpoints.items())),
                tuple(sorted(self.meta.items())),
                self.source,
            )
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candidate):
            return NotImplemented
        return (
            self.seed == other.seed
            and self.node_id == other.node_id
            and self.name == other.name
            and dict(self.endpoints) == dict(other.endpoints)
            and dict(self.meta) == dict(other.meta)
            and self.source == other.source
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON/msgpack-friendly dict (for the CLI and for child processes in tests)."""
        return {
            "seed": self.seed,
            "node_id": self.node_id,
            "name": self.name,
            "endpoints": dict(self.endpoints),
            "meta": dict(self.meta),
            "source": self.source,
        }


@dataclasses.dataclass(frozen=True)
class LocalNode:
    """What an announcing plugin (mDNS, gossip) tells others about this node.

    Attributes:
        node_id: this node's id (UUID string).
        name: this node's human name.
        endpoints: channel name -> bound endpoint; must include ``membership``. Wildcard hosts
            (``tcp://*:7946``) are allowed: receivers substitute the address the announcement came from.
        metadata: small string key/values to announce (keep them short: mDNS TXT entries are <= 255 bytes).
        public_key: the node's CURVE public key (Z85 text) when security is on, else None.
    """

    node_id: str
    name: str
    endpoints: Mapping[str, str]
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    public_key: str | None = None

    def __post_init__(self) -> None:
        if self.node_id is None:
            raise ConfigurationError("LocalNode.node_id is required")
        _check_node_id(self.node_id, "LocalNode.node_id")
        endpoints = _frozen_str_map(self.endpoints, "LocalNode.endpoints")
        if MEMBERSHIP_CHANNEL not in endpoints:
            raise ConfigurationError("LocalNode.endpoints must include the 'membership' channel")
        for channel, endpoint in endpoints.items():
            _check_endpoint(endpoint, f"LocalNode.endpoints[{channel!r}]")
        object.__setattr__(self, "endpoints", endpoints)
        object.__setattr__(self, "metadata", _frozen_str_map(self.metadata, "LocalNode.metadata"))

    @property
    def seed(self) -> str:
        """This node's membership endpoint."""
        return self.endpoints[MEMBERSHIP_CHANNEL]


# -- helpers shared by plugins ---------------------------------------------------------------------------


class RateLimitedLog:
    """Log a warning at most once per ``interval`` seconds per key, with a count of what was suppressed.

    Backends fail in bursts (a DNS server down answers every poll with a timeout); one line per burst is
    enough, the counters carry the totals.
    """

    def __init__(self, logger: logging.Logger, clock: Clock, interval: float = 30.0) -> None:
        self._logger = logger
        self._clock = clock
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago; True if logged."""
        now = self._clock.now()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        self._last[key] = now
        suffix = f" ({suppressed} similar suppressed)" if suppressed else ""
        self._logger.warning(message + suffix, *args)
        return True


_C = TypeVar("_C")


def config_from_mapping(config_type: type[_C], values: Mapping[str, Any]) -> _C:
    """Build a frozen config dataclass from a mapping (TOML table, CLI options), lists becoming tuples.

    Raises :class:`ConfigurationError` for unknown keys and whatever the config's own validation raises.
    """
    if not dataclasses.is_dataclass(config_type):
        raise ConfigurationError(f"{config_type!r} is not a config dataclass")
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) for {config_type.__name__}: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return config_type(**converted)
    except TypeError as exc:
        raise ConfigurationError(f"{config_type.__name__}: {exc}") from exc


def check_positive(value: float, field: str) -> None:
    """Raise :class:`ConfigurationError` unless ``value`` is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{field} must be a number > 0, got {value!r}")


def check_port(value: int, field: str, *, allow_zero: bool = False) -> None:
    """Raise :class:`ConfigurationError` unless ``value`` is a valid port number."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise ConfigurationError(f"{field} must be a port number ({low}..65535), got {value!r}")


def check_ip(value: str, field: str) -> None:
    """Raise :class:`ConfigurationError` unless ``value`` is an IPv4/IPv6 address literal."""
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise ConfigurationError(f"{field} must be an IP address, got {value!r}") from exc


# -- the plugin base class ----------------------------------------------------------------------------


class DiscoveryPlugin(abc.ABC):
    """Base class of every discovery strategy.

    Subclasses set :attr:`name` (the registry name) and :attr:`config_type` (a frozen config dataclass),
    implement :meth:`_start`, :meth:`_lookup` and :meth:`_stop`, and call :meth:`_count` for their
    counters. The public methods add the state checks. Every method runs on the node's asyncio loop and
    must not block it.

    Push-style plugins (mDNS, gossip) call :meth:`_notify_changed` when their view changes, so
    :meth:`watch` wakes at once instead of at the next poll.
    """

    #: Registry name of the strategy (``"dns"``); also the :attr:`Candidate.source` it stamps.
    name: ClassVar[str] = ""
    #: The frozen config dataclass the constructor takes.
    config_type: ClassVar[type[Any]]

    def __init__(
        self,
        config: Any = None,
        *,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """Create a stopped plugin; ``config`` defaults to ``config_type()``. Nothing runs until start()."""
        if config is None:
            config = self.config_type()
        if not isinstance(config, self.config_type):
            raise ConfigurationError(
                f"{type(self).__name__} takes a {self.config_type.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.log = logger if logger is not None else logging.getLogger(f"fabric.discovery.{self.name}")
        self.rate_limited = RateLimitedLog(self.log, self.clock)
        self.counters: dict[str, int] = {"lookups": 0, "failures": 0, "malformed": 0}
        #: Clock time of the last answer the backend actually gave (None: never). The multi strategy
        #: ages a plugin's last good answer out from here when the backend stays down.
        self.last_success: float | None = None
        self.local: LocalNode | None = None
        self._state = "new"
        self._changed: asyncio.Event | None = None

    # -- public API ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._state == "running"

    async def start(self, local: LocalNode) -> None:
        """Open the backend and, for announcing strategies, announce ``local``.

        Raises :class:`PluginStateError` if already started or stopped. Backend trouble at start (a DNS
        server that is down) does not raise: it is counted and retried by later lookups.
        """
        if self._state != "new":
            raise PluginStateError(f"{self.name}: start() in state {self._state!r}")
        self.local = local
        self._changed = asyncio.Event()
        await self._start(local)
        self._state = "running"

    async def lookup(self) -> list[Candidate]:
        """Poll once and return the current candidates (never this node itself).

        Never raises for backend failures: they are counted and the last good answer is returned.
        Raises :class:`PluginStateError` when the plugin is not running.
        """
        if self._state != "running":
            raise PluginStateError(f"{self.name}: lookup() in state {self._state!r}")
        self._count("lookups")
        return await self._lookup()

    async def watch(self, poll_interval: float | None = None) -> AsyncIterator[list[Candidate]]:
        """Yield the candidate list now and then each time it changes, until the plugin stops.

        Polls :meth:`lookup` every ``poll_interval`` seconds (default :meth:`default_poll_interval`) and
        wakes early when a push-style plugin reports a change. Ends when :meth:`stop` is called.
        """
        interval = poll_interval if poll_interval is not None else self.default_poll_interval()
        previous: frozenset[Candidate] | None = None
        while self.running:
            assert self._changed is not None
            # Clear before polling: a change (or stop) that lands while we poll or while the consumer
            # holds the yielded list still wakes the wait below.
            self._changed.clear()
            current = await self.lookup()
            snapshot = frozenset(current)
            if snapshot != previous:
                previous = snapshot
                yield current
            if not self.running:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        """Withdraw announcements and close the backend. Idempotent; never raises for backend errors."""
        if self._state == "stopped":
            return
        was_running = self._state == "running"
        self._state = "stopped"
        if was_running:
            await self._stop()
        if self._changed is not None:
            self._changed.set()  # release watch()

    def stats(self) -> dict[str, int]:
        """A copy of this plugin's counters (for metrics): lookups, failures, malformed, and per-plugin ones."""
        return dict(self.counters)

    def default_poll_interval(self) -> float:
        """Seconds between polls in :meth:`watch` when the caller gives none."""
        return float(getattr(self.config, "polling_interval", 5.0))

    # -- for subclasses --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _start(self, local: LocalNode) -> None:
        """Open the backend (called once, on the loop)."""

    @abc.abstractmethod
    async def _lookup(self) -> list[Candidate]:
        """Return the current candidates; count and swallow backend failures."""

    @abc.abstractmethod
    async def _stop(self) -> None:
        """Close the backend (called once, on the loop); swallow backend errors."""

    def _count(self, counter: str, amount: int = 1) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + amount

    def _mark_success(self) -> None:
        self.last_success = self.clock.now()

    def _notify_changed(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _is_self(self, candidate: Candidate) -> bool:
        local = self.local
        if local is None:
            return False
        if candidate.node_id is not None:
            return candidate.node_id == local.node_id
        return candidate.seed == local.seed


def merge_candidates(candidates: Iterable[Candidate]) -> list[Candidate]:
    """De-duplicate candidates: same node id, or same seed when one side has no id, become one.

    An anonymous candidate (no node id: DNS, static) folds into an identified one whose seed or any
    channel endpoint equals its seed. Within a group the first occurrence wins for the seed and name;
    endpoints and meta are unioned (first wins per key); sources are joined with ``+`` in first-seen
    order. The result follows the order in which each group first appeared.
    """
    items = list(candidates)
    alias: dict[str, str] = {}
    for cand in items:
        if cand.node_id is not None:
            for endpoint in (cand.seed, *cand.endpoints.values()):
                alias.setdefault(endpoint, cand.node_id)
    merged: dict[str, Candidate] = {}
    for cand in items:
        key = cand.node_id if cand.node_id is not None else alias.get(cand.seed, cand.seed)
        existing = merged.get(key)
        merged[key] = cand if existing is None else _combine(existing, cand)
    return list(merged.values())


def _combine(first: Candidate, second: Candidate) -> Candidate:
    sources = [s for s in first.source.split("+") if s]
    for source in second.source.split("+"):
        if source and source not in sources:
            sources.append(source)
    return Candidate(
        seed=first.seed,
        node_id=first.node_id or second.node_id,
        name=first.name or second.name,
        endpoints={**second.endpoints, **first.endpoints},
        meta={**second.meta, **first.meta},
        source="+".join(sources),
    )

