"""The ``consul`` strategy: register this node in Consul with a TTL check, find healthy instances.

Theory of operation
-------------------
Two tasks run on the node's loop after :meth:`~fabric.discovery.base.DiscoveryPlugin.start`:

* **heartbeat** (when ``announce``): registers the service instance ``<service>-<node id>`` with the
  local agent (``PUT /v1/agent/service/register``) with one TTL check, then marks the check passing
  (``PUT /v1/agent/check/pass/<check id>``) every ``ttl * pass_fraction`` seconds. A node that hangs or
  dies stops passing; after ``ttl`` Consul marks it critical and the others stop seeing it (after
  ``deregister_critical_after`` Consul removes it altogether). A failed pass (agent restarted and lost
  us, ACL trouble, network) makes the next round register again; registration is idempotent.
* **watch**: a loop of blocking queries ``GET /v1/health/service/<service>?passing&index=I&wait=W``.
  Consul answers when the result may have changed or after ``wait``; each answer replaces the
  candidate list. The index follows Consul's rules for blocking queries: it is reset to 0 (a
  non-blocking query) when it goes backwards (a snapshot restore, a server rebuilt) and kept >= 1
  otherwise; queries are at least ``min_query_interval`` apart so a server that answers at once cannot
  make us spin.

The service instance carries everything a peer needs: ``Address``/``Port`` = the membership endpoint
(``Address`` left empty for a wildcard bind, so Consul uses the agent's address), tags = ``tags``, and
``Meta`` = ``fv`` (format version 1), ``node_id``, ``node_name``, ``ep_<channel>`` per channel,
``pk`` (CURVE public key) and ``m_<key>`` per announced metadata item. Consul restricts meta keys to
``[A-Za-z0-9_-]`` (at most 64 pairs, values <= 512 characters); items that do not fit are left out
with a warning.

Failures (refused connection, HTTP 5xx, invalid JSON, a slow agent, ``403 ACL not found``) never raise
out of lookup: they are logged (rate-limited), counted, and retried after a capped exponential backoff
with jitter; the candidate list stays what it was.

I/O: Consul's documented HTTP API (four endpoints: ``agent/service/register``, ``agent/check/pass``,
``agent/service/deregister``, ``health/service``) through ``httpx`` (one :class:`httpx.AsyncClient` per
started plugin, imported when the strategy is built), so every call is a coroutine on the node's loop
with its own deadline, cancellable at stop. Why not py-consul: its public clients are
``consul.Consul`` (synchronous, on ``requests``: a blocking query would hold a worker thread for up to
``wait`` seconds and could not be cancelled at stop) and ``consul.aio.Consul`` (needs aiohttp, a second
HTTP stack, and applies one total timeout to every call, so a blocking query and a registration cannot
have different deadlines; both let ``CONSUL_HTTP_*`` environment variables override the
configuration). Giving py-consul another transport means subclassing ``consul.base``'s classes,
which the package does not export. Four plain requests are less code than that adapter and drop
py-consul and requests from the dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ._consul_backoff import Backoff
from .base import (
    MEMBERSHIP_CHANNEL,
    Candidate,
    ConfigurationError,
    DiscoveryPlugin,
    LocalNode,
    MalformedInput,
    check_positive,
    concretize_endpoint,
    format_tcp_endpoint,
    parse_tcp_endpoint,
    require_backend,
)

if TYPE_CHECKING:  # httpx is imported when the strategy is built, not with the fabric
    import httpx

__all__ = [
    "ConsulConfig",
    "ConsulPlugin",
    "ConsulRegistration",
    "build_registration",
    "candidate_from_entry",
    "candidates_from_entries",
    "next_index",
]

#: Version of the Meta layout below; an instance with another ``fv`` is skipped as malformed.
META_FORMAT = "1"
_META_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MAX_META_PAIRS = 64
_MAX_META_VALUE = 512
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
_WILDCARD_HOSTS = frozenset({"*", "0.0.0.0", "::", ""})
#: Seconds the first lookup after start() waits for the first health answer (later lookups never wait).
_FIRST_ANSWER_WAIT = 5.0


def _go_duration(seconds: float) -> str:
    """Seconds as a Go duration string (``"10s"``, ``"1500ms"``), the form Consul's API takes."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


@dataclasses.dataclass(frozen=True)
class ConsulConfig:
    """Configuration of the ``consul`` strategy.

    Attributes:
        service: the Consul service name every node of the cluster registers under and queries
            (letters, digits, ``-``). Separate clusters use separate names (or ``tags``/``query_tags``).
        url: the HTTP(S) address of the Consul agent, ``http://127.0.0.1:8500`` (the local agent, as
            Consul recommends: registrations belong to an agent). ``https://`` turns TLS on.
        token: ACL token sent as ``X-Consul-Token``; needs ``service:write`` on ``service`` to register
            and ``service:read`` + ``node:read`` to discover. None: the agent's default token. The
            ``CONSUL_HTTP_TOKEN`` environment variable is *not* read implicitly (configuration decides).
        datacenter: the datacenter to query (``dc=``); None: the agent's own. Registration is always
            with the local agent.
        verify: verify the agent's TLS certificate (https only). False is for development only.
        ca_file: PEM bundle of CAs to verify the agent against (https); None: the system's store.
        cert_file: client certificate (PEM) for agents that require mutual TLS (``verify_incoming``).
        key_file: the client certificate's private key; None when it is inside ``cert_file``.
        tags: tags on our registration (shown by ``consul catalog``; usable with ``query_tags``).
        query_tags: only instances carrying all these tags are candidates (``tag=`` filter).
        announce: register this node. False: discover only (diagnostics, clients).
        address: the address to register (``Service.Address``); None: the membership endpoint's host,
            or the agent's address when the node binds a wildcard.
        ttl: seconds of silence after which Consul marks this node critical. Shorter notices a hung node
            sooner; each node then passes its check more often.
        pass_fraction: the check is passed every ``ttl * pass_fraction`` seconds; below 0.5 so one lost
            or slow pass never lets the check lapse.
        deregister_critical_after: seconds after which Consul removes an instance whose check stays
            critical (a node that died without deregistering); Consul enforces at least 60. None: never.
        only_passing: ask for instances whose every check passes (``?passing``). False also returns
            warning and critical ones (not recommended: a hung node would stay a candidate).
        wait: the blocking-query wait in seconds (Consul caps it at 600). Longer means fewer requests;
            changes arrive at once either way. A quiet backend is "heard from" once per ``wait``, so keep
            it below ``multi``'s ``answer_ttl``.
        request_timeout: seconds allowed for a non-blocking request, and on top of ``wait`` (plus
            Consul's ``wait/16`` jitter) for a blocking one. A slower answer counts as a failure.
        min_query_interval: seconds between consecutive queries at least (Consul's advice to rate-limit
            blocking-query loops: some answers return at once).
        backoff_initial: seconds before the first retry after a failure; doubles per failure.
        backoff_max: cap of the retry delay in seconds.
        polling_interval: seconds between ``watch()`` re-reads of the current view (changes wake it at once).
    """

    service: str = "foundation"
    url: str = "http://127.0.0.1:8500"
    token: str | None = None
    datacenter: str | None = None
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tags: tuple[str, ...] = ()
    query_tags: tuple[str, ...] = ()
    announce: bool = True
    address: str | None = None
    ttl: float = 10.0
    pass_fraction: float = 1 / 3
    deregister_critical_after: float | None = 600.0
    only_passing: bool = True
    wait: float = 30.0
    request_timeout: float = 10.0
    min_query_interval: float = 0.1
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    polling_interval: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.service, str) or not _SERVICE_NAME.match(self.service):
            raise ConfigurationError(f"ConsulConfig.service must be a DNS-style name, got {self.service!r}")
        try:
            parts = urllib.parse.urlsplit(self.url)
            _ = parts.port
        except (ValueError, AttributeError, TypeError) as exc:
            raise ConfigurationError(f"ConsulConfig.url is not a URL: {self.url!r}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"ConsulConfig.url must be http(s)://host[:port], got {self.url!r}")
        for name in ("tags", "query_tags"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
                object.__setattr__(self, name, value)
            if not all(isinstance(t, str) and t for t in value):
                raise ConfigurationError(f"ConsulConfig.{name} must hold non-empty strings")
        for name in ("token", "datacenter", "ca_file", "cert_file", "key_file", "address"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigurationError(f"ConsulConfig.{name} must be a non-empty string or None")
        if self.key_file is not None and self.cert_file is None:
            raise ConfigurationError("ConsulConfig.key_file needs cert_file")
        for name in ("ttl", "wait", "request_timeout", "min_query_interval", "backoff_initial",
                     "backoff_max", "polling_interval"):
            check_positive(getattr(self, name), f"ConsulConfig.{name}")
        if self.ttl < 1:
            raise ConfigurationError("ConsulConfig.ttl must be at least 1 second")
        if self.wait > 600:
            raise ConfigurationError("ConsulConfig.wait must be at most 600 seconds (Consul's cap)")
        if isinstance(self.pass_fraction, bool) or not 0 < self.pass_fraction < 0.5:
            raise ConfigurationError("ConsulConfig.pass_fraction must be in (0, 0.5)")
        if self.backoff_max < self.backoff_initial:
            raise ConfigurationError("ConsulConfig.backoff_max must be >= backoff_initial")
        if self.deregister_critical_after is not None:
            check_positive(self.deregister_critical_after, "ConsulConfig.deregister_critical_after")
        for name in ("verify", "announce", "only_passing"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"ConsulConfig.{name} must be a boolean")

    @classmethod
    def local(cls, **overrides: Any) -> ConsulConfig:
        """Tests and one-host demos: 2 s TTL, 2 s blocking waits, fast retries."""
        return cls(**{"ttl": 2.0, "wait": 2.0, "request_timeout": 2.0, "backoff_initial": 0.1,
                      "backoff_max": 1.0, "polling_interval": 0.5, **overrides})

    @classmethod
    def lan(cls, **overrides: Any) -> ConsulConfig:
        """A data centre: the defaults (10 s TTL, 30 s waits)."""
        return cls(**overrides)

    @classmethod
    def wan(cls, **overrides: Any) -> ConsulConfig:
        """Querying a remote datacenter: longer timeouts and TTL (WAN round trips, slower recovery)."""
        return cls(**{"ttl": 30.0, "request_timeout": 20.0, "backoff_max": 60.0, **overrides})

    @property
    def check_interval(self) -> float:
        """Seconds between two passes of our TTL check."""
        return self.ttl * self.pass_fraction


# -- pure parts ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConsulRegistration:
    """What this node registers (the arguments of ``agent.service.register``).

    Attributes:
        service_id: ``<service>-<node id>``; unique per node, stable across restarts with a fixed id.
        check_id: ``service:<service_id>``, the TTL check's id.
        address: Service.Address ("" lets Consul use the agent's address).
        port: Service.Port (the membership port; 0 for a non-tcp membership endpoint).
        tags: our tags.
        meta: Service.Meta, see the module docstring.
        skipped: meta items that did not fit Consul's rules (logged by the plugin).
    """

    service_id: str
    check_id: str
    address: str
    port: int
    tags: tuple[str, ...]
    meta: Mapping[str, str]
    skipped: tuple[str, ...] = ()

    def check(self, config: ConsulConfig) -> dict[str, Any]:
        """The TTL check definition sent with the registration."""
        check: dict[str, Any] = {
            "CheckID": self.check_id,
            "Name": f"{config.service} TTL",
            "TTL": _go_duration(config.ttl),
            "Notes": "passed by the node itself every ttl * pass_fraction",
        }
        if config.deregister_critical_after is not None:
            check["DeregisterCriticalServiceAfter"] = _go_duration(config.deregister_critical_after)
        return check


def build_registration(local: LocalNode, config: ConsulConfig) -> ConsulRegistration:
    """Turn the local node into a Consul service instance. Pure.

    Raises :class:`ConfigurationError` when ``config.address`` is set but the membership endpoint is
    not a tcp endpoint (no port to register).
    """
    service_id = f"{config.service}-{local.node_id}"
    meta: dict[str, str] = {"fv": META_FORMAT, "node_id": local.node_id}
    skipped: list[str] = []

    def put(key: str, value: str) -> None:
        if not _META_KEY.match(key) or key.lower().startswith("consul-") or len(value) > _MAX_META_VALUE:
            skipped.append(key)
        elif len(meta) >= _MAX_META_PAIRS:
            skipped.append(key)
        else:
            meta[key] = value

    put("node_name", local.name)
    for channel, endpoint in local.endpoints.items():
        put(f"ep_{channel}", endpoint)
    if local.public_key:
        put("pk", local.public_key)
    for key, value in local.metadata.items():
        put(f"m_{key}", value)
    address, port = "", 0
    if local.seed.startswith("tcp://"):
        host, port = parse_tcp_endpoint(local.seed)
        address = "" if host in _WILDCARD_HOSTS else host
    elif config.address is not None:
        raise ConfigurationError("ConsulConfig.address needs a tcp:// membership endpoint")
    if config.address is not None:
        address = config.address
    return ConsulRegistration(
        service_id=service_id,
        check_id=f"service:{service_id}",
        address=address,
        port=port,
        tags=tuple(config.tags),
        meta=meta,
        skipped=tuple(skipped),
    )


def _is_wildcard(endpoint: str) -> bool:
    try:
        return parse_tcp_endpoint(endpoint)[0] in _WILDCARD_HOSTS
    except ConfigurationError:
        return False


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedInput(f"{what} is not a string: {value!r}")
    return value


def candidate_from_entry(entry: Any, *, only_passing: bool = True, source: str = "consul") -> Candidate | None:
    """One ``/v1/health/service`` entry -> a candidate, or None when it is not healthy. Pure.

    Raises :class:`MalformedInput` for an entry we cannot use (not our Meta format, bad node id or
    endpoints, no address).
    """
    if not isinstance(entry, Mapping):
        raise MalformedInput("entry is not an object")
    service, node, checks = entry.get("Service"), entry.get("Node"), entry.get("Checks") or []
    if not isinstance(service, Mapping) or not isinstance(node, Mapping) or not isinstance(checks, list):
        raise MalformedInput("entry lacks Service/Node/Checks")
    if only_passing and any(not isinstance(c, Mapping) or c.get("Status") != "passing" for c in checks):
        return None  # the server filters with ?passing; this guards against a server that did not
    meta = service.get("Meta") or {}
    if not isinstance(meta, Mapping):
        raise MalformedInput("Service.Meta is not an object")
    if meta.get("fv", META_FORMAT) != META_FORMAT:
        raise MalformedInput(f"unknown meta format {meta.get('fv')!r}")
    address = service.get("Address") or node.get("Address")
    address = _text(address, "address") if address else ""
    port = service.get("Port") or 0
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise MalformedInput(f"bad Service.Port {port!r}")
    endpoints: dict[str, str] = {}
    for key, value in meta.items():
        if isinstance(key, str) and key.startswith("ep_") and len(key) > 3:
            endpoint = _text(value, f"Meta[{key}]")
            endpoints[key[3:]] = concretize_endpoint(endpoint, address) if address else endpoint
    seed = endpoints.get(MEMBERSHIP_CHANNEL)
    if seed is None or _is_wildcard(seed):  # no address to substitute: fall back to Address/Port
        if not address or port == 0:
            raise MalformedInput("instance has neither a usable ep_membership nor Address/Port")
        seed = format_tcp_endpoint(address, port)
        endpoints[MEMBERSHIP_CHANNEL] = seed
    extra: dict[str, str] = {}
    service_id = service.get("ID")
    if isinstance(service_id, str):
        extra["consul_service_id"] = service_id
    for key, field in (("consul_node", "Node"), ("datacenter", "Datacenter")):
        if isinstance(node.get(field), str):
            extra[key] = node[field]
    if isinstance(meta.get("pk"), str):
        extra["public_key"] = meta["pk"]
    for key, value in meta.items():
        if isinstance(key, str) and key.startswith("m_") and isinstance(value, str):
            extra[key[2:]] = value
    node_id = meta.get("node_id")
    try:
        return Candidate(
            seed=seed,
            node_id=node_id if node_id is None else _text(node_id, "Meta[node_id]"),
            name=meta["node_name"] if isinstance(meta.get("node_name"), str) else extra.get("consul_service_id"),
            endpoints=endpoints,
            meta=extra,
            source=source,
        )
    except ConfigurationError as exc:  # bad UUID, bad endpoint: the peer's input, not our config
        raise MalformedInput(str(exc)) from exc


def candidates_from_entries(
    entries: Any, *, only_passing: bool = True, source: str = "consul"
) -> tuple[list[Candidate], list[str]]:
    """Every usable entry -> candidates (sorted by seed), plus one reason per skipped malformed entry. Pure."""
    if not isinstance(entries, list):
        raise MalformedInput("health answer is not a list")
    found: list[Candidate] = []
    problems: list[str] = []
    for entry in entries:
        try:
            cand = candidate_from_entry(entry, only_passing=only_passing, source=source)
        except MalformedInput as exc:
            problems.append(str(exc))
            continue
        if cand is not None:
            found.append(cand)
    found.sort(key=lambda c: (c.seed, c.node_id or ""))
    return found, problems


def next_index(previous: int, answered: Any) -> tuple[int, bool]:
    """The index for the next blocking query, and whether it was reset. Pure.

    Consul's rules: an index that goes backwards resets to 0 (the next query does not block and
    fetches the current state); otherwise the index is kept at least 1 (0 would never block). Raises
    :class:`MalformedInput` when the ``X-Consul-Index`` header is not a non-negative integer.
    """
    text = str(answered).strip()
    if not text.isdigit():
        raise MalformedInput(f"bad X-Consul-Index {answered!r}")
    value = int(text)
    if value < previous:
        return 0, True
    return max(value, 1), False


# -- Consul's HTTP API over httpx -----------------------------------------------------------------------


class _ConsulHttpError(Exception):
    """The agent answered a call with an error status (403 ACL denied, 404, 5xx...)."""

    def __init__(self, what: str, status: int, body: bytes) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:200].decode('utf-8', 'replace').strip()}")
        self.status = status


class _ConsulApi:
    """The four calls the strategy makes, with Consul's parameters and Consul's status rules."""

    def __init__(self, client: httpx.AsyncClient, config: ConsulConfig) -> None:
        self._client = client
        self._config = config
        self._base = config.url.rstrip("/")

    async def _call(self, method: str, path: str, params: list[tuple[str, str]], *, body: Any = None,
                    deadline: float | None = None) -> httpx.Response:
        cfg = self._config
        headers = {"X-Consul-Token": cfg.token} if cfg.token else {}
        timeout = deadline if deadline is not None else cfg.request_timeout
        # asyncio.timeout bounds the whole exchange (httpx's timeouts bound each phase).
        async with asyncio.timeout(timeout):
            url = self._base + urllib.parse.quote(path, safe="/:")
            response = await self._client.request(
                method, f"{url}?{urllib.parse.urlencode(params)}" if params else url, headers=headers,
                json=body, timeout=timeout)
        return response

    def _check(self, what: str, response: httpx.Response, allow_404: bool = False) -> None:
        if response.status_code == 200 or (allow_404 and response.status_code == 404):
            return
        raise _ConsulHttpError(what, response.status_code, response.content)

    async def register(self, registration: ConsulRegistration) -> None:
        """``PUT /v1/agent/service/register?replace-existing-checks=true`` with one TTL check."""
        reg, cfg = registration, self._config
        payload: dict[str, Any] = {"Name": cfg.service, "ID": reg.service_id, "Meta": dict(reg.meta),
                                   "Checks": [reg.check(cfg)]}
        if reg.address:
            payload["Address"] = reg.address
        if reg.port:
            payload["Port"] = reg.port
        if reg.tags:
            payload["Tags"] = list(reg.tags)
        response = await self._call("PUT", "/v1/agent/service/register", [("replace-existing-checks", "true")],
                                    body=payload)
        self._check("register", response)

    async def ttl_pass(self, check_id: str, note: str) -> bool:
        """``PUT /v1/agent/check/pass/<id>``; False when the agent does not know the check (404)."""
        response = await self._call("PUT", f"/v1/agent/check/pass/{check_id}", [("note", note)])
        self._check("check pass", response, allow_404=True)
        return response.status_code == 200

    async def deregister(self, service_id: str) -> None:
        """``PUT /v1/agent/service/deregister/<id>``."""
        response = await self._call("PUT", f"/v1/agent/service/deregister/{service_id}", [])
        self._check("deregister", response, allow_404=True)

    async def health_service(self, index: int) -> tuple[str, Any]:
        """``GET /v1/health/service/<service>``, blocking when ``index`` is set: (X-Consul-Index, entries).

        Raises MalformedInput for an answer that is not JSON or lacks the index header.
        """
        cfg = self._config
        params: list[tuple[str, str]] = []
        deadline = cfg.request_timeout
        if index:
            params += [("index", str(index)), ("wait", _go_duration(cfg.wait))]
            deadline += cfg.wait + cfg.wait / 16  # Consul adds up to wait/16 of jitter
        if cfg.only_passing:
            params.append(("passing", "1"))
        params += [("tag", tag) for tag in cfg.query_tags]
        if cfg.datacenter:
            params.append(("dc", cfg.datacenter))
        response = await self._call("GET", f"/v1/health/service/{cfg.service}", params, deadline=deadline)
        self._check("health query", response)
        if "X-Consul-Index" not in response.headers:
            raise MalformedInput("health answer without an X-Consul-Index header")
        try:
            entries = json.loads(response.content)
        except ValueError as exc:
            raise MalformedInput(f"health answer is not JSON: {exc}") from exc
        return response.headers["X-Consul-Index"], entries


def _ssl_context(config: ConsulConfig) -> ssl.SSLContext:
    """Build the TLS context (reads the CA/cert files: call it off the loop)."""
    context = ssl.create_default_context(cafile=config.ca_file)
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file is not None:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


# -- the plugin --------------------------------------------------------------------------------------


class ConsulPlugin(DiscoveryPlugin):
    """Registers this node in Consul and follows the healthy instances of the service.

    Counters: lookups, failures, malformed, ``registrations``, ``register_failures``, ``passes``,
    ``pass_failures``, ``queries``, ``index_resets``, ``acl_denied``, ``deregistrations``.
    """

    name: ClassVar[str] = "consul"
    config_type: ClassVar[type[ConsulConfig]] = ConsulConfig
    config: ConsulConfig

    def __init__(self, config: ConsulConfig | None = None, *, rng: random.Random | None = None, **kw: Any) -> None:
        """Create a stopped plugin. ``rng`` jitters the retry backoff (seed it in tests).

        Raises :class:`~fabric.discovery.base.MissingDependencyError` when ``httpx`` is not installed.
        """
        require_backend("httpx", "httpx", self.name)
        super().__init__(config, **kw)
        self.counters.update({k: 0 for k in (
            "registrations", "register_failures", "passes", "pass_failures", "queries", "index_resets",
            "acl_denied", "deregistrations")})
        self._rng = rng if rng is not None else random.Random()
        self._http: httpx.AsyncClient | None = None
        self._api: _ConsulApi | None = None
        self._registration: ConsulRegistration | None = None
        self._registered = False
        self._view: list[Candidate] = []
        self._answered = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: The index of the last blocking-query answer (0 before the first / after a reset).
        self.index = 0

    @property
    def registration(self) -> ConsulRegistration | None:
        """What this node registered (None when not announcing or before start)."""
        return self._registration

    async def _start(self, local: LocalNode) -> None:
        cfg = self.config
        parts = urllib.parse.urlsplit(cfg.url)
        verify: ssl.SSLContext | bool = False  # http://: no TLS at all
        if parts.scheme == "https":
            try:  # reading the CA bundle and the client key is file I/O: off the loop
                verify = await asyncio.get_running_loop().run_in_executor(None, _ssl_context, cfg)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(f"consul TLS files unusable: {exc}") from exc
        import httpx

        # trust_env=False: the agent is reached directly, and CONSUL_HTTP_* / proxy variables never
        # override the configuration.
        self._http = httpx.AsyncClient(verify=verify, trust_env=False, follow_redirects=False,
                                       headers={"Accept": "application/json", "User-Agent": "foundation-fabric"})
        self._api = _ConsulApi(self._http, cfg)
        if cfg.announce:
            self._registration = build_registration(local, cfg)
            if self._registration.skipped:
                self.log.warning("consul: meta items left out of the registration (Consul's key/size rules): %s",
                                 ", ".join(self._registration.skipped))
            self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="consul-heartbeat"))
        self._tasks.append(asyncio.create_task(self._watch_loop(), name="consul-watch"))

    async def _lookup(self) -> list[Candidate]:
        if not self._answered.is_set():
            # The first answer is on its way (start() returns at once): wait for it, briefly (multi bounds
            # a child's lookup too; an agent that is down must not make it time out).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.config.request_timeout, _FIRST_ANSWER_WAIT)):
                    await self._answered.wait()
        return list(self._view)

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.config.request_timeout)
        self._tasks = []
        if self._registration is not None and self._registered and self._api is not None:
            try:
                await self._api.deregister(self._registration.service_id)
                self._count("deregistrations")
            except Exception as exc:  # stop never raises; the TTL check cleans up after us
                self._failure("deregister", exc)
            self._registered = False
        client, self._http, self._api = self._http, None, None
        if client is not None:
            with contextlib.suppress(Exception):  # the sockets close either way
                async with asyncio.timeout(self.config.request_timeout):
                    await client.aclose()
        self._view = []

    def default_poll_interval(self) -> float:
        """The configured ``polling_interval`` (changes wake watch() at once anyway)."""
        return self.config.polling_interval

    # -- internals -------------------------------------------------------------------------------------

    def _failure(self, what: str, exc: BaseException) -> None:
        if isinstance(exc, _ConsulHttpError) and exc.status == 403:
            self._count("acl_denied")
        self.rate_limited.warning(
            f"{what}:{type(exc).__name__}", "consul: %s failed (%s: %s); keeping %d candidate(s), retrying",
            what, type(exc).__name__, str(exc)[:200] or "timeout", len(self._view),
        )

    async def _register(self) -> None:
        assert self._registration is not None
        assert self._api is not None
        await self._api.register(self._registration)
        self._count("registrations")
        self._registered = True

    async def _heartbeat_loop(self) -> None:
        assert self._registration is not None
        backoff = Backoff(self.config.backoff_initial, self.config.backoff_max, rng=self._rng)
        need_register = True
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow stop()'s cancellation.
                async with asyncio.timeout(self.config.request_timeout):
                    if need_register:
                        await self._register()
                        need_register = False
                    assert self._api is not None
                    passed = await self._api.ttl_pass(self._registration.check_id, note="alive")
                if not passed:  # 404: the agent forgot us (restarted, or removed a critical instance)
                    raise _ConsulHttpError(f"check {self._registration.check_id} unknown to the agent", 404, b"")
                self._count("passes")
                backoff.reset()
                delay = self.config.check_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._count("register_failures" if need_register else "pass_failures")
                self._count("failures")
                self._failure("register" if need_register else "check pass", exc)
                need_register = True
                delay = min(backoff.next_delay(), self.config.check_interval)
            await asyncio.sleep(delay)

    async def _watch_loop(self) -> None:
        cfg = self.config
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max, rng=self._rng)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                self._count("queries")
                assert self._api is not None
                answered, entries = await self._api.health_service(self.index)
                new_index, reset = next_index(self.index, answered)
                found, problems = candidates_from_entries(entries, only_passing=cfg.only_passing, source=self.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._count("failures")
                if isinstance(exc, MalformedInput):
                    self._count("malformed")
                self._failure("health query", exc)
                self.index = 0  # after a failure, start over with a non-blocking query
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            if reset:
                self._count("index_resets")
                self.log.info("consul: X-Consul-Index went backwards (%s -> %s); re-reading", self.index, answered)
            self.index = new_index
            for problem in problems:
                self._count("malformed")
                self.rate_limited.warning(f"malformed:{problem[:40]}", "consul: instance skipped: %s", problem)
            self._mark_success()
            found = [c for c in found if not self._is_self(c)]
            if found != self._view:
                self._view = found
                self._notify_changed()
            self._answered.set()
            # Consul's advice: rate-limit the loop, some answers return at once.
            elapsed = loop.time() - started
            if elapsed < cfg.min_query_interval:
                await asyncio.sleep(cfg.min_query_interval - elapsed)
