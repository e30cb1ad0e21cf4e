"""``Config``: the 1.x configuration service (get/update/validate/subscribe) for one app namespace.

Theory of operation. The configuration is a nested dict built from the 1.x defaults (``Config.new``) deep-
merged with the overrides given to ``initialize``, and validated. ``update(path, value)`` runs the 1.x checks
in order -- path security (1000), value security (1005), path in ``updatable_paths()`` (1401), then a full
validation of the would-be config (1001-1004) -- and only then swaps the new dict in. After a successful
update, with the service lock still held so observers see updates in one order: subscribers receive
``("config_notification", ("config_updated", path, value))``, a ``config_updated`` event is stored and the
``("foundation", "config_updates")`` counter is emitted. Readers get immutable :class:`ConfigData` views or
deep copies, so nobody can mutate the live config behind the lock.
"""

from __future__ import annotations

import copy
import queue
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from foundation._errors import Error, FoundationError, raise_error, type_error
from foundation._graceful import ConfigFallback
from foundation._ports import EventSink, MetricsSink
from foundation._service import AppEnv, Service
from foundation._utils import Utils

__all__ = ["DEFAULTS", "UPDATABLE_PATHS", "ConfigData", "ConfigServer", "Mailbox"]

Path = tuple[str, ...]

DEFAULTS: dict[str, Any] = {
    "ai": {
        "provider": "mock",
        "api_key": None,
        "model": "gpt-4",
        "analysis": {"max_file_size": 1_000_000, "timeout": 30_000, "cache_ttl": 3600},
        "planning": {"default_strategy": "balanced", "performance_target": 0.01, "sampling_rate": 1.0},
    },
    "capture": {
        "ring_buffer": {"size": 1024, "max_events": 1000, "overflow_strategy": "drop_oldest",
                        "num_buffers": "schedulers"},
        "processing": {"batch_size": 100, "flush_interval": 50, "max_queue_size": 1000},
        "vm_tracing": {"enable_spawn_trace": True, "enable_exit_trace": True, "enable_message_trace": False,
                       "trace_children": True},
    },
    "storage": {
        "hot": {"max_events": 100_000, "max_age_seconds": 3600, "prune_interval": 60_000},
        "warm": {"enable": False, "path": "./foundation_data", "max_size_mb": 100, "compression": "zstd"},
        "cold": {"enable": False},
    },
    "interface": {"query_timeout": 10_000, "max_results": 1000, "enable_streaming": True},
    "dev": {"debug_mode": False, "verbose_logging": False, "performance_monitoring": True},
    "infrastructure": {
        "rate_limiting": {
            "default_rules": {
                "api_calls": {"scale": 60_000, "limit": 100},
                "db_queries": {"scale": 60_000, "limit": 500},
                "file_operations": {"scale": 1_000, "limit": 10},
            },
            "enabled": True,
            "cleanup_interval": 300_000,
        },
        "circuit_breaker": {
            "default_config": {"failure_threshold": 5, "recovery_time": 30_000, "call_timeout": 5_000},
            "enabled": True,
        },
        "connection_pool": {"default_config": {"size": 10, "max_overflow": 5, "strategy": "lifo"}, "enabled": True},
    },
}

# Exactly the 13 paths of 1.x ConfigLogic.updatable_paths/0, in the same order.
UPDATABLE_PATHS: tuple[Path, ...] = (
    ("ai", "planning", "sampling_rate"),
    ("ai", "planning", "performance_target"),
    ("capture", "processing", "batch_size"),
    ("capture", "processing", "flush_interval"),
    ("interface", "query_timeout"),
    ("interface", "max_results"),
    ("dev", "debug_mode"),
    ("dev", "verbose_logging"),
    ("dev", "performance_monitoring"),
    ("infrastructure", "rate_limiting", "enabled"),
    ("infrastructure", "circuit_breaker", "enabled"),
    ("infrastructure", "connection_pool", "enabled"),
    ("infrastructure", "rate_limiting", "cleanup_interval"),
)
_UPDATABLE = frozenset(UPDATABLE_PATHS)
# safe_update refuses these outright (1.x Foundation.Config.safe_update/2).
_SAFE_UPDATE_FORBIDDEN: tuple[Path, ...] = (("ai", "api_key"), ("storage", "encryption_key"), ("security",),
                                            ("system", "node_name"))

_MAX_PATH_LENGTH = 50
_MAX_VALUE_DEPTH = 20
_MAX_VALUE_BYTES = 1_000_000
# 1.x rejected module atoms (Elixir.System, File, Code, ...) and injection strings; "__" also covers Python
# dunders (__class__, __globals__, ...) that could reach interpreter internals in a careless consumer.
_FORBIDDEN_FRAGMENTS = ("Elixir.System", "Elixir.File", "Elixir.Code", "Elixir.Process", "Elixir.Node",
                        "Elixir.Kernel", "__", "../", "etc/passwd", "DROP TABLE", "<script>", "eval_string")


class Mailbox(Protocol):
    """Where config notifications go: anything with ``put_nowait`` (``queue.Queue`` is the usual one)."""

    def put_nowait(self, item: Any) -> None:
        """Deliver one notification without blocking."""
        ...


class ConfigData(Mapping[str, Any]):
    """An immutable snapshot of a configuration (1.x ``%Foundation.Types.Config{}``).

    Reads like nested dicts: ``cfg["ai"]["provider"]``; nested sections are :class:`ConfigData` views.
    :meth:`to_dict` returns an independent deep copy.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data: dict[str, Any] = dict(data)

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return ConfigData(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ConfigData({self._data!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConfigData):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain nested dicts."""
        return copy.deepcopy(self._data)


# -- pure logic -------------------------------------------------------------------------------------


def _config_error(code: int, error_type: str, message: str, severity: str = "medium",
                  context: Mapping[str, Any] | None = None, subcategory: str = "validation") -> Error:
    return Error.build(code, error_type, message, category="config", subcategory=subcategory,
                       severity=severity, context=context)  # type: ignore[arg-type]


def normalize_path(path: Any) -> Path:
    """A path as a tuple of components. Raises :class:`FoundationTypeError` for a non-list/tuple."""
    if not isinstance(path, list | tuple):
        raise type_error("config path must be a list or tuple of strings", path=repr(path))
    return tuple(path)


def check_path_security(path: Path) -> None:
    """Raise ``security_violation`` (1000) for a dangerous path (too long, non-str, injection fragments)."""
    reason: str | None = None
    if len(path) > _MAX_PATH_LENGTH:
        reason = f"path longer than {_MAX_PATH_LENGTH} components"
    else:
        for comp in path:
            if not isinstance(comp, str):
                reason = f"path component {comp!r} is not a string"
                break
            if any(frag in comp for frag in _FORBIDDEN_FRAGMENTS):
                reason = f"path component {comp!r} is not allowed"
                break
    if reason is not None:
        raise_error(Error.build(1000, "security_violation", f"Unsafe configuration path: {reason}",
                                category="security", subcategory="path_validation", severity="high",
                                context={"path_length": len(path), "reason": reason}))


def _value_problem(value: Any, depth: int) -> str | None:
    if depth > _MAX_VALUE_DEPTH:
        return f"value nested deeper than {_MAX_VALUE_DEPTH}"
    if value is None or isinstance(value, bool | int | float):
        return None
    if isinstance(value, str | bytes):
        return "value larger than 1 MB" if len(value) > _MAX_VALUE_BYTES else None
    if isinstance(value, list | tuple):
        for item in value:
            problem = _value_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "mapping keys must be strings"
            problem = _value_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return f"values of type {type(value).__name__} are not allowed (plain data only)"


def check_value_security(value: Any) -> None:
    """Raise ``security_violation`` (1005) unless ``value`` is plain data (no callables, <= 1 MB, depth <= 20)."""
    problem = _value_problem(value, 0)
    if problem is not None:
        raise_error(Error.build(1005, "security_violation", f"Unsafe configuration value: {problem}",
                                category="security", subcategory="value_validation", severity="high",
                                context={"reason": problem}))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pos_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _section(cfg: Mapping[str, Any], key: str, fields: Sequence[str], message: str) -> Mapping[str, Any]:
    sec = cfg.get(key) if isinstance(cfg, Mapping) else None
    if not isinstance(sec, Mapping) or any(f not in sec for f in fields):
        raise_error(_config_error(1001, "validation_failed", message))
    return sec


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise_error(_config_error(1001, "validation_failed", message))


def validate_data(cfg: Mapping[str, Any]) -> None:
    """Validate a whole configuration with the 1.x rules and order (ConfigValidator.validate/1).

    Raises:
        ValidationFailed: code 1001 ``validation_failed`` (malformed section), 1002 ``invalid_config_value``
            (bad enum), 1003 ``constraint_violation`` (performance_target < 0), 1004 ``range_error``
            (sampling_rate outside 0..1).
    """
    ai = _section(cfg, "ai", ("provider", "analysis", "planning"), "Invalid AI configuration")
    providers = ["mock", "openai", "anthropic", "gemini"]
    if ai["provider"] not in providers:
        raise_error(_config_error(1002, "invalid_config_value", "Invalid AI provider",
                                  context={"provider": ai["provider"], "valid_providers": providers}))
    an = _section(ai, "analysis", ("max_file_size", "timeout", "cache_ttl"), "Invalid AI analysis configuration")
    _require(all(_is_pos_int(an[k]) for k in ("max_file_size", "timeout", "cache_ttl")),
             "Invalid AI analysis configuration")
    pl = _section(ai, "planning", ("performance_target", "sampling_rate", "default_strategy"),
                  "Invalid AI planning configuration")
    target, rate = pl["performance_target"], pl["sampling_rate"]
    if not _is_number(target) or target < 0:
        raise_error(_config_error(1003, "constraint_violation", "Performance target must be a non-negative number",
                                  "high"))
    if not _is_number(rate) or rate < 0 or rate > 1:
        raise_error(_config_error(1004, "range_error", "Sampling rate must be between 0 and 1", "high"))
    if pl["default_strategy"] not in ("fast", "balanced", "thorough"):
        raise_error(_config_error(1002, "invalid_config_value", "Invalid planning strategy"))

    cap = _section(cfg, "capture", ("ring_buffer", "processing", "vm_tracing"), "Invalid capture configuration")
    rb = _section(cap, "ring_buffer", ("size", "max_events", "overflow_strategy"), "Invalid ring buffer configuration")
    _require(_is_pos_int(rb["size"]) and _is_pos_int(rb["max_events"]), "Invalid ring buffer configuration")
    if rb["overflow_strategy"] not in ("drop_oldest", "drop_newest", "block"):
        raise_error(_config_error(1002, "invalid_config_value", "Invalid overflow strategy"))
    pr = _section(cap, "processing", ("batch_size", "flush_interval", "max_queue_size"),
                  "Invalid processing configuration")
    _require(all(_is_pos_int(pr[k]) for k in ("batch_size", "flush_interval", "max_queue_size")),
             "Invalid processing configuration")
    vt_keys = ("enable_spawn_trace", "enable_exit_trace", "enable_message_trace", "trace_children")
    vt = _section(cap, "vm_tracing", vt_keys, "Invalid VM tracing configuration")
    _require(all(isinstance(vt[k], bool) for k in vt_keys), "Invalid VM tracing configuration")

    st = _section(cfg, "storage", ("hot", "warm", "cold"), "Invalid storage configuration")
    hot = _section(st, "hot", ("max_events", "max_age_seconds", "prune_interval"), "Invalid hot storage configuration")
    _require(all(_is_pos_int(hot[k]) for k in ("max_events", "max_age_seconds", "prune_interval")),
             "Invalid hot storage configuration")
    warm = _section(st, "warm", ("enable",), "Invalid warm storage configuration")
    if warm["enable"] is True:
        _require(isinstance(warm.get("path"), str) and _is_pos_int(warm.get("max_size_mb")),
                 "Invalid warm storage configuration")
        if warm.get("compression") not in ("none", "gzip", "zstd"):
            raise_error(_config_error(1002, "invalid_config_value", "Invalid compression type"))
    else:
        _require(warm["enable"] is False, "Invalid warm storage configuration")
    cold = _section(st, "cold", ("enable",), "Invalid cold storage configuration")
    _require(cold["enable"] is False, "Invalid cold storage configuration")

    it = _section(cfg, "interface", ("query_timeout", "max_results", "enable_streaming"),
                  "Invalid interface configuration")
    _require(_is_pos_int(it["query_timeout"]) and _is_pos_int(it["max_results"])
             and isinstance(it["enable_streaming"], bool), "Invalid interface configuration")
    dev_keys = ("debug_mode", "verbose_logging", "performance_monitoring")
    dev = _section(cfg, "dev", dev_keys, "Invalid development configuration")
    _require(all(isinstance(dev[k], bool) for k in dev_keys), "Invalid development configuration")

    inf = _section(cfg, "infrastructure", ("rate_limiting", "circuit_breaker", "connection_pool"),
                   "Invalid infrastructure configuration")
    rl = _section(inf, "rate_limiting", ("default_rules", "enabled", "cleanup_interval"),
                  "Invalid rate limiting configuration")
    _require(isinstance(rl["default_rules"], Mapping) and isinstance(rl["enabled"], bool)
             and _is_pos_int(rl["cleanup_interval"]), "Invalid rate limiting configuration")
    for name, rule in rl["default_rules"].items():
        _require(isinstance(name, str) and isinstance(rule, Mapping) and _is_pos_int(rule.get("scale"))
                 and _is_pos_int(rule.get("limit")), f"Invalid rate limiting rule: {name!r}")
    cb = _section(inf, "circuit_breaker", ("default_config", "enabled"), "Invalid circuit breaker configuration")
    _require(isinstance(cb["enabled"], bool), "Invalid circuit breaker configuration")
    cbd = _section(cb, "default_config", ("failure_threshold", "recovery_time", "call_timeout"),
                   "Invalid circuit breaker default configuration")
    _require(all(_is_pos_int(cbd[k]) for k in ("failure_threshold", "recovery_time", "call_timeout")),
             "Invalid circuit breaker default configuration")
    cp = _section(inf, "connection_pool", ("default_config", "enabled"), "Invalid connection pool configuration")
    _require(isinstance(cp["enabled"], bool), "Invalid connection pool configuration")
    cpd = _section(cp, "default_config", ("size", "max_overflow", "strategy"),
                   "Invalid connection pool default configuration")
    _require(_is_pos_int(cpd["size"]) and _is_int(cpd["max_overflow"]) and cpd["max_overflow"] >= 0
             and cpd["strategy"] in ("lifo", "fifo"), "Invalid connection pool default configuration")


def new_config(overrides: Mapping[str, Any] | None = None) -> ConfigData:
    """The 1.x defaults deep-merged with ``overrides`` (not validated; 1.x ``Config.new/1``)."""
    data = copy.deepcopy(DEFAULTS)
    if overrides:
        data = Utils.deep_merge(data, copy.deepcopy(dict(overrides)))
    return ConfigData(data)


def diff_configs(old: Mapping[str, Any], new: Mapping[str, Any], _prefix: Path = ()) -> dict[str, Any]:
    """Nested ``{key: {"old", "new", "path"}}`` for every leaf that differs (1.x ``diff_configs/2``)."""
    out: dict[str, Any] = {}
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            sub = diff_configs(a, b, (*_prefix, key))
            if sub:
                out[key] = sub
        elif a != b:
            out[key] = {"old": a, "new": b, "path": [*_prefix, key]}
    return out


# -- the service ------------------------------------------------------------------------------------


class ConfigServer(Service):
    """The configuration service of one app (public as ``foundation.Config`` for ``"production"``).

    All methods are thread-safe and may be called from any thread. Calls on a stopped service raise
    :class:`ServiceUnavailable` (code 5000), except the pure helpers :meth:`new`, :meth:`validate`,
    :meth:`updatable_paths` and :meth:`get_with_default`.
    """

    service_name = "config_server"
    unavailable_code = 5000
    forbidden_code = 5002

    def __init__(self, env: AppEnv, *, events: EventSink | None, telemetry: MetricsSink) -> None:
        """``events`` receives the ``config_updated``/``config_reset`` audit events (None: not recorded);
        ``telemetry`` the ``config_updates``/``config_resets`` counters."""
        super().__init__(env)
        self._events = events
        self._telemetry = telemetry
        self._overrides: dict[str, Any] = {}
        self._data: dict[str, Any] = copy.deepcopy(DEFAULTS)
        self._subscribers: dict[int, Any] = {}
        self._updates_count = 0
        self._last_update: int | None = None
        #: 1.x ``Foundation.Config.GracefulDegradation``: cached reads while the service is down.
        self.GracefulDegradation = ConfigFallback(self, env.clock)  # noqa: N815 - 1.x module name

    # -- lifecycle --------------------------------------------------------------------------------

    def _configure(self, overrides: Mapping[str, Any] | None) -> None:
        """Set the ``initialize`` overrides used by the next start (deep-merged over the defaults)."""
        data = new_config(overrides).to_dict()
        validate_data(data)
        self._overrides = dict(overrides or {})

    def _on_start(self) -> None:
        self._data = new_config(self._overrides).to_dict()
        self._updates_count = 0
        self._last_update = None

    def _on_stop(self) -> None:
        self._subscribers.clear()

    def initialize(self, overrides: Mapping[str, Any] | None = None) -> None:
        """Start the service with ``overrides`` deep-merged over the defaults; a no-op (overrides ignored)
        if it is already running.

        Raises:
            ValidationFailed: the resulting configuration is invalid (the service stays stopped).
        """
        with self._lock:
            if self._running:
                return
            self._configure(overrides)
            self._start()

    def status(self) -> dict[str, Any]:
        """``{"status": "running", "uptime_ms", "updates_count", "last_update", "subscribers_count"}``."""
        with self._lock:
            self._check_running()
            return {"status": "running", "uptime_ms": self._uptime_ms(), "updates_count": self._updates_count,
                    "last_update": self._last_update, "subscribers_count": len(self._live_subscribers())}

    # -- reads ------------------------------------------------------------------------------------

    def get(self, path: Sequence[str] | None = None) -> Any:
        """The whole config (:class:`ConfigData`) when ``path`` is None or empty, else the value at ``path``
        (mappings are returned as independent dict copies). A ``None`` value counts as found.

        Raises:
            FoundationTypeError: ``path`` is not a list/tuple.
            SecurityViolation: 1000, dangerous path.
            ConfigPathNotFound: a key is missing or the path walks into a non-mapping.
            ServiceUnavailable: 5000.
        """
        if path is None:
            p: Path = ()
        else:
            p = normalize_path(path)
            check_path_security(p)
        with self._lock:
            self._check_running()
            current: Any = self._data
            for key in p:
                if not isinstance(current, dict) or key not in current:
                    raise_error(_config_error(None, "config_path_not_found",  # type: ignore[arg-type]
                                              f"Configuration path not found: {list(p)}", "medium",
                                              {"path": list(p)}, "access"))
                current = current[key]
            if not p:
                return ConfigData(copy.deepcopy(current))
            return copy.deepcopy(current) if isinstance(current, dict | list) else current

    def get_with_default(self, path: Sequence[str], default: Any) -> Any:
        """The value at ``path``, or ``default`` on any :class:`FoundationError` (never raises)."""
        try:
            return self.get(path)
        except FoundationError:
            return default

    @staticmethod
    def updatable_paths() -> list[Path]:
        """The 13 paths that ``update`` accepts, in 1.x order."""
        return list(UPDATABLE_PATHS)

    @staticmethod
    def new(overrides: Mapping[str, Any] | None = None) -> ConfigData:
        """The defaults deep-merged with ``overrides`` (not validated)."""
        return new_config(overrides)

    @staticmethod
    def validate(config: ConfigData) -> None:
        """Validate a :class:`ConfigData` with the 1.x rules.

        Raises:
            FoundationTypeError: ``config`` is not a :class:`ConfigData` (1.x FunctionClauseError).
            ValidationFailed: 1001-1004, see :func:`validate_data`.
        """
        if not isinstance(config, ConfigData):
            raise type_error("validate expects a ConfigData (use Config.new() or Config.get())")
        validate_data(config)

    @staticmethod
    def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        """See :func:`diff_configs`."""
        return diff_configs(old, new)

    # -- writes -----------------------------------------------------------------------------------

    def update(self, path: Sequence[str], value: Any) -> None:
        """Set ``value`` at an updatable ``path``, then notify, store a ``config_updated`` event and emit
        ``("foundation", "config_updates")``.

        Raises:
            FoundationTypeError: ``path`` is not a list/tuple.
            SecurityViolation: 1000 (path) or 1005 (value).
            ConfigUpdateForbidden: 1401, ``context`` has ``path`` and ``allowed_paths``.
            ValidationFailed: 1001-1004; the config is unchanged.
            ServiceUnavailable: 5000.
        """
        p = normalize_path(path)
        check_path_security(p)
        check_value_security(value)
        if p not in _UPDATABLE:
            raise_error(_config_error(1401, "config_update_forbidden", f"Configuration path {list(p)} cannot be "
                                      "updated at runtime", "medium",
                                      {"path": list(p), "allowed_paths": [list(x) for x in UPDATABLE_PATHS]},
                                      "runtime"))
        value = copy.deepcopy(value)
        with self._lock:
            self._check_running()
            new_data = Utils.put_nested(self._data, p, value)
            validate_data(new_data)
            previous = Utils.get_nested(self._data, p)
            self._data = new_data
            self._updates_count += 1
            now = self._env.clock.monotonic_ms()
            self._last_update = now
            self._notify(("config_updated", p, copy.deepcopy(value)))
            self._record("config_updated", {"path": list(p), "new_value": value, "previous_value": previous,
                                            "timestamp": now}, ("foundation", "config_updates"),
                         {"path": ".".join(p)})

    def safe_update(self, path: Any, value: Any) -> None:
        """``update`` behind the 1.x ``safe_update`` guard.

        Raises:
            FoundationError: ``invalid_path`` (9999) when ``path`` is not a list/tuple.
            ConfigUpdateForbidden: 1401 for ``ai.api_key``, ``storage.encryption_key``, ``security``,
                ``system.node_name``.
            plus everything :meth:`update` raises.
        """
        if not isinstance(path, list | tuple):
            raise_error(Error.new("invalid_path", "Configuration path must be a list", context={"path": repr(path)}))
        p = tuple(path)
        if p in _SAFE_UPDATE_FORBIDDEN:
            raise_error(Error.new("config_update_forbidden", f"Updating {list(p)} is not allowed",
                                  context={"path": list(p)}))
        self.update(p, value)

    def reset(self) -> None:
        """Back to the 1.x defaults (not the ``initialize`` overrides, as in 1.x); notifies
        ``("config_reset", ConfigData)``, stores ``config_reset`` and emits ``("foundation", "config_resets")``.

        Raises:
            ServiceUnavailable: 5000.
        """
        with self._lock:
            self._check_running()
            self._data = copy.deepcopy(DEFAULTS)
            snapshot = ConfigData(copy.deepcopy(self._data))
            self._notify(("config_reset", snapshot))
            self._record("config_reset", {"timestamp": self._env.clock.monotonic_ms()},
                         ("foundation", "config_resets"), {})

    def reset_state(self) -> None:
        """Test mode only: defaults, counters and subscribers cleared.

        Raises:
            SecurityViolation: 5002 ``operation_forbidden`` outside test mode.
        """
        self._check_test_mode()
        with self._lock:
            self._check_running()
            self._data = copy.deepcopy(DEFAULTS)
            self._subscribers.clear()
            self._updates_count = 0
            self._last_update = None

    # -- subscriptions ----------------------------------------------------------------------------

    def subscribe(self, mailbox: Mailbox | None = None) -> Any:
        """Deliver notifications to ``mailbox`` (a new ``queue.Queue`` when omitted) and return it.

        Idempotent per mailbox. Mailboxes are held weakly where possible, so a dropped queue unsubscribes
        itself (1.x monitored subscriber processes). Notifications are put with ``put_nowait`` while the
        service lock is held, so a mailbox must never block.

        Raises:
            ServiceUnavailable: 5000.
        """
        box: Any = mailbox if mailbox is not None else queue.Queue()
        with self._lock:
            self._check_running()
            try:
                ref: Any = weakref.ref(box)
            except TypeError:
                ref = lambda: box  # noqa: E731 - objects without weakref support are held strongly
            self._subscribers[id(box)] = ref
        return box

    def unsubscribe(self, mailbox: Mailbox) -> None:
        """Stop delivering to ``mailbox`` (no error if it was not subscribed)."""
        with self._lock:
            self._check_running()
            self._subscribers.pop(id(mailbox), None)

    def _live_subscribers(self) -> list[Any]:
        live = []
        for key, ref in list(self._subscribers.items()):
            box = ref()
            if box is None:
                del self._subscribers[key]
            else:
                live.append(box)
        return live

    def _notify(self, message: tuple[Any, ...]) -> None:
        for box in self._live_subscribers():
            try:
                box.put_nowait(("config_notification", message))
            except Exception:  # a full or broken mailbox must not break the update (1.x: send never fails)
                continue

    def _record(self, event_type: str, data: dict[str, Any], counter: Path, metadata: dict[str, Any]) -> None:
        events = self._events
        if events is not None and events.available():
            try:
                events.store(events.new_event(event_type, data))
            except FoundationError:
                pass  # 1.x ignored event-store failures here too; the update itself succeeded
        self._telemetry.emit_counter(counter, metadata)
