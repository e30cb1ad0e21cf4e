"""Load what ``foundation-node start`` runs from a TOML file, ``FOUNDATION_*`` variables and flags.

Theory of operation
-------------------
Every source is turned into one flat mapping of dotted keys (``name``, ``membership.suspect_timeout``,
``membership.hyparview.active_max``, ``channels.data.parallelism``, ``metadata.zone``, ``seeds``,
``discovery.query`` ...), each value tagged with where it came from. The layers merge in order: preset
defaults < TOML file < environment < flags, so flags win. The merged keys are then applied to the
preset's :class:`fabric.NodeConfig` by walking the dataclasses themselves (their fields and type hints,
recursively): nothing here lists the fields, so a field added to any nested config class is settable
from all three sources at once. Values are coerced to the field's type (text from the environment and
flags, typed values from TOML), and the dataclasses validate the result. Every problem raises
:class:`SettingsError` with a one-line message that names the field and its source, e.g.
``FOUNDATION_PORT: port: expected an integer, got 'abc'``.

Keys (``docs/configuration.md`` has every field):

* a scalar field of :class:`~fabric.NodeConfig` by name (``name``, ``port``, ``call_timeout`` ...);
* a field of a nested config dataclass by its dotted path (``transport.linger_ms``,
  ``membership.heartbeat_interval``, ``membership.plumtree.lazy_interval``); in TOML as a table
  (``[membership]``, ``[membership.hyparview]``) or dotted keys. The deprecated ``overlay_config.X`` keys
  (one release) are read as ``membership.X`` with a DeprecationWarning (``tombstone_ttl`` and
  ``max_members`` as ``record_tombstone_ttl`` and ``max_records``);
* ``channels``: ``[[channels]]`` tables replace the channel list (TOML); ``channels.NAME.FIELD`` changes
  one field of the channel called NAME (any source);
* ``metadata.KEY``: string metadata (``[metadata]`` in TOML);
* the :class:`StartSettings` fields: ``preset`` (``local``, ``lan``, ``wan``), ``seeds``, ``http_host``,
  ``http_port``, ``admin_host``, ``admin_port``, ``member_expiry``;
* ``discovery``: a strategy spec ``NAME`` or ``NAME:ARG`` (``dns:nodes.example``, ``static:tcp://h:7946``,
  ``k8s:app=fabric``; see :func:`parse_strategy`), or ``discovery.strategy`` plus ``discovery.OPTION``
  for any field of that strategy's config dataclass (``[discovery]`` in TOML).

Environment: ``FOUNDATION_<KEY>`` with ``__`` for a dot (``FOUNDATION_MEMBERSHIP__SUSPECT_TIMEOUT=2``,
``FOUNDATION_METADATA__ZONE=a``, ``FOUNDATION_CHANNELS__DATA__PARALLELISM=8``); names are lower-cased;
lists are comma-separated (``FOUNDATION_SEEDS``); ``FOUNDATION_CONFIG`` names the TOML file.
``FOUNDATION_NODE`` is read by the operator commands, not here.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import json
import math
import os
import socket
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import NodeConfig
from .errors import ConfigError

ENV_PREFIX = "FOUNDATION_"
PRESETS = ("local", "lan", "wan")
_SKIP_ENV = {"FOUNDATION_CONFIG", "FOUNDATION_NODE"}  # read elsewhere (the file itself, the CLI's target)
MAX_DEPTH = 16
"""Deepest nesting of tables or values accepted from any source (the deepest config path has 3 parts);
deeper input is refused with one line instead of exhausting the interpreter's stack."""
DEFAULT_MEMBER_EXPIRY = 300.0
"""Seconds a down or left member stays listed by the admin views (``member_expiry``)."""

STRATEGY_ALIASES: Mapping[str, str] = {"k8s": "kubernetes"}
"""Short names accepted in a ``--discovery`` spec."""
PRIMARY_OPTION: Mapping[str, str] = {
    "static": "seeds",
    "dns": "query",
    "mdns": "service_type",
    "gossip": "group",
    "consul": "service",
    "kubernetes": "label_selector",
    "multi": "strategies",
}
"""The option ``NAME:ARG`` sets, per strategy (``dns:nodes.example`` is ``query=nodes.example``)."""


class SettingsError(ConfigError):
    """A setting is missing, unknown, of the wrong type, or rejected by validation; the message names it."""


@dataclass(frozen=True)
class StartSettings:
    """What ``foundation-node start`` runs: the node's config plus how the process wires it up."""

    node: NodeConfig
    """The node's configuration (validated by :class:`~fabric.NodeConfig` itself)."""
    seeds: tuple[str, ...] = ()
    """Membership endpoints (``tcp://host:port``) the node joins the cluster through, with
    :meth:`fabric.Node.join`. Seeds that do not answer yet are retried in the background with the
    membership's join backoff, so start order does not matter."""
    discovery: str | None = None
    """Discovery strategy whose candidates the node joins through as well (``static``, ``dns``, ``mdns``,
    ``gossip``, ``consul``, ``kubernetes``, ``multi`` or an installed plugin); None: seeds only."""
    discovery_config: Any = None
    """The strategy's config dataclass (built from the ``discovery.*`` settings); None: its defaults."""
    http_host: str = "127.0.0.1"
    """Address the HTTP endpoint (``/metrics``, ``/topology.json``) binds. Loopback by default: the
    endpoint has no authentication, so expose it beyond the host only behind something that has."""
    http_port: int | None = None
    """HTTP endpoint port; 0 picks a free port (printed at start); None disables the endpoint."""
    admin_host: str = "127.0.0.1"
    """Address the admin endpoint binds (the operators' socket, the only one serving the ops that change
    the node). Loopback by default; a non-loopback address needs ``security.keys`` (then only operator
    keys get in) or ``insecure`` (then anyone who reaches it can operate the node)."""
    admin_port: int = 0
    """Admin endpoint port; 0 picks a free port (printed in the ready line as ``admin=``)."""
    member_expiry: float = DEFAULT_MEMBER_EXPIRY
    """Seconds a down or left member stays listed by ``members``, ``topology`` and the live page before
    it is dropped from them (and counted in ``expired_members``). Longer shows operators who went away
    for longer; shorter keeps the page of a cluster with much churn readable."""

    def __post_init__(self) -> None:
        for seed in self.seeds:
            try:
                check_endpoint(seed, resolve=False)
            except ValueError as exc:
                raise SettingsError(f"seeds: {exc}") from None
        if self.http_port is not None and not 0 <= self.http_port <= 65535:
            raise SettingsError(f"http_port: must be 0..65535, got {self.http_port}")
        if not self.http_host:
            raise SettingsError("http_host: must not be empty")
        if not 0 <= self.admin_port <= 65535:
            raise SettingsError(f"admin_port: must be 0..65535, got {self.admin_port}")
        if not self.admin_host:
            raise SettingsError("admin_host: must not be empty")
        if not (math.isfinite(self.member_expiry) and self.member_expiry > 0):
            raise SettingsError(f"member_expiry: must be a finite number of seconds > 0, got {self.member_expiry}")


def check_endpoint(endpoint: str, *, resolve: bool = True) -> tuple[str, str, int | None]:
    """Parse a node endpoint: returns ``(scheme, host_or_path, port)``.

    Accepts ``tcp://HOST:PORT`` (IPv6 as ``[addr]``), ``ipc://PATH`` and ``inproc://NAME``. With
    ``resolve`` the TCP host must resolve. Raises ValueError with a one-line message naming the problem.
    """
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
        raise ValueError(f"{_short(endpoint)} is not an endpoint: use tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    if scheme != "tcp":
        return scheme, rest, None
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{_short(endpoint)}: a tcp endpoint needs HOST:PORT with a port in 1..65535")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if resolve:
        try:
            socket.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"cannot resolve host {_short(host)} of {_short(endpoint)}: {exc}") from None
    return scheme, host, int(port_text)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a 10 MB value makes a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


# -- discovery specs ---------------------------------------------------------------------------------


def parse_strategy(spec: str) -> tuple[str, dict[str, str]]:
    """``NAME`` or ``NAME:ARG`` -> (strategy name, options). ARG sets the strategy's main option
    (:data:`PRIMARY_OPTION`); ``k8s`` means ``kubernetes``. Raises SettingsError for an empty name, an
    empty ARG, or an ARG given to a strategy without a main option. The name itself is checked when the
    strategy's config is built (:func:`discovery_config`)."""
    if not isinstance(spec, str):
        raise SettingsError(f"discovery: expected a strategy name or NAME:ARG, got {_short(spec)}")
    name, sep, arg = spec.partition(":")
    name = name.strip().lower()
    name = STRATEGY_ALIASES.get(name, name)
    if not name:
        raise SettingsError(f"discovery: {_short(spec)}: no strategy name (use e.g. dns:NAME, mdns, gossip, static:tcp://HOST:PORT)")
    if not sep:
        return name, {}
    if not arg.strip():
        raise SettingsError(f"discovery: {_short(spec)}: nothing after ':' (use {name} alone, or {name}:VALUE)")
    primary = PRIMARY_OPTION.get(name)
    if primary is None:
        raise SettingsError(f"discovery: strategy {name!r} takes no NAME:ARG form; set its options with --discovery-option KEY=VALUE")
    return name, {primary: arg.strip()}


def parse_options(items: Iterable[str], flag: str = "--option") -> dict[str, Any]:
    """``KEY=VALUE`` pairs (as ``discover -o`` takes them). A value that is a JSON array or object
    (``["tcp://h:7946"]``) is decoded; anything else stays text, coerced later to the option's type.
    Raises SettingsError naming ``flag`` (no ``=``, empty key, JSON too deep)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{flag} {_short(item)}: expected KEY=VALUE")
        parsed[key.strip()] = decode_json_value(value, f"{flag} {key.strip()}") if value[:1] in "[{" and value else value
    return parsed


def decode_json_value(text: str, where: str) -> Any:
    """JSON text -> value, refusing input nested deeper than :data:`MAX_DEPTH` (SettingsError)."""
    _check_nesting(text, where)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SettingsError(f"{where}: not valid JSON ({exc.__class__.__name__})") from None


def _check_nesting(text: str, where: str) -> None:
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise SettingsError(f"{where}: nested more than {MAX_DEPTH} levels deep")
        elif ch in "]}":
            depth -= 1


def discovery_config(name: str, options: Mapping[str, Any], source: str = "discovery") -> tuple[str, Any]:
    """Build strategy ``name``'s config dataclass from ``options`` (text or typed values, coerced to the
    fields' types). Returns ``(canonical name, config)``. Raises SettingsError (unknown strategy, an
    unknown option, a bad value) with one line."""
    from .discovery import DiscoveryError, registry

    name = STRATEGY_ALIASES.get(name, name)
    try:
        plugin = registry.get(name)
    except DiscoveryError as exc:
        raise SettingsError(f"{source}: {exc}") from None
    entries = {tuple(k.split(".")): (v, source) for k, v in options.items()}
    try:
        return name, _build(plugin.config_type, None, entries, "discovery.")
    except DiscoveryError as exc:
        raise SettingsError(f"{source}: discovery {name}: {exc}") from None


# -- sources -----------------------------------------------------------------------------------------

Layer = dict[str, tuple[Any, str]]
"""Dotted key -> (value, source description)."""

_RUN_KEYS = {f.name for f in dataclasses.fields(StartSettings)} - {"node", "discovery", "discovery_config"}


def _flatten(data: Mapping[str, Any], source: str, prefix: str = "", depth: int = 0) -> Layer:
    if depth > MAX_DEPTH:
        raise SettingsError(f"{source}: {prefix.rstrip('.')[:80]}: tables nested more than {MAX_DEPTH} levels deep")
    out: Layer = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, source, f"{prefix}{key}.", depth + 1))
        else:
            out[f"{prefix}{key}"] = (value, source)
    return out


def _expand_discovery(layer: Layer) -> Layer:
    """A ``discovery = "NAME:ARG"`` spec becomes ``discovery.strategy`` and the ARG's option."""
    if "discovery" in layer:
        spec, source = layer.pop("discovery")
        name, options = parse_strategy(spec)
        layer["discovery.strategy"] = (name, source)
        for k, v in options.items():
            layer[f"discovery.{k}"] = (v, source)
    return layer


def file_layer(path: str | Path) -> Layer:
    """Read a TOML settings file. Raises SettingsError (missing file, bad TOML with line and column)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise SettingsError(f"config file {p}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"config file {p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {p}: invalid TOML: {exc}") from None
    except RecursionError:
        raise SettingsError(f"config file {p}: invalid TOML: nested too deeply") from None
    return _expand_discovery(_flatten(data, f"config file {p}"))


def env_layer(environ: Mapping[str, str]) -> Layer:
    """The ``FOUNDATION_*`` variables (except ``FOUNDATION_CONFIG``/``FOUNDATION_NODE``) as a layer."""
    out: Layer = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _SKIP_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        out[key] = (value, name)
    return _expand_discovery(out)


def flag_layer(flags: Mapping[str, Any]) -> Layer:
    """Command-line values (None means "not given"); ``set`` holds ``KEY=VALUE`` overrides, ``metadata``
    ``KEY=VALUE`` metadata pairs, ``discovery_option`` ``KEY=VALUE`` options of the discovery strategy."""
    out: Layer = {}
    for key, value in flags.items():
        if key == "set":
            for item in value or ():
                k, eq, v = str(item).partition("=")
                if not eq or not k.strip():
                    raise SettingsError(f"--set {_short(item)}: use KEY=VALUE, e.g. --set membership.suspect_timeout=2")
                out[k.strip()] = (v, f"--set {k.strip()}")
        elif key == "metadata":
            for item in value or ():
                k, eq, v = str(item).partition("=")
                if not eq or not k:
                    raise SettingsError(f"--meta {_short(item)}: use KEY=VALUE")
                out[f"metadata.{k}"] = (v, "--meta")
        elif key == "discovery_option":
            for k, v in parse_options(value or (), "--discovery-option").items():
                out[f"discovery.{k}"] = (v, f"--discovery-option {k}")
        elif value is not None and value != ():
            out[key] = (list(value) if isinstance(value, tuple) else value, f"--{key.replace('_', '-')}")
    return _expand_discovery(out)


# -- coercion ----------------------------------------------------------------------------------------


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Convert ``value`` (typed from TOML, or text from env/flags) to ``hint``; raise SettingsError."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            if len(args) < len(typing.get_args(hint)):
                return None
        return _coerce(args[0], value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise SettingsError(f"{where}: expected true or false, got {_short(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and len(value) <= 40:
            try:
                return int(value.strip(), 0)
            except ValueError:
                pass
        raise SettingsError(f"{where}: expected an integer, got {_short(value)}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and len(value) <= 64:
            try:
                return float(value)
            except ValueError:
                pass
        raise SettingsError(f"{where}: expected a number, got {_short(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise SettingsError(f"{where}: expected a string, got {_short(value)}")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in hint)
            raise SettingsError(f"{where}: expected one of {choices}, got {_short(value)}") from None
    if origin is tuple and len(typing.get_args(hint)) == 2 and typing.get_args(hint)[1] is Ellipsis:
        # tuple[X, ...]: a TOML array, or comma-separated text from the environment or a flag
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            item = typing.get_args(hint)[0]
            return tuple(_coerce(item, v, where) for v in value)
        raise SettingsError(f"{where}: expected a list, got {_short(value)}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise SettingsError(f"{where}: expected {hint.__name__}, got {_short(value)}")
    return value


def _unwrap_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _dataclass_of(hint: Any) -> type | None:
    hint = _unwrap_optional(hint)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _tuple_of_dataclass(hint: Any) -> type | None:
    hint = _unwrap_optional(hint)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _dataclass_of(args[0])
    return None


def _mapping_value(hint: Any) -> Any:
    """The value type of a ``Mapping[str, V]`` / ``dict[str, V]`` hint; None if ``hint`` is not one."""
    hint = _unwrap_optional(hint)
    origin = typing.get_origin(hint)
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        args = typing.get_args(hint)
        return args[1] if len(args) == 2 else Any
    return None


Entries = dict[tuple[str, ...], tuple[Any, str]]
"""A config path below some dataclass (``("hyparview", "active_max")``) -> (value, source)."""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, base: Any, entries: Entries, prefix: str) -> Any:
    """``base`` (an instance of ``cls``, or None: build from the defaults) with ``entries`` applied,
    walking ``cls``'s fields and type hints. Raises SettingsError for unknown or mistyped keys; the
    dataclass's own validation raises ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    groups: dict[str, Entries] = {}
    for path, (value, source) in entries.items():
        head = path[0] if path else ""
        if head not in fields:
            where = f"{source}: {prefix}{'.'.join(path)}" if path else f"{source}: {prefix.rstrip('.')}"
            what = "unknown setting" if head else "empty setting name"
            raise SettingsError(f"{where}: {what}; known: {', '.join(sorted(fields))}")
        groups.setdefault(head, {})[path[1:]] = (value, source)
    kwargs: dict[str, Any] = {}
    for name, sub in groups.items():
        current = getattr(base, name) if base is not None else _default(fields[name])
        kwargs[name] = _value(hints[name], current, sub, f"{prefix}{name}")
    try:
        if base is None:
            return cls(**kwargs)
        return dataclasses.replace(base, **kwargs)
    except TypeError as exc:  # a required field missing (e.g. a channel's name or kind)
        raise SettingsError(f"{prefix.rstrip('.') or cls.__name__}: {exc}") from None


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _value(hint: Any, current: Any, sub: Entries, dotted: str) -> Any:
    """The new value of one field, from the entries below it (``()`` is the field itself)."""
    whole = sub.get(())
    nested = {p: e for p, e in sub.items() if p}
    cls = _dataclass_of(hint)
    if cls is not None:
        if whole is not None:
            raise SettingsError(f"{whole[1]}: {dotted}: is a table; set its fields ({dotted}.FIELD)")
        return _build(cls, current, nested, f"{dotted}.")
    item_cls = _tuple_of_dataclass(hint)
    if item_cls is not None:
        return _dataclass_list(item_cls, current, whole, nested, dotted)
    value_hint = _mapping_value(hint)
    if value_hint is not None:
        if whole is not None:
            raise SettingsError(f"{whole[1]}: {dotted}: is a table; set its keys ({dotted}.KEY)")
        return {**dict(current or {}), **_mapping(value_hint, nested, dotted)}
    if nested:
        path, (_v, source) = next(iter(nested.items()))
        raise SettingsError(f"{source}: {dotted}.{'.'.join(path)}: {dotted} is not a table")
    assert whole is not None
    return _coerce(hint, whole[0], f"{whole[1]}: {dotted}")


def _mapping(value_hint: Any, entries: Entries, dotted: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nested_mapping = _mapping_value(value_hint)
    groups: dict[str, Entries] = {}
    for path, (value, source) in entries.items():
        if nested_mapping is None:
            key = ".".join(path)  # metadata keys may hold dots (``--meta app.version=2``)
            if not all(path):
                raise SettingsError(f"{source}: {dotted}.{key}: empty key")
            out[key] = _coerce(value_hint, value, f"{source}: {dotted}.{key}")
        else:
            if not path[0]:
                raise SettingsError(f"{source}: {dotted}: empty key")
            groups.setdefault(path[0], {})[path[1:]] = (value, source)
    for key, sub in groups.items():
        out[key] = _mapping(nested_mapping, sub, f"{dotted}.{key}")
    return out


def _dataclass_list(cls: type, current: Any, whole: tuple[Any, str] | None, nested: Entries, dotted: str) -> tuple[Any, ...]:
    """``[[channels]]`` replaces the list; ``channels.NAME.FIELD`` changes the item whose ``name`` is NAME."""
    items = list(current or ())
    if whole is not None:
        value, source = whole
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise SettingsError(f"{source}: {dotted}: expected a list of tables ([[{dotted}]])")
        items = []
        for i, table in enumerate(value):
            label = table.get("name", f"#{i}")
            entries = {tuple(k.split(".")): e for k, e in _flatten(table, source).items()}
            items.append(_build(cls, None, entries, f"{dotted}.{label}."))
    groups: dict[str, Entries] = {}
    for path, entry in nested.items():
        groups.setdefault(path[0], {})[path[1:]] = entry
    for name, sub in groups.items():
        index = next((i for i, it in enumerate(items) if getattr(it, "name", None) == name), None)
        if index is None:
            source = next(iter(sub.values()))[1]
            names = ", ".join(str(getattr(it, "name", "?")) for it in items)
            raise SettingsError(f"{source}: {dotted}.{name}: no {dotted} item called {name!r}; there are: {names}")
        items[index] = _build(cls, items[index], sub, f"{dotted}.{name}.")
    return tuple(items)


# -- building ----------------------------------------------------------------------------------------


def build(*layers: Layer) -> StartSettings:
    """Merge layers (later wins) into validated :class:`StartSettings`. Raises SettingsError."""
    merged: Layer = {}
    for layer in layers:
        if "discovery.strategy" in layer:  # another strategy: the earlier layers' options were for the old one
            merged = {k: v for k, v in merged.items() if not k.startswith("discovery.")}
        merged.update(layer)
    preset_value, preset_src = merged.pop("preset", ("lan", "default"))
    if preset_value not in PRESETS:
        raise SettingsError(f"{preset_src}: preset: expected one of {', '.join(PRESETS)}, got {_short(preset_value)}")
    run_hints = typing.get_type_hints(StartSettings)
    run_kwargs: dict[str, Any] = {}
    node_entries: Entries = {}
    discovery: dict[str, Any] = {}
    strategy: tuple[Any, str] | None = None
    discovery_sources: list[str] = []
    for key, (value, source) in _deprecated_keys(merged).items():
        where = f"{source}: {key}"
        if key == "discovery.strategy":
            strategy = (value, source)
        elif key.startswith("discovery."):
            discovery[key.split(".", 1)[1]] = value
            discovery_sources.append(source)
        elif key in _RUN_KEYS:
            run_kwargs[key] = _coerce(run_hints[key], value, where)
        else:
            node_entries[tuple(key.split("."))] = (value, source)
    if strategy is None and discovery:
        raise SettingsError(f"{discovery_sources[0]}: discovery options given but no strategy (set discovery = NAME)")
    if strategy is not None:
        name, source = strategy
        name = _coerce(str, name, f"{source}: discovery.strategy")
        name, run_kwargs["discovery_config"] = discovery_config(
            parse_strategy(name)[0], discovery, ", ".join(dict.fromkeys([source, *discovery_sources]))
        )
        run_kwargs["discovery"] = name
    base: NodeConfig = getattr(NodeConfig, str(preset_value))()
    try:
        node = _build(NodeConfig, base, node_entries, "")
        return StartSettings(node=node, **run_kwargs)
    except SettingsError:
        raise
    except ConfigError as exc:  # validation by the dataclasses: add where the offending value came from
        field_path = str(exc).split(":", 1)[0].split(" ", 1)[0]
        source = _source_of(field_path, merged)
        raise SettingsError(f"{source + ': ' if source else ''}{_one_line(exc)}") from None


def _deprecated_keys(merged: Layer) -> Layer:
    """``overlay_config.X`` (deprecated for one release) read as ``membership.X``, renamed fields included."""
    if not any(k.split(".", 1)[0] == "overlay_config" for k in merged):
        return merged
    import warnings

    from .membership.overlay_config import OVERLAY_RENAMES

    out: Layer = {}
    for key, entry in merged.items():
        head, _, rest = key.partition(".")
        if head == "overlay_config":
            first, dot, tail = rest.partition(".")
            new = f"membership.{OVERLAY_RENAMES.get(first, first)}{dot}{tail}"
            warnings.warn(f"{entry[1]}: {key} is deprecated: use {new}", DeprecationWarning, stacklevel=3)
            key = new
            if key in out:
                raise SettingsError(f"{entry[1]}: overlay_config.{rest}: also set as {key}; set {key} only")
        elif key in out:
            raise SettingsError(f"{entry[1]}: {key}: also set through the deprecated overlay_config.*; set {key} only")
        out[key] = entry
    return out


def _source_of(field_path: str, merged: Layer) -> str:
    """The source of the setting a validation message names (``membership.suspect_timeout``,
    ``MembershipConfig.suspect_timeout``, ``channels.data.parallelism``); "" when unknown."""
    leaf = field_path.split(".")[-1].strip("'\"")
    head = field_path.split(".")[0]
    for key, (_value, source) in merged.items():
        if key == field_path or key.split(".")[0] == head:
            return source
    for key, (_value, source) in merged.items():
        if key.split(".")[-1] == leaf:
            return source
    return ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "..."


def load(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> StartSettings:
    """Settings from ``config_file`` (or ``$FOUNDATION_CONFIG``), the environment, and ``flags``.

    ``environ`` defaults to :data:`os.environ`. Raises :class:`SettingsError` naming the bad field.
    """
    env = os.environ if environ is None else environ
    path = config_file or env.get("FOUNDATION_CONFIG") or None
    layers = [file_layer(path)] if path else []
    layers.append(env_layer(env))
    layers.append(flag_layer(flags or {}))
    return build(*layers)


__all__ = [
    "DEFAULT_MEMBER_EXPIRY",
    "PRESETS",
    "PRIMARY_OPTION",
    "STRATEGY_ALIASES",
    "SettingsError",
    "StartSettings",
    "build",
    "check_endpoint",
    "decode_json_value",
    "discovery_config",
    "env_layer",
    "file_layer",
    "flag_layer",
    "load",
    "parse_options",
    "parse_strategy",
]
