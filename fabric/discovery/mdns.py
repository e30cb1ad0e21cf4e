"""The ``mdns`` strategy: DNS-SD over multicast DNS with python-zeroconf's asyncio API.

Theory of operation
-------------------
Each node registers one service instance of type ``_foundation._tcp.local.`` whose SRV record points at
its membership port and whose TXT record describes it (format version 1, RFC 6763 key=value strings)::

    fv=1                       TXT format version
    id=<node id>               UUID string, required
    name=<node name>
    ep.<channel>=<endpoint>    one per channel; ep.membership is the seed
    pk=<public key>            Z85 CURVE key, when security is on
    m.<key>=<value>            announced metadata

Every node also browses the same type; when an instance appears or changes, the plugin resolves it
(``AsyncServiceInfo.async_request``) and turns the TXT record into a candidate with
:func:`parse_service_txt`. Wildcard hosts in endpoints are replaced by the address the instance resolved
to; without ``ep.membership`` the seed is ``tcp://<address>:<SRV port>``. A TXT record that does not parse
(no or bad id, bad endpoint, non-UTF-8) is logged, counted as ``malformed`` and skipped. When an instance
goes away (goodbye packet or TTL expiry) its candidate is dropped.

The browser's callbacks run on the loop that created the :class:`~zeroconf.asyncio.AsyncZeroconf`: the
node's loop. Resolution happens in tasks, so the callback never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .base import (
    MEMBERSHIP_CHANNEL,
    Candidate,
    ConfigurationError,
    DiscoveryError,
    DiscoveryPlugin,
    LocalNode,
    MalformedInput,
    check_ip,
    check_positive,
    concretize_endpoint,
    format_tcp_endpoint,
    parse_tcp_endpoint,
    require_backend,
)

if TYPE_CHECKING:  # zeroconf is imported when the strategy is built, not with the fabric
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

__all__ = ["SERVICE_TYPE", "TXT_FORMAT_VERSION", "MdnsConfig", "MdnsPlugin", "build_service_txt", "parse_service_txt"]

SERVICE_TYPE = "_foundation._tcp.local."
TXT_FORMAT_VERSION = "1"
#: ``ip_version`` -> the name of zeroconf's ``IPVersion`` member.
_IP_VERSIONS = {"v4": "V4Only", "v6": "V6Only", "all": "All"}


@dataclasses.dataclass(frozen=True)
class MdnsConfig:
    """Configuration of the ``mdns`` strategy.

    Attributes:
        service_type: DNS-SD service type, ``_name._tcp.local.``; the name part is at most 15 characters
            (RFC 6763 section 7.2). Separate clusters on one link use separate types (or filter by id).
        interfaces: IP addresses of the interfaces to use; empty means every interface. Tests and
            single-host demos use ``("127.0.0.1",)``.
        ip_version: ``v4`` (default: IPv6 multicast is often missing in containers), ``v6`` or ``all``.
        announce: register this node so others find it.
        browse: look for other nodes (turn off for announce-only nodes, e.g. seeds that never join).
        instance_name: this node's instance label; default ``<name>-<first 8 hex of node id>``, unique
            per node so probing never has to rename it.
        resolve_timeout: seconds to wait for an instance's SRV/TXT/address records after it appears.
        polling_interval: seconds between re-reads of the browser state in watch(); changes are pushed
            anyway, so this only bounds how late an expiry is noticed.
    """

    service_type: str = SERVICE_TYPE
    interfaces: tuple[str, ...] = ()
    ip_version: str = "v4"
    announce: bool = True
    browse: bool = True
    instance_name: str | None = None
    resolve_timeout: float = 3.0
    polling_interval: float = 5.0

    def __post_init__(self) -> None:
        st = self.service_type
        if not isinstance(st, str) or not (st.endswith("._tcp.local.") or st.endswith("._udp.local.")):
            raise ConfigurationError(f"MdnsConfig.service_type must look like _name._tcp.local., got {st!r}")
        label = st.split(".", 1)[0]
        if not label.startswith("_") or not 2 <= len(label) <= 16:
            raise ConfigurationError("MdnsConfig.service_type name must be '_' + 1..15 characters (RFC 6763 7.2)")
        if isinstance(self.interfaces, str):
            object.__setattr__(self, "interfaces", (self.interfaces,))
        for address in self.interfaces:
            check_ip(address, "MdnsConfig.interfaces")
        if self.ip_version not in _IP_VERSIONS:
            raise ConfigurationError(f"MdnsConfig.ip_version must be one of {sorted(_IP_VERSIONS)}")
        if self.instance_name is not None and not 0 < len(self.instance_name.encode()) <= 63:
            raise ConfigurationError("MdnsConfig.instance_name must be 1..63 bytes")
        check_positive(self.resolve_timeout, "MdnsConfig.resolve_timeout")
        check_positive(self.polling_interval, "MdnsConfig.polling_interval")

    @classmethod
    def local(cls, **overrides: Any) -> MdnsConfig:
        """Single host: loopback only (tests, demos)."""
        return cls(**{"interfaces": ("127.0.0.1",), "resolve_timeout": 2.0, "polling_interval": 1.0, **overrides})

    @classmethod
    def lan(cls, **overrides: Any) -> MdnsConfig:
        """One LAN: every IPv4 interface."""
        return cls(**overrides)


def build_service_txt(local: LocalNode) -> dict[str, str]:
    """The TXT key/values that describe ``local``. Raises ConfigurationError if an entry exceeds 255 bytes."""
    txt = {"fv": TXT_FORMAT_VERSION, "id": local.node_id, "name": local.name}
    txt.update({f"ep.{channel}": endpoint for channel, endpoint in local.endpoints.items()})
    if local.public_key is not None:
        txt["pk"] = local.public_key
    txt.update({f"m.{key}": value for key, value in local.metadata.items()})
    for key, value in txt.items():
        if len(key.encode()) + 1 + len(value.encode()) > 255:
            raise ConfigurationError(f"TXT entry {key!r} is over 255 bytes; shorten it")
    return txt


def _text(value: bytes | str | None, what: str) -> str:
    if value is None:
        raise MalformedInput(f"TXT {what} has no value")
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(f"TXT {what} is not UTF-8") from exc


def parse_service_txt(
    properties: Mapping[Any, bytes | str | None],
    addresses: Sequence[str],
    port: int | None,
    source: str = "mdns",
) -> Candidate:
    """Turn a resolved instance (TXT properties, its addresses, its SRV port) into a candidate. Pure.

    Raises :class:`MalformedInput` when the record has no valid node id, an endpoint is invalid, or no
    membership endpoint can be formed. Unknown keys are ignored (forward compatibility).
    """
    txt: dict[str, bytes | str | None] = {}
    for raw_key, value in properties.items():
        key = _text(raw_key, "key") if isinstance(raw_key, bytes) else raw_key
        txt[key] = value
    version = txt.get("fv")
    if version is not None and _text(version, "fv") != TXT_FORMAT_VERSION:
        raise MalformedInput(f"unsupported TXT format version {version!r}")
    if "id" not in txt:
        raise MalformedInput("TXT record has no node id")
    node_id = _text(txt["id"], "id")
    name = _text(txt["name"], "name") if txt.get("name") is not None else None
    address = addresses[0] if addresses else None
    endpoints: dict[str, str] = {}
    meta: dict[str, str] = {}
    for key, value in txt.items():
        if key.startswith("ep.") and len(key) > 3:
            endpoint = _text(value, key)
            endpoints[key[3:]] = concretize_endpoint(endpoint, address) if address else endpoint
        elif key.startswith("m.") and len(key) > 2:
            meta[key[2:]] = _text(value, key)
        elif key == "pk":
            meta["public_key"] = _text(value, key)
    seed = endpoints.get(MEMBERSHIP_CHANNEL)
    if seed is None:
        if address is None or not port:
            raise MalformedInput("TXT record has no ep.membership and the instance has no address/port")
        seed = format_tcp_endpoint(address, port)
        endpoints[MEMBERSHIP_CHANNEL] = seed
    try:
        return Candidate(seed=seed, node_id=node_id, name=name, endpoints=endpoints, meta=meta, source=source)
    except DiscoveryError as exc:
        raise MalformedInput(f"TXT record describes an invalid candidate: {exc}") from exc


class MdnsPlugin(DiscoveryPlugin):
    """Announces this node over mDNS and browses for others.

    Counters: lookups, failures, malformed, ``registered``, ``resolve_failures``, ``instances_added``,
    ``instances_removed``.
    """

    name: ClassVar[str] = "mdns"
    config_type: ClassVar[type[MdnsConfig]] = MdnsConfig
    config: MdnsConfig

    def __init__(self, config: MdnsConfig | None = None, **kw: Any) -> None:
        """Create a stopped mDNS plugin; arguments as :class:`DiscoveryPlugin`."""
        require_backend("zeroconf.asyncio", "zeroconf", self.name)
        super().__init__(config, **kw)
        self.counters.update(
            {"registered": 0, "resolve_failures": 0, "instances_added": 0, "instances_removed": 0}
        )
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._found: dict[str, Candidate] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set once our own instance is registered (or registration failed); tests wait on it.
        self.announced = asyncio.Event()

    @property
    def instance(self) -> str | None:
        """Our full service instance name (``<label>.<service type>``), once started with announce on."""
        return self._info.name if self._info is not None else None

    async def _start(self, local: LocalNode) -> None:
        from zeroconf import InterfaceChoice, IPVersion
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

        cfg = self.config
        interfaces: Any = list(cfg.interfaces) if cfg.interfaces else InterfaceChoice.All
        try:
            self._azc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion[_IP_VERSIONS[cfg.ip_version]])
        except OSError as exc:
            self._count("failures")
            self.log.error("mdns: cannot open multicast DNS sockets on %s: %s", cfg.interfaces or "all", exc)
            self.announced.set()
            return
        self._mark_success()
        if cfg.announce:
            txt = build_service_txt(local)
            label = cfg.instance_name or f"{local.name}-{local.node_id.replace('-', '')[:8]}"
            addresses = await self._announce_addresses(local)
            self._info = AsyncServiceInfo(
                cfg.service_type,
                f"{label}.{cfg.service_type}",
                addresses=[ipaddress.ip_address(a).packed for a in addresses],
                port=self._membership_port(local),
                properties=txt,
                server=f"ff-{local.node_id}.local.",
            )
            self._spawn(self._register(self._info))
        else:
            self.announced.set()
        if cfg.browse:
            self._browser = AsyncServiceBrowser(self._azc.zeroconf, cfg.service_type, handlers=[self._on_change])

    @staticmethod
    def _membership_port(local: LocalNode) -> int:
        try:
            return parse_tcp_endpoint(local.seed)[1]
        except ConfigurationError:
            return 0  # ipc:// or inproc:// seed: the TXT endpoints are what matters

    async def _announce_addresses(self, local: LocalNode) -> list[str]:
        """Addresses for our A/AAAA records: the membership host if concrete, else the interfaces."""
        try:
            host = parse_tcp_endpoint(local.seed)[0]
            ipaddress.ip_address(host)
            if host not in ("0.0.0.0", "::"):
                return [host]
        except (ConfigurationError, ValueError):
            pass
        if self.config.interfaces:
            return list(self.config.interfaces)

        from zeroconf import get_all_addresses, get_all_addresses_v6  # type: ignore[attr-defined]

        def all_addresses() -> list[str]:  # enumerates interfaces: keep it off the loop
            found = list(get_all_addresses()) if self.config.ip_version != "v6" else []
            if self.config.ip_version != "v4":
                found += [a[0][0] for a in get_all_addresses_v6()]
            return found

        return await asyncio.get_running_loop().run_in_executor(None, all_addresses)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _register(self, info: AsyncServiceInfo) -> None:
        assert self._azc is not None
        try:
            # async_register_service returns a task that finishes after probing and announcing.
            await (await self._azc.async_register_service(info, allow_name_change=True))
            self._count("registered")
        except Exception as exc:  # zeroconf raises several types (NonUniqueNameException, OSError, ...)
            self._count("failures")
            self.rate_limited.warning("register", "mdns: registering %s failed: %r", info.name, exc)
        finally:
            self.announced.set()

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        """Browser callback (on the loop): resolve new/updated instances, drop removed ones."""
        from zeroconf import ServiceStateChange

        if self._info is not None and name == self._info.name:
            return
        if state_change is ServiceStateChange.Removed:
            if self._found.pop(name, None) is not None:
                self._count("instances_removed")
                self._notify_changed()
            return
        self._spawn(self._resolve(service_type, name))

    async def _resolve(self, service_type: str, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        if self._azc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        try:
            ok = await info.async_request(self._azc.zeroconf, int(self.config.resolve_timeout * 1000))
        except Exception as exc:  # a closing zeroconf or a socket error: count, never crash the loop
            ok = False
            self.rate_limited.warning("resolve-error", "mdns: resolving %s failed: %r", name, exc)
        if not ok:
            self._count("resolve_failures")
            self.rate_limited.warning("resolve", "mdns: %s did not resolve within %.1fs", name, self.config.resolve_timeout)
            return
        try:
            candidate = parse_service_txt(info.properties, info.parsed_addresses(), info.port, self.name)
        except MalformedInput as exc:
            self._count("malformed")
            self.rate_limited.warning(f"txt:{name}", "mdns: skipping %s: %s", name, exc)
            if self._found.pop(name, None) is not None:
                self._notify_changed()
            return
        if self._is_self(candidate):
            return
        previous = self._found.get(name)
        self._found[name] = candidate
        if previous is None:
            self._count("instances_added")
        if previous != candidate:
            self._notify_changed()

    async def _lookup(self) -> list[Candidate]:
        if self._azc is None:
            self._count("failures")
            return []
        self._mark_success()
        return list(self._found.values())

    async def _stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        azc, self._azc = self._azc, None
        if azc is None:
            return
        try:
            if self._browser is not None:
                await self._browser.async_cancel()
            await azc.async_unregister_all_services()  # sends goodbye packets
        except Exception as exc:  # closing must always finish
            self.rate_limited.warning("stop", "mdns: error while withdrawing: %r", exc)
        finally:
            await azc.async_close()
        self._found.clear()

    def default_poll_interval(self) -> float:
        """The configured ``polling_interval``."""
        return self.config.polling_interval


