"""The ``dns`` strategy: A/AAAA (headless-service style) and SRV lookups with dnspython's async resolver.

Theory of operation
-------------------
Each :meth:`~fabric.discovery.base.DiscoveryPlugin.lookup` sends the configured query and turns the answer
into candidates:

* ``A`` / ``AAAA`` / ``A+AAAA``: one candidate per address, at ``tcp://address:port`` where ``port`` is the
  cluster's membership port (its port base P). Other channels are at P+1.. in
  :data:`~fabric.discovery.base.CHANNEL_ORDER`, so a headless Kubernetes service is enough.
* ``SRV``: each record names a target host and the membership port; the targets are resolved (A and/or
  AAAA per ``srv_target_types``) and each address becomes a candidate. A target that does not resolve
  (NXDOMAIN, no address) is logged, counted as ``unresolvable_targets`` and skipped; the other targets
  still count.

What an answer means (the rule that keeps a flaky DNS server from tearing a cluster down):

* a *real* answer -- records, NOERROR with no records, or NXDOMAIN -- replaces the candidate list, so a
  record that disappears drops its candidate (and with it further reconnect attempts; a live member is
  never removed by discovery);
* a *failed* answer -- timeout, SERVFAIL/REFUSED from every server, network error, a truncated UDP answer
  whose TCP retry also failed (dnspython retries truncated answers over TCP by itself) -- changes
  nothing: the last good list is returned and ``failures`` is counted. The time of the last real answer
  is :attr:`last_success`, which the ``multi`` strategy uses to age a dead backend's answer out.

``prune=False`` keeps every candidate ever seen (until stop), for DNS servers that return a random subset
of a large record set (libcluster #190).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from .base import (
    CHANNEL_ORDER,
    DEFAULT_MEMBERSHIP_PORT,
    MEMBERSHIP_CHANNEL,
    Candidate,
    ConfigurationError,
    DiscoveryError,
    DiscoveryPlugin,
    LocalNode,
    check_ip,
    check_port,
    check_positive,
    endpoints_from_port_base,
    format_tcp_endpoint,
    merge_candidates,
    require_backend,
)

if TYPE_CHECKING:  # dnspython is imported when the strategy is built, not with the fabric
    import dns.asyncresolver

__all__ = ["DnsConfig", "DnsPlugin", "is_real_answer"]

_RECORD_TYPES = ("A", "AAAA", "A+AAAA", "SRV")


@dataclasses.dataclass(frozen=True)
class DnsConfig:
    """Configuration of the ``dns`` strategy.

    Attributes:
        query: the DNS name to look up (``myapp-headless.default.svc.cluster.local`` or
            ``_foundation._tcp.example.com``). Absolute; no search domains are applied.
        record_type: ``A``, ``AAAA``, ``A+AAAA`` (both, merged) or ``SRV``.
        port: membership port (port base P) of the nodes found by A/AAAA. Ignored for SRV, whose records
            carry the port.
        derive_endpoints: give each candidate the endpoints of every channel (P+i for ``channels[i]``).
            Turn off when nodes do not use a port base; then candidates carry only their seed.
        channels: the cluster's channel names in port order (membership first); the default is the
            node's default channel set. Pass the node's configured channel names when it adds channels.
        srv_target_types: address record types used to resolve SRV targets (``A``, ``AAAA`` or both).
        nameservers: IP addresses of the DNS servers to ask; empty means the system's (/etc/resolv.conf).
        nameserver_port: UDP/TCP port of ``nameservers`` (53; tests use a high port).
        polling_interval: seconds between polls in watch()/multi. Lower notices new nodes sooner but
            loads the DNS server; within a few seconds of record TTLs is plenty.
        timeout: seconds a whole lookup may take (all servers, retries, the TCP fallback) before it
            counts as failed. Keep it below ``polling_interval``.
        prune: True (default): a record that disappears drops its candidate. False: keep every candidate
            seen, for servers that return random subsets of big record sets.
    """

    query: str
    record_type: str = "A"
    port: int = DEFAULT_MEMBERSHIP_PORT
    derive_endpoints: bool = True
    channels: tuple[str, ...] = CHANNEL_ORDER
    srv_target_types: tuple[str, ...] = ("A", "AAAA")
    nameservers: tuple[str, ...] = ()
    nameserver_port: int = 53
    polling_interval: float = 5.0
    timeout: float = 2.0
    prune: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.query, str) or not self.query.strip(". "):
            raise ConfigurationError("DnsConfig.query must be a DNS name")
        if self.record_type not in _RECORD_TYPES:
            raise ConfigurationError(f"DnsConfig.record_type must be one of {_RECORD_TYPES}, got {self.record_type!r}")
        check_port(self.port, "DnsConfig.port")
        if isinstance(self.channels, str) or not self.channels or self.channels[0] != MEMBERSHIP_CHANNEL:
            raise ConfigurationError("DnsConfig.channels must be a sequence of names starting with 'membership'")
        if len(set(self.channels)) != len(self.channels):
            raise ConfigurationError("DnsConfig.channels has duplicates")
        if self.derive_endpoints and self.port + len(self.channels) - 1 > 65535:
            raise ConfigurationError("DnsConfig.port leaves no room for the channel ports above it")
        if isinstance(self.srv_target_types, str):
            object.__setattr__(self, "srv_target_types", (self.srv_target_types,))
        if not self.srv_target_types or any(t not in ("A", "AAAA") for t in self.srv_target_types):
            raise ConfigurationError("DnsConfig.srv_target_types must hold 'A' and/or 'AAAA'")
        if isinstance(self.nameservers, str):
            object.__setattr__(self, "nameservers", (self.nameservers,))
        for server in self.nameservers:
            check_ip(server, "DnsConfig.nameservers")
        check_port(self.nameserver_port, "DnsConfig.nameserver_port")
        check_positive(self.polling_interval, "DnsConfig.polling_interval")
        check_positive(self.timeout, "DnsConfig.timeout")

    @classmethod
    def local(cls, query: str, **overrides: Any) -> DnsConfig:
        """Tests and single-host clusters: poll every second, give up after one."""
        return cls(query=query, **{"polling_interval": 1.0, "timeout": 1.0, **overrides})

    @classmethod
    def lan(cls, query: str, **overrides: Any) -> DnsConfig:
        """A data-centre or Kubernetes cluster: the defaults (5 s polls, 2 s timeout)."""
        return cls(query=query, **overrides)

    @classmethod
    def wan(cls, query: str, **overrides: Any) -> DnsConfig:
        """Public DNS across regions: slower polls (records change rarely), longer timeout."""
        return cls(query=query, **{"polling_interval": 30.0, "timeout": 5.0, **overrides})


def is_real_answer(exc: BaseException) -> bool:
    """True when a resolver exception is a real answer (NXDOMAIN, no records), False for a failure.

    Pure; the single place that decides whether an error may change the candidate list.
    """
    import dns.resolver

    return isinstance(exc, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer)


class _LookupFailed(Exception):
    """Internal: the backend did not give a real answer; keep the last good list."""


class DnsPlugin(DiscoveryPlugin):
    """Polls DNS. Counters: lookups, failures, malformed, ``unresolvable_targets``, ``records``."""

    name: ClassVar[str] = "dns"
    config_type: ClassVar[type[DnsConfig]] = DnsConfig
    config: DnsConfig

    def __init__(self, config: DnsConfig, **kw: Any) -> None:
        """Create a stopped DNS plugin (``config`` is required: it names the query)."""
        require_backend("dns.asyncresolver", "dnspython", self.name)
        super().__init__(config, **kw)
        self.counters.update({"unresolvable_targets": 0, "records": 0})
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._last_good: list[Candidate] = []

    async def _start(self, local: LocalNode) -> None:
        import dns.asyncresolver
        import dns.nameserver
        import dns.resolver

        if self.config.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(server, self.config.nameserver_port)
                for server in self.config.nameservers
            ]
        else:
            # Reading /etc/resolv.conf is file I/O: keep it off the loop.
            try:
                resolver = await asyncio.get_running_loop().run_in_executor(None, dns.asyncresolver.Resolver)
            except (dns.resolver.NoResolverConfiguration, OSError) as exc:
                # No usable system configuration is a backend problem, not a start-up crash: every lookup
                # then fails (counted) until the plugin is restarted with nameservers configured.
                self._count("failures")
                self.log.error("dns: no system resolver configuration (%s); set DnsConfig.nameservers", exc)
                resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.lifetime = self.config.timeout
        resolver.timeout = self.config.timeout
        resolver.cache = None  # every poll must see the server's current answer
        self._resolver = resolver

    async def _stop(self) -> None:
        self._resolver = None
        self._last_good = []

    async def _lookup(self) -> list[Candidate]:
        try:
            found = await asyncio.wait_for(self._query(), timeout=self.config.timeout * 2)
        except (_LookupFailed, TimeoutError) as exc:
            self._count("failures")
            self.rate_limited.warning(
                "lookup", "dns: lookup of %s %s failed, keeping %d last good candidate(s): %s",
                self.config.record_type, self.config.query, len(self._last_good), exc or "timeout",
            )
            return list(self._last_good)
        self._mark_success()
        found = [c for c in found if not self._is_self(c)]
        self._last_good = found if self.config.prune else merge_candidates([*self._last_good, *found])
        return list(self._last_good)

    async def _resolve(self, name: str, rdtype: str) -> list[Any]:
        """Records of ``rdtype`` at ``name``; [] for a real empty answer; _LookupFailed for a failure."""
        assert self._resolver is not None
        try:
            answer = await self._resolver.resolve(
                name, rdtype, raise_on_no_answer=False, search=False, lifetime=self.config.timeout
            )
        except Exception as exc:  # dnspython raises many types; classify rather than enumerate
            if is_real_answer(exc):
                return []
            raise _LookupFailed(f"{rdtype} {name}: {type(exc).__name__}: {exc}") from exc
        return list(answer.rrset or [])

    def _candidate(self, address: str, port: int, dns_name: str, extra: dict[str, str]) -> Candidate:
        if port == 0:
            raise ConfigurationError("SRV port 0")
        seed = format_tcp_endpoint(address, port)
        endpoints = (
            endpoints_from_port_base(address, port, self.config.channels)
            if self.config.derive_endpoints
            else {MEMBERSHIP_CHANNEL: seed}
        )
        return Candidate(
            seed=seed,
            name=dns_name,
            endpoints=endpoints,
            meta={"dns_name": dns_name, **extra},
            source=self.name,
        )

    async def _addresses(self, name: str, types: tuple[str, ...]) -> list[str]:
        results = await asyncio.gather(*(self._resolve(name, t) for t in types))
        return [rdata.address for records in results for rdata in records]

    async def _query(self) -> list[Candidate]:
        cfg = self.config
        query = cfg.query if cfg.query.endswith(".") else cfg.query + "."
        if cfg.record_type != "SRV":
            types = ("A", "AAAA") if cfg.record_type == "A+AAAA" else (cfg.record_type,)
            addresses = await self._addresses(query, types)
            self.counters["records"] = len(addresses)
            return merge_candidates(self._candidate(a, cfg.port, query.rstrip("."), {}) for a in addresses)
        records = await self._resolve(query, "SRV")
        self.counters["records"] = len(records)
        # RFC 2782: lower priority first, then heavier weight; a "." target means "no service here".
        records.sort(key=lambda r: (r.priority, -r.weight))
        targets = [r for r in records if r.target.to_text() != "."]
        resolved = await asyncio.gather(
            *(self._addresses(r.target.to_text(), cfg.srv_target_types) for r in targets)
        )
        candidates: list[Candidate] = []
        for record, addresses in zip(targets, resolved, strict=True):
            target = record.target.to_text().rstrip(".")
            if not addresses:
                self._count("unresolvable_targets")
                self._count("malformed")
                self.rate_limited.warning(
                    f"target:{target}", "dns: SRV %s points at %s, which has no address; skipped", query, target
                )
                continue
            extra = {"srv_priority": str(record.priority), "srv_weight": str(record.weight)}
            try:
                candidates.extend(self._candidate(a, record.port, target, extra) for a in addresses)
            except DiscoveryError as exc:  # port 0, or no room above it for the channel ports
                self._count("malformed")
                self.rate_limited.warning(f"port:{target}", "dns: SRV %s -> %s unusable: %s", query, target, exc)
        return merge_candidates(candidates)

    def default_poll_interval(self) -> float:
        """The configured ``polling_interval``."""
        return self.config.polling_interval
