"""The ``kubernetes`` strategy: EndpointSlices (list + watch) with in-cluster credentials, or headless DNS.

Theory of operation
-------------------
Mode ``endpointslices`` (default). One task on the node's loop keeps a local copy of the EndpointSlices
(``discovery.k8s.io/v1``) that match ``label_selector`` in ``namespace``, the way client-go's reflector
does:

1. **list** ``GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=...``: the copy is
   replaced by the answer and the list's ``metadata.resourceVersion`` is remembered;
2. **watch** ``...&watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T``: a chunked
   stream of JSON lines ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}``. Each event
   updates the copy and RV (a BOOKMARK only moves RV forward, so a later re-watch does not start from
   a compacted version). When the server ends the stream (``timeoutSeconds``) the watch resumes from RV;
3. **410 Gone** (an HTTP 410 answer to the watch, or an ``ERROR`` event whose Status has ``code: 410``:
   RV was compacted away) forgets RV and goes back to 1: a fresh list.

Every change of the copy recomputes the candidates (:func:`candidates_from_slices`, pure): one per
endpoint whose ``conditions.ready`` is not false (absent means ready, as the API documents) and that is
not ``terminating``, at ``addresses[0]`` (the API says the addresses of one endpoint are fungible) and
the slice's port named ``port_name``. Ports named after other channels give those channels' endpoints;
the rest are derived from the membership port (P+i) when ``derive_endpoints``. ``serving`` is reported
in the candidate's meta but not used: a terminating pod that still serves is leaving the cluster.

Credentials are the pod's service account: a bearer token read from ``token_file`` (re-read every
``token_reload_interval`` seconds and at once after a 401, because the kubelet rotates projected
tokens), the cluster CA from ``ca_file``, the namespace from ``namespace_file``. A kubeconfig is never
read. Failures (refused connections, HTTP 5xx, 401, invalid JSON, slow answers) are logged
(rate-limited), counted, and retried after a capped exponential backoff with jitter; the candidates
stay what they were until a real answer replaces them.

Mode ``dns``: a headless Service's A/AAAA records through the ``dns`` strategy (the query defaults to
``<service>.<namespace>.svc.<cluster_domain>``), for clusters where the pod may not read the API.

HTTP goes through ``httpx`` (one :class:`httpx.AsyncClient` per started plugin, imported when the
strategy is built): it does the HTTP/1.1 framing (chunked watch streams), TLS verification against the
cluster CA, connection reuse and per-phase timeouts, and every call is a cancellable coroutine on the
node's loop. The list is read within ``request_timeout``; a watch must answer its headers within
``request_timeout`` and may then stay silent for ``watch_timeout + request_timeout``. Answers are size
bounded (:data:`MAX_ANSWER_BYTES`) so a broken or hostile server cannot exhaust memory. Proxies from the
environment are not used (``trust_env=False``): the API server is reached directly, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ._consul_backoff import Backoff
from .base import (
    CHANNEL_ORDER,
    DEFAULT_MEMBERSHIP_PORT,
    MEMBERSHIP_CHANNEL,
    Candidate,
    Clock,
    ConfigurationError,
    DiscoveryPlugin,
    LocalNode,
    MalformedInput,
    check_port,
    check_positive,
    config_from_mapping,
    format_tcp_endpoint,
    parse_tcp_endpoint,
    require_backend,
)
from .dns import DnsConfig, DnsPlugin

if TYPE_CHECKING:  # httpx is imported when the strategy is built, not with the fabric
    import httpx

__all__ = [
    "MAX_ANSWER_BYTES",
    "SERVICE_ACCOUNT_DIR",
    "EndpointSliceCache",
    "JsonLines",
    "KubernetesConfig",
    "KubernetesPlugin",
    "TokenSource",
    "candidates_from_slices",
]

#: Where Kubernetes mounts the pod's service-account credentials.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_MODES = ("endpointslices", "dns")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_API_PATH = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
#: Seconds the first lookup after start() waits for the first list (later lookups never wait).
_FIRST_ANSWER_WAIT = 5.0
#: The largest list answer, and the longest watch event, read from the API server (bytes).
MAX_ANSWER_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class KubernetesConfig:
    """Configuration of the ``kubernetes`` strategy.

    Attributes:
        mode: ``endpointslices`` (list + watch through the API; needs RBAC get/list/watch on
            endpointslices) or ``dns`` (A/AAAA records of a headless Service; no API access needed).
        namespace: the namespace to look in; None: this pod's own (``namespace_file``).
        service: the (headless) Service name. In ``endpointslices`` mode it selects the slices with
            ``kubernetes.io/service-name=<service>`` unless ``label_selector`` is given; in ``dns``
            mode it names the DNS query.
        label_selector: a Kubernetes label selector for the EndpointSlices (``app=foundation``,
            ``a=b,c!=d``). One of ``service``/``label_selector`` is required in ``endpointslices`` mode.
        port_name: name of the EndpointSlice port that is the membership port (the seed).
        channels: channel names in port order, membership first: ports named like a channel give its
            endpoint; the others are P+i of the membership port when ``derive_endpoints``.
        derive_endpoints: derive endpoints of channels without a named port from the port base.
        include_not_ready: also offer endpoints whose ``conditions.ready`` is false (never terminating
            ones). Use it when the readiness probe waits for the cluster to form (otherwise the first
            pods never become ready and never find each other), like ``publishNotReadyAddresses``.
        api_server: the API server URL; None: ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``
            (in-cluster). ``http://`` only for ``kubectl proxy`` during development.
        token_file: the service-account bearer token (re-read when it rotates). Missing: no token sent.
        ca_file: the cluster CA bundle the API server is verified against.
        namespace_file: where the pod's namespace is read when ``namespace`` is None.
        token_reload_interval: seconds after which the token file is read again (client-go: 60 s).
        pod_ip: this pod's IP, to leave itself out; None: the ``POD_IP`` environment variable (downward API).
        watch_timeout: seconds asked of the server per watch (``timeoutSeconds``); the watch resumes after.
        request_timeout: seconds allowed for a list, for a watch to start, and beyond ``watch_timeout``
            for a watch stream to stay silent.
        backoff_initial: seconds before the first retry after a failure; doubles per failure.
        backoff_max: cap of the retry delay in seconds.
        polling_interval: seconds between ``watch()`` re-reads of the view (changes wake it at once).
        cluster_domain: the cluster's DNS domain (``dns`` mode).
        port: the membership port (port base) of the pods (``dns`` mode; A records carry no port).
        dns: further ``dns`` strategy options for ``dns`` mode (``query``, ``nameservers``, ``record_type``...).
    """

    mode: str = "endpointslices"
    namespace: str | None = None
    service: str | None = None
    label_selector: str | None = None
    port_name: str = MEMBERSHIP_CHANNEL
    channels: tuple[str, ...] = CHANNEL_ORDER
    derive_endpoints: bool = True
    include_not_ready: bool = False
    api_server: str | None = None
    token_file: str = f"{SERVICE_ACCOUNT_DIR}/token"
    ca_file: str = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
    namespace_file: str = f"{SERVICE_ACCOUNT_DIR}/namespace"
    token_reload_interval: float = 60.0
    pod_ip: str | None = None
    watch_timeout: float = 300.0
    request_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    polling_interval: float = 5.0
    cluster_domain: str = "cluster.local"
    port: int = DEFAULT_MEMBERSHIP_PORT
    dns: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigurationError(f"KubernetesConfig.mode must be one of {_MODES}, got {self.mode!r}")
        for name in ("namespace", "service"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _DNS_LABEL.match(value)):
                raise ConfigurationError(f"KubernetesConfig.{name} must be a DNS label, got {value!r}")
        if self.label_selector is not None:
            parse_label_selector(self.label_selector)  # raises ConfigurationError
        if self.mode == "endpointslices" and self.service is None and self.label_selector is None:
            raise ConfigurationError("KubernetesConfig needs service or label_selector in endpointslices mode")
        if self.mode == "dns" and self.service is None and "query" not in self.dns:
            raise ConfigurationError("KubernetesConfig needs service (or dns.query) in dns mode")
        if not isinstance(self.port_name, str) or not self.port_name:
            raise ConfigurationError("KubernetesConfig.port_name must be a port name")
        if isinstance(self.channels, str) or not self.channels or self.channels[0] != MEMBERSHIP_CHANNEL:
            raise ConfigurationError("KubernetesConfig.channels must start with 'membership'")
        if self.api_server is not None:
            parts = urllib.parse.urlsplit(self.api_server)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(f"KubernetesConfig.api_server must be an http(s) URL, got {self.api_server!r}")
        for name in ("token_reload_interval", "watch_timeout", "request_timeout", "backoff_initial",
                     "backoff_max", "polling_interval"):
            check_positive(getattr(self, name), f"KubernetesConfig.{name}")
        if self.backoff_max < self.backoff_initial:
            raise ConfigurationError("KubernetesConfig.backoff_max must be >= backoff_initial")
        check_port(self.port, "KubernetesConfig.port")
        if not isinstance(self.dns, Mapping):
            raise ConfigurationError("KubernetesConfig.dns must be a mapping of dns strategy options")
        for name in ("derive_endpoints", "include_not_ready"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"KubernetesConfig.{name} must be a boolean")

    @classmethod
    def local(cls, **overrides: Any) -> KubernetesConfig:
        """Tests: short watches, fast retries."""
        return cls(**{"watch_timeout": 30.0, "request_timeout": 2.0, "backoff_initial": 0.05,
                      "backoff_max": 0.5, "polling_interval": 0.5, **overrides})

    @classmethod
    def lan(cls, **overrides: Any) -> KubernetesConfig:
        """A cluster: the defaults (5 minute watches, 10 s requests, retries up to 30 s apart)."""
        return cls(**overrides)

    def selector(self) -> str:
        """The label selector sent to the API server."""
        if self.label_selector is not None:
            return self.label_selector
        return f"kubernetes.io/service-name={self.service}"


def parse_label_selector(text: str) -> list[tuple[str, str, str | None]]:
    """``a=b,c!=d,e,!f`` -> [(key, op, value)] with op in ``=``, ``!=``, ``exists``, ``!exists``. Pure.

    Equality-based selectors only (set-based ``in (...)`` is rejected). Raises ConfigurationError.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("label selector is empty")
    terms: list[tuple[str, str, str | None]] = []
    for raw in text.split(","):
        term = raw.strip()
        if " in " in term or " notin " in term or "(" in term:
            raise ConfigurationError(f"set-based selector terms are not supported: {term!r}")
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key.strip(), "!=", value.strip()))
        elif "==" in term or "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            terms.append((key.strip(), "=", value.strip()))
        elif term.startswith("!"):
            terms.append((term[1:].strip(), "!exists", None))
        else:
            terms.append((term, "exists", None))
    for key, _, _ in terms:
        if not key or not re.fullmatch(r"([A-Za-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?", key):
            raise ConfigurationError(f"bad label key {key!r} in selector {text!r}")
    return terms


# -- pure: EndpointSlices -> candidates ---------------------------------------------------------------


def _slice_key(obj: Any) -> str:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("metadata"), Mapping):
        raise MalformedInput("object without metadata")
    meta = obj["metadata"]
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedInput("object without metadata.name")
    return f"{meta.get('namespace', '')}/{name}"


def candidates_from_slice(
    obj: Any, *, port_name: str = MEMBERSHIP_CHANNEL, channels: tuple[str, ...] = CHANNEL_ORDER,
    derive_endpoints: bool = True, include_not_ready: bool = False, source: str = "kubernetes",
) -> list[Candidate]:
    """One EndpointSlice object -> its candidates. Pure.

    Raises :class:`MalformedInput` when the slice has no port named ``port_name``, an unknown address
    type or a malformed endpoint list (the whole slice is skipped then; other slices still count).
    """
    key = _slice_key(obj)
    address_type = obj.get("addressType")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        raise MalformedInput(f"slice {key}: unknown addressType {address_type!r}")
    ports: dict[str, int] = {}
    for port in obj.get("ports") or []:
        if isinstance(port, Mapping) and isinstance(port.get("name"), str) and isinstance(port.get("port"), int):
            if port.get("protocol", "TCP") == "TCP" and 0 < port["port"] < 65536:
                ports[port["name"]] = port["port"]
    if port_name not in ports:
        raise MalformedInput(f"slice {key}: no TCP port named {port_name!r} (ports: {sorted(ports)})")
    membership_port = ports[port_name]
    endpoints_list = obj.get("endpoints") or []
    if not isinstance(endpoints_list, list):
        raise MalformedInput(f"slice {key}: endpoints is not a list")
    namespace = obj["metadata"].get("namespace")
    found: list[Candidate] = []
    for endpoint in endpoints_list:
        if not isinstance(endpoint, Mapping):
            raise MalformedInput(f"slice {key}: endpoint is not an object")
        conditions = endpoint.get("conditions") or {}
        if not isinstance(conditions, Mapping):
            raise MalformedInput(f"slice {key}: conditions is not an object")
        # The API: a nil condition is unknown; consumers should read ready/serving as true and
        # terminating as false.
        ready = conditions.get("ready") is not False
        terminating = conditions.get("terminating") is True
        if terminating or (not ready and not include_not_ready):
            continue
        addresses = endpoint.get("addresses")
        if not isinstance(addresses, list) or not addresses or not isinstance(addresses[0], str):
            raise MalformedInput(f"slice {key}: endpoint without addresses")
        address = addresses[0]  # "consumers must treat the addresses as fungible": the first is enough
        endpoints: dict[str, str] = {}
        for i, channel in enumerate(channels):
            channel_port = membership_port if channel == MEMBERSHIP_CHANNEL else ports.get(channel)
            if channel_port is None and derive_endpoints and membership_port + i <= 65535:
                channel_port = membership_port + i
            if channel_port is not None:
                endpoints[channel] = format_tcp_endpoint(address, channel_port)
        target_ref = endpoint.get("targetRef")
        target: Mapping[str, Any] = target_ref if isinstance(target_ref, Mapping) else {}
        meta = {"slice": key.split("/", 1)[1], "ready": str(ready).lower(),
                "serving": str(conditions.get("serving") is not False).lower()}
        for meta_key, value in (("pod", target.get("name")), ("namespace", namespace),
                                ("k8s_node", endpoint.get("nodeName")), ("zone", endpoint.get("zone")),
                                ("hostname", endpoint.get("hostname"))):
            if isinstance(value, str) and value:
                meta[meta_key] = value
        try:
            found.append(Candidate(
                seed=format_tcp_endpoint(address, membership_port),
                name=meta.get("pod") or meta.get("hostname") or address,
                endpoints=endpoints, meta=meta, source=source,
            ))
        except ConfigurationError as exc:
            raise MalformedInput(f"slice {key}: {exc}") from exc
    return found


def candidates_from_slices(slices: Mapping[str, Any], **options: Any) -> tuple[list[Candidate], list[str]]:
    """All slices -> candidates (sorted by seed, one per seed), plus a reason per skipped slice. Pure.

    ``options`` as for :func:`candidates_from_slice`.
    """
    by_seed: dict[str, Candidate] = {}
    problems: list[str] = []
    for key in sorted(slices):
        try:
            for cand in candidates_from_slice(slices[key], **options):
                by_seed.setdefault(cand.seed, cand)  # one pod may appear in two slices during a move
        except MalformedInput as exc:
            problems.append(str(exc))
    return [by_seed[s] for s in sorted(by_seed)], problems


class EndpointSliceCache:
    """The local copy of the watched EndpointSlices and the resourceVersion to resume from. Pure.

    Feed it the list answer (:meth:`replace`) and each watch event (:meth:`apply`).
    """

    def __init__(self) -> None:
        """An empty cache with no resourceVersion (the first step is a list)."""
        self.slices: dict[str, Any] = {}
        #: The resourceVersion to watch from; None: list first.
        self.resource_version: str | None = None

    def replace(self, answer: Any) -> None:
        """Replace the copy by an ``EndpointSliceList``. Raises MalformedInput (copy unchanged)."""
        if not isinstance(answer, Mapping) or not isinstance(answer.get("items", []), list):
            raise MalformedInput("list answer is not an EndpointSliceList")
        version = (answer.get("metadata") or {}).get("resourceVersion")
        if not isinstance(version, str) or not version:
            raise MalformedInput("list answer without metadata.resourceVersion")
        slices = {_slice_key(item): item for item in answer.get("items") or []}
        self.slices = slices
        self.resource_version = version

    def apply(self, event: Any) -> str:
        """Apply one watch event; return ``changed``, ``bookmark`` or ``gone`` (410: list again).

        Raises MalformedInput for an event we cannot use (unknown type, ERROR other than 410, no
        object); the caller re-watches from the last good resourceVersion.
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("object"), Mapping):
            raise MalformedInput("watch event without object")
        kind, obj = event.get("type"), event["object"]
        if kind == "ERROR":
            if obj.get("code") == 410:
                self.resource_version = None
                return "gone"
            raise MalformedInput(f"watch ERROR event: {obj.get('code')} {obj.get('message', '')!s:.200}",
                                 category="api_errors")
        version = (obj.get("metadata") or {}).get("resourceVersion") if isinstance(obj.get("metadata"), Mapping) else None
        if not isinstance(version, str) or not version:
            raise MalformedInput(f"{kind} event without metadata.resourceVersion")
        if kind == "BOOKMARK":
            self.resource_version = version
            return "bookmark"
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            raise MalformedInput(f"unknown watch event type {kind!r}")
        key = _slice_key(obj)
        if kind == "DELETED":
            self.slices.pop(key, None)
        else:
            self.slices[key] = obj
        self.resource_version = version
        return "changed"


class TokenSource:
    """The service-account bearer token, re-read from its file when it may have rotated.

    ``get()`` reads the file off the loop when never read, older than ``reload_interval``, or after
    :meth:`invalidate` (a 401). A missing file gives None (no Authorization header: ``kubectl proxy``).
    """

    def __init__(self, path: str, reload_interval: float, clock: Clock) -> None:
        """``path``: the token file; ``reload_interval``: seconds; ``clock``: the plugin's clock."""
        self.path = path
        self.reload_interval = reload_interval
        self._clock = clock
        self._token: str | None = None
        self._loaded_at: float | None = None
        #: How many times the file was read.
        self.reads = 0

    def invalidate(self) -> None:
        """Force a re-read on the next :meth:`get` (the server said 401: the token may have rotated)."""
        self._loaded_at = None

    async def get(self) -> str | None:
        """The current token (None when the file is missing or empty)."""
        now = self._clock.now()
        if self._loaded_at is None or now - self._loaded_at >= self.reload_interval:
            self._token = await asyncio.get_running_loop().run_in_executor(None, self._read)
            self._loaded_at = now
            self.reads += 1
        return self._token

    def _read(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError:
            return None


class JsonLines:
    """Splits a watch stream's bytes into its newline-terminated records (one JSON event each). Pure.

    Records may arrive split across reads, several in one read, or without the last newline; blank
    records are skipped. A record longer than ``max_line`` bytes raises :class:`MalformedInput`.
    """

    def __init__(self, max_line: int = MAX_ANSWER_BYTES) -> None:
        """``max_line``: the longest record accepted, in bytes."""
        self.max_line = max_line
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the records it completed (without their newline)."""
        self._buffer += data
        *records, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > self.max_line or any(len(r) > self.max_line for r in records):
            raise MalformedInput(f"watch event longer than {self.max_line} bytes")
        return [r for r in records if r.strip()]

    def finish(self) -> list[bytes]:
        """The stream ended: the last record if it had no newline."""
        rest, self._buffer = self._buffer, b""
        return [rest] if rest.strip() else []


class _Unauthorized(Exception):
    pass


class _ApiError(Exception):
    """The API server answered with an unexpected HTTP status (5xx, 403, ...)."""


class _Gone(Exception):
    pass


def _in_cluster_api_server() -> str:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigurationError(
            "KubernetesConfig.api_server is not set and KUBERNETES_SERVICE_HOST is missing (not in a pod?)")
    return f"https://{'[' + host + ']' if ':' in host else host}:{port}"


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


class KubernetesPlugin(DiscoveryPlugin):
    """Candidates from EndpointSlices (list + watch) or from a headless Service's DNS records.

    Counters (endpointslices mode): lookups, failures, malformed, ``lists``, ``watches``, ``events``,
    ``bookmarks``, ``relists`` (410 Gone), ``unauthorized`` (401), ``api_errors``, ``slices``.
    In dns mode the ``dns`` strategy's counters.
    """

    name: ClassVar[str] = "kubernetes"
    config_type: ClassVar[type[KubernetesConfig]] = KubernetesConfig
    config: KubernetesConfig

    def __init__(self, config: KubernetesConfig | None = None, *, rng: random.Random | None = None, **kw: Any) -> None:
        """Create a stopped plugin. ``rng`` jitters the retry backoff (seed it in tests).

        Raises :class:`~fabric.discovery.base.MissingDependencyError` when ``httpx`` (endpointslices mode)
        or ``dnspython`` (dns mode) is not installed.
        """
        super().__init__(config, **kw)
        if self.config.mode == "endpointslices":
            require_backend("httpx", "httpx", self.name)
        else:
            require_backend("dns.asyncresolver", "dnspython", self.name)
        self.counters.update({k: 0 for k in (
            "lists", "watches", "events", "bookmarks", "relists", "unauthorized", "api_errors", "slices")})
        self._rng = rng if rng is not None else random.Random()
        self.cache = EndpointSliceCache()
        self._dns: DnsPlugin | None = None
        self._view: list[Candidate] = []
        self._answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watching = False
        self._http: httpx.AsyncClient | None = None
        self._base = ""
        self._namespace = ""
        self._tokens: TokenSource | None = None
        self._pod_ip: str | None = None

    @property
    def namespace(self) -> str:
        """The namespace in use (after start)."""
        return self._namespace

    async def _start(self, local: LocalNode) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        namespace = cfg.namespace
        needs_namespace = not (cfg.mode == "dns" and "query" in cfg.dns)  # a given DNS query names it already
        if namespace is None and needs_namespace:
            try:
                namespace = await loop.run_in_executor(None, _read_text, cfg.namespace_file)
            except OSError as exc:
                raise ConfigurationError(
                    f"kubernetes: namespace not set and {cfg.namespace_file} unreadable ({exc})") from exc
        self._namespace = namespace or ""
        self._pod_ip = cfg.pod_ip if cfg.pod_ip is not None else os.environ.get("POD_IP") or None
        if cfg.mode == "dns":
            options = {"query": f"{cfg.service}.{namespace}.svc.{cfg.cluster_domain}", "port": cfg.port,
                       "channels": cfg.channels, "derive_endpoints": cfg.derive_endpoints, **cfg.dns}
            self._dns = DnsPlugin(config_from_mapping(DnsConfig, options), clock=self.clock, logger=self.log)
            await self._dns.start(local)
            return
        self._base = cfg.api_server or _in_cluster_api_server()
        verify: ssl.SSLContext | bool = False  # http:// (kubectl proxy): no TLS at all
        if self._base.startswith("https://"):
            try:  # reading the CA bundle is file I/O: off the loop
                verify = await loop.run_in_executor(None, _ssl_context, cfg.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(f"kubernetes: CA bundle {cfg.ca_file} unusable ({exc})") from exc
        import httpx

        self._http = httpx.AsyncClient(
            verify=verify, timeout=cfg.request_timeout, trust_env=False, follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "foundation-fabric"},
        )
        self._tokens = TokenSource(cfg.token_file, cfg.token_reload_interval, self.clock)
        self._task = asyncio.create_task(self._run(), name="kubernetes-endpointslices")

    async def _lookup(self) -> list[Candidate]:
        if self._dns is not None:
            found = await self._dns.lookup()
            for key, value in self._dns.stats().items():
                if key != "lookups":
                    self.counters[key] = value
            self.last_success = self._dns.last_success
            return [c for c in found if not self._is_own_address(c)]
        if not self._answered.is_set():
            # The first list is on its way (start() returns at once): wait for it, briefly (multi bounds
            # a child's lookup too; an API server that is down must not make it time out).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.config.request_timeout, _FIRST_ANSWER_WAIT)):
                    await self._answered.wait()
        if self._watching:
            self._mark_success()  # an open watch is a live answer: nothing changed since the last event
        return list(self._view)

    async def _stop(self) -> None:
        if self._dns is not None:
            await self._dns.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=self.config.request_timeout)
            self._task = None
        client, self._http = self._http, None
        if client is not None:
            with contextlib.suppress(Exception):  # stop never raises; the sockets close either way
                async with asyncio.timeout(self.config.request_timeout):
                    await client.aclose()
        self._view = []

    def default_poll_interval(self) -> float:
        """The configured ``polling_interval``."""
        return self.config.polling_interval

    # -- the list/watch loop ---------------------------------------------------------------------------

    def _url(self, **params: str) -> str:
        path = _API_PATH.format(namespace=urllib.parse.quote(self._namespace))
        return f"{self._base}{path}?{urllib.parse.urlencode({'labelSelector': self.config.selector(), **params})}"

    async def _headers(self) -> dict[str, str]:
        assert self._tokens is not None
        token = await self._tokens.get()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _is_own_address(self, candidate: Candidate) -> bool:
        if self._pod_ip is None:
            return False
        try:
            return parse_tcp_endpoint(candidate.seed)[0] == self._pod_ip
        except ConfigurationError:
            return False

    def _check_status(self, status: int, body: bytes, what: str) -> None:
        if status == 401:
            assert self._tokens is not None
            self._tokens.invalidate()  # a rotated token: read the file again before the retry
            self._count("unauthorized")
            raise _Unauthorized(f"{what}: 401 Unauthorized (token expired or revoked?)")
        if status == 410:
            raise _Gone(what)
        if status != 200:
            raise _ApiError(f"{what}: HTTP {status}: {body[:200].decode('utf-8', 'replace')}")

    def _update_view(self) -> None:
        cfg = self.config
        found, problems = candidates_from_slices(
            self.cache.slices, port_name=cfg.port_name, channels=cfg.channels,
            derive_endpoints=cfg.derive_endpoints, include_not_ready=cfg.include_not_ready, source=self.name)
        for problem in problems:
            self._count("malformed")
            self.rate_limited.warning(f"slice:{problem[:60]}", "kubernetes: %s; slice skipped", problem)
        self.counters["slices"] = len(self.cache.slices)
        found = [c for c in found if not self._is_self(c) and not self._is_own_address(c)]
        if found != self._view:
            self._view = found
            self._notify_changed()

    async def _read_bounded(self, response: httpx.Response, limit: int = MAX_ANSWER_BYTES) -> bytes:
        parts: list[bytes] = []
        total = 0
        async for data in response.aiter_bytes():
            total += len(data)
            if total > limit:
                raise MalformedInput(f"answer larger than {limit} bytes")
            parts.append(data)
        return b"".join(parts)

    async def _open(self, url: str, read_timeout: float) -> httpx.Response:
        """Send a GET and return the response with its body unread (the caller closes it).

        The status line and headers must arrive within ``request_timeout``; each later read of the body
        may wait ``read_timeout`` (a watch stream rightly stays silent for long).
        """
        import httpx

        assert self._http is not None
        cfg = self.config
        request = self._http.build_request(
            "GET", url, headers=await self._headers(),
            timeout=httpx.Timeout(cfg.request_timeout, read=read_timeout),
        )
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow stop()'s cancellation.
        async with asyncio.timeout(cfg.request_timeout):
            return await self._http.send(request, stream=True)

    async def _list(self) -> None:
        self._count("lists")
        async with asyncio.timeout(self.config.request_timeout):  # the whole answer, not each read
            response = await self._open(self._url(), self.config.request_timeout)
            try:
                body = await self._read_bounded(response)
            finally:
                await response.aclose()
        self._check_status(response.status_code, body, "list")
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise MalformedInput(f"list answer is not JSON: {exc}") from exc
        self.cache.replace(answer)
        self._mark_success()
        self._update_view()
        self._answered.set()

    async def _watch(self, backoff: Backoff) -> int:
        """One watch stream; returns the number of events it carried (raises on failure / 410)."""
        cfg = self.config
        assert self.cache.resource_version is not None
        self._count("watches")
        url = self._url(watch="1", resourceVersion=self.cache.resource_version, allowWatchBookmarks="true",
                        timeoutSeconds=str(max(1, round(cfg.watch_timeout))))
        response = await self._open(url, cfg.watch_timeout + cfg.request_timeout)
        events = 0
        try:
            if response.status_code != 200:
                async with asyncio.timeout(cfg.request_timeout):
                    body = await self._read_bounded(response, 64 * 1024)
                self._check_status(response.status_code, body, "watch")
            self._watching = True
            self._mark_success()
            records = JsonLines()
            async for data in response.aiter_bytes():
                for line in records.feed(data):
                    self._apply_event(line, backoff)
                    events += 1
            for line in records.finish():
                self._apply_event(line, backoff)
                events += 1
        finally:
            self._watching = False
            await response.aclose()
        return events

    def _apply_event(self, line: bytes, backoff: Backoff) -> None:
        """One watch event: update the copy and the view (raises MalformedInput, _Gone)."""
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise MalformedInput(f"watch event is not JSON: {line[:80]!r}") from exc
        outcome = self.cache.apply(event)
        self._mark_success()
        backoff.reset()
        if outcome == "gone":
            raise _Gone("watch ERROR event 410")
        if outcome == "bookmark":
            self._count("bookmarks")
        else:
            self._count("events")
            self._update_view()

    async def _run(self) -> None:
        import httpx

        cfg = self.config
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max, rng=self._rng)
        while True:
            try:
                if self.cache.resource_version is None:
                    await self._list()  # (no backoff reset: a server that 410s every watch must not spin us)
                if await self._watch(backoff):
                    continue  # the server ended the watch (timeoutSeconds): resume from the resourceVersion
                # An empty watch that ended: fine once, but a server that ends every watch at once
                # must not make us spin, so it waits like a failure (reset by the next event).
            except asyncio.CancelledError:
                raise
            except _Gone as exc:
                # 410: our resourceVersion was compacted away. List again soon; the candidates stay until
                # the new list replaces them. Back-to-back 410s (no event in between) back off further.
                self._count("relists")
                self.cache.resource_version = None
                self.log.info("kubernetes: %s: 410 Gone, listing again", exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            except MalformedInput as exc:
                self._count(exc.category if exc.category == "api_errors" else "malformed")
                self._count("failures")
                self.rate_limited.warning(f"malformed:{exc.category}", "kubernetes: bad answer (%s); keeping %d "
                                          "candidate(s), retrying", exc, len(self._view))
            # httpx.HTTPError: refused/reset connections, TLS failures, read timeouts, broken framing.
            except (OSError, TimeoutError, httpx.HTTPError, _ApiError, _Unauthorized, ValueError, EOFError) as exc:
                self._count("failures")
                self.rate_limited.warning(
                    f"failed:{type(exc).__name__}", "kubernetes: %s (%s); keeping %d candidate(s), retrying",
                    str(exc)[:200] or "timeout", type(exc).__name__, len(self._view))
            except Exception:  # a bug must not end discovery for good: log it whole, retry after the backoff
                self._count("failures")
                self.log.exception("kubernetes: unexpected error in the list/watch loop; retrying")
            await asyncio.sleep(backoff.next_delay())
