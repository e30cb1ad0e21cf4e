"""What a strategy sees, and whether each candidate is reachable: the engine behind ``discover``/``doctor``.

Theory of operation
-------------------
:func:`discover` starts a strategy *without announcing* this process (diagnostics must not appear as a
candidate to the cluster they inspect), lets push-style strategies listen for ``settle`` seconds, takes
one :meth:`~fabric.discovery.base.DiscoveryPlugin.lookup`, stops the strategy, and probes every
candidate's endpoints concurrently. A probe opens a TCP connection and reads the first 10 bytes: every
ZeroMQ socket starts a ZMTP 3 connection with the signature ``FF 00..00 7F``, so the probe tells apart
"a ZeroMQ socket listens here" (``zmtp``), "something else listens here" (``open``), ``refused``,
``timeout``, ``unresolvable`` and ``unreachable``. It sends nothing and closes at once, so it never joins
anything; whether a *link* is then made (handshake, security, version) is the node's business and is
reported by the node's own join path.

The result is plain data (:class:`DiscoveryReport`) that a CLI renders; nothing here prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .base import (
    MEMBERSHIP_CHANNEL,
    Candidate,
    ConfigurationError,
    LocalNode,
    parse_tcp_endpoint,
)
from .registry import DiscoveryRegistry

__all__ = ["CandidateReport", "ChannelProbe", "DiscoveryReport", "discover", "probe_candidate", "probe_endpoint"]

_ZMTP_SIGNATURE_LEN = 10


@dataclasses.dataclass(frozen=True)
class ChannelProbe:
    """The outcome of probing one endpoint.

    Attributes:
        channel: the channel name.
        endpoint: the endpoint probed.
        status: ``zmtp`` (a ZeroMQ socket answered), ``open`` (a listener that is not ZeroMQ, or sent
            nothing within the timeout), ``refused``, ``timeout`` (no TCP connection), ``unresolvable``
            (the host name does not resolve), ``unreachable`` (no route, network down) or ``skipped``
            (not a tcp:// endpoint: ipc/inproc cannot be probed from outside the host/process).
        detail: a human explanation (the OS error, what was received).
        seconds: time to connect, when the connection was made.
    """

    channel: str
    endpoint: str
    status: str
    detail: str = ""
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        """True when a ZeroMQ socket answered."""
        return self.status == "zmtp"


@dataclasses.dataclass(frozen=True)
class CandidateReport:
    """One candidate and the probes of its endpoints (membership first)."""

    candidate: Candidate
    probes: tuple[ChannelProbe, ...]

    @property
    def reachable(self) -> bool:
        """True when the membership endpoint (the seed) answered as a ZeroMQ socket."""
        return any(p.channel == MEMBERSHIP_CHANNEL and p.ok for p in self.probes)


@dataclasses.dataclass(frozen=True)
class DiscoveryReport:
    """Everything ``discover`` learnt.

    Attributes:
        strategy: the strategy name.
        candidates: one report per candidate, in the strategy's order.
        counters: the strategy's counters after the lookup (``failures``, ``malformed``, ...).
        backend_answered: whether the backend gave a real answer (False: every candidate, if any, is a
            stale last-good answer or there was none: look at the counters and the log).
    """

    strategy: str
    candidates: tuple[CandidateReport, ...]
    counters: Mapping[str, int]
    backend_answered: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for ``--json`` output)."""
        return {
            "strategy": self.strategy,
            "backend_answered": self.backend_answered,
            "counters": dict(self.counters),
            "candidates": [
                {
                    **r.candidate.to_dict(),
                    "reachable": r.reachable,
                    "probes": [dataclasses.asdict(p) for p in r.probes],
                }
                for r in self.candidates
            ],
        }


def _classify_os_error(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "unresolvable"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "refused"
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN):
        return "unreachable"
    if exc.errno == errno.ETIMEDOUT:
        return "timeout"
    return "unreachable"


async def probe_endpoint(channel: str, endpoint: str, timeout: float = 2.0) -> ChannelProbe:
    """Probe one endpoint (see the module docstring). Never raises; runs on the caller's loop."""
    if not endpoint.startswith("tcp://"):
        return ChannelProbe(channel, endpoint, "skipped", "only tcp:// endpoints can be probed")
    try:
        host, port = parse_tcp_endpoint(endpoint)
    except ConfigurationError as exc:
        return ChannelProbe(channel, endpoint, "unresolvable", str(exc))
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ChannelProbe(channel, endpoint, "timeout", f"no TCP connection within {timeout:.1f}s")
    except OSError as exc:
        return ChannelProbe(channel, endpoint, _classify_os_error(exc), exc.strerror or repr(exc))
    connected = time.monotonic() - started
    try:
        try:
            greeting = await asyncio.wait_for(reader.readexactly(_ZMTP_SIGNATURE_LEN), timeout)
        except asyncio.IncompleteReadError as exc:
            return ChannelProbe(channel, endpoint, "open", f"closed after {len(exc.partial)} bytes", connected)
        except TimeoutError:
            return ChannelProbe(channel, endpoint, "open", "listening but sent no ZMTP greeting", connected)
        except OSError as exc:
            return ChannelProbe(channel, endpoint, "open", f"reset while reading: {exc}", connected)
        if greeting[0] == 0xFF and greeting[-1] == 0x7F:
            return ChannelProbe(channel, endpoint, "zmtp", "ZeroMQ socket", connected)
        return ChannelProbe(channel, endpoint, "open", f"not ZeroMQ (first bytes {greeting[:4].hex()})", connected)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


#: A probe: ``(channel, endpoint, timeout) -> ChannelProbe``; must never raise and never block the loop.
Prober = Callable[[str, str, float], Awaitable[ChannelProbe]]


async def probe_candidate(candidate: Candidate, timeout: float = 2.0, prober: Prober | None = None) -> CandidateReport:
    """Probe every endpoint a candidate names (its seed when it names none), concurrently.

    ``prober`` replaces :func:`probe_endpoint` (e.g. a richer probe that also reads the ZMTP socket type).
    """
    probe = prober or probe_endpoint
    endpoints = dict(candidate.endpoints) or {MEMBERSHIP_CHANNEL: candidate.seed}
    endpoints.setdefault(MEMBERSHIP_CHANNEL, candidate.seed)
    order = [MEMBERSHIP_CHANNEL] + [c for c in endpoints if c != MEMBERSHIP_CHANNEL]
    probes = await asyncio.gather(*(probe(c, endpoints[c], timeout) for c in order))
    return CandidateReport(candidate, tuple(probes))


def _listen_only(config: Any) -> Any:
    """The same config with announcing switched off, when the strategy has that switch."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        names = {f.name for f in dataclasses.fields(config)}
        if "announce" in names:
            return dataclasses.replace(config, announce=False)
    return config


async def discover(
    strategy: str,
    options: Mapping[str, Any] | Any = None,
    *,
    registry: DiscoveryRegistry | None = None,
    settle: float = 0.0,
    probe: bool = True,
    probe_timeout: float = 2.0,
    prober: Prober | None = None,
    logger: logging.Logger | None = None,
) -> DiscoveryReport:
    """Run ``strategy`` once, without announcing this process, and report what it sees.

    ``settle``: seconds to listen before the lookup (mDNS and gossip need a few seconds to hear others;
    polling strategies need 0). ``probe``: probe every candidate's endpoints, with ``prober`` (default
    :func:`probe_endpoint`). Raises the registry's
    errors (unknown strategy, bad options); backend failures show in the report's counters instead.
    Call it on an asyncio loop; it never blocks the loop.
    """
    if registry is None:
        from . import registry as default_registry

        registry = default_registry
    config = _listen_only(registry.make_config(strategy, options))
    if strategy == "multi":  # children of multi must not announce either
        config = dataclasses.replace(
            config,
            options={
                name: dataclasses.asdict(_listen_only(registry.make_config(name, config.options.get(name))))
                for name in config.strategies
            },
        )
    plugin = registry.create(strategy, config, logger=logger)
    local = LocalNode(
        node_id=str(uuid.uuid4()),
        name="discover",
        endpoints={MEMBERSHIP_CHANNEL: f"inproc://discover-{uuid.uuid4().hex}"},
    )
    await plugin.start(local)
    try:
        if settle > 0:
            await asyncio.sleep(settle)  # listening time for push strategies, not a wait for logic
        candidates = await plugin.lookup()
        counters = plugin.stats()
        answered = plugin.last_success is not None
    finally:
        await plugin.stop()
    if probe:
        reports = await asyncio.gather(*(probe_candidate(c, probe_timeout, prober) for c in candidates))
    else:
        reports = [CandidateReport(c, ()) for c in candidates]
    return DiscoveryReport(strategy, tuple(reports), counters, answered)
