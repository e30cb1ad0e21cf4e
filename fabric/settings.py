"""Load what ``foundation-node start`` runs from a TOML file, ``FOUNDATION_*`` variables and flags.

Theory of operation
-------------------
Every source is turned into one flat mapping of dotted keys (``name``, ``port``, ``transport.linger_ms``,
``metadata.zone``, ``seeds``, ``http_port`` ...), each value tagged with where it came from. The layers
merge in order: preset defaults < TOML file < environment < flags, so flags win. The merged mapping is
then coerced to the field types of :class:`fabric.NodeConfig` (and its ``transport`` table) and of
:class:`StartSettings`, and the dataclasses validate it. Every problem raises :class:`SettingsError`
with a one-line message that names the field and its source, e.g.
``FOUNDATION_PORT: port: expected an integer, got 'abc'``.

Keys (``docs/cli.md`` has the full table):

* every :class:`~fabric.NodeConfig` field by name (``name``, ``bind``, ``port``, ``call_timeout`` ...);
  ``[transport]`` holds :class:`~fabric.TransportConfig` fields; ``[metadata]`` string pairs;
  ``[[channels]]`` replaces the channel list (TOML only);
* ``preset`` (``local``, ``lan``, ``wan``), ``seeds`` (endpoints to link to at start), ``http_host``,
  ``http_port``, ``seed_retry_max`` (the :class:`StartSettings` fields).

Environment: ``FOUNDATION_<KEY>`` with ``__`` for a dot (``FOUNDATION_TRANSPORT__LINGER_MS=100``,
``FOUNDATION_METADATA__ZONE=a``); ``FOUNDATION_SEEDS`` is comma-separated; ``FOUNDATION_CONFIG`` names the
TOML file. ``FOUNDATION_NODE`` is read by the operator commands, not here.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ChannelConfig, NodeConfig, TransportConfig
from .errors import ConfigError

ENV_PREFIX = "FOUNDATION_"
PRESETS = ("local", "lan", "wan")
_SKIP_ENV = {"FOUNDATION_CONFIG", "FOUNDATION_NODE"}  # read elsewhere (the file itself, the CLI's target)


class SettingsError(ConfigError):
    """A setting is missing, unknown, of the wrong type, or rejected by validation; the message names it."""


@dataclass(frozen=True)
class StartSettings:
    """What ``foundation-node start`` runs: the node's config plus how the process wires it up."""

    node: NodeConfig
    """The node's configuration (validated by :class:`~fabric.NodeConfig` itself)."""
    seeds: tuple[str, ...] = ()
    """Membership endpoints of static peers to link to at start (``tcp://host:port``). Seeds that do not
    answer are retried in the background (and again whenever the link drops), so start order does not
    matter; each retry waits longer, up to ``seed_retry_max``."""
    http_host: str = "127.0.0.1"
    """Address the HTTP endpoint (``/metrics``, ``/topology.json``) binds. Loopback by default: the
    endpoint has no authentication, so expose it beyond the host only behind something that has."""
    http_port: int | None = None
    """HTTP endpoint port; 0 picks a free port (printed at start); None disables the endpoint."""
    seed_retry_max: float = 5.0
    """Longest wait in seconds between two attempts to reach an unlinked seed. Lower reconnects faster
    after a seed restarts; higher sends fewer HELLOs to seeds that stay down."""

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
        if self.seed_retry_max <= 0:
            raise SettingsError(f"seed_retry_max: must be > 0 seconds, got {self.seed_retry_max}")


def check_endpoint(endpoint: str, *, resolve: bool = True) -> tuple[str, str, int | None]:
    """Parse a node endpoint: returns ``(scheme, host_or_path, port)``.

    Accepts ``tcp://HOST:PORT`` (IPv6 as ``[addr]``), ``ipc://PATH`` and ``inproc://NAME``. With
    ``resolve`` the TCP host must resolve. Raises ValueError with a one-line message naming the problem.
    """
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
        raise ValueError(f"{endpoint!r} is not an endpoint: use tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    if scheme != "tcp":
        return scheme, rest, None
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{endpoint!r}: a tcp endpoint needs HOST:PORT with a port in 1..65535")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if resolve:
        try:
            socket.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"cannot resolve host {host!r} of {endpoint}: {exc}") from None
    return scheme, host, int(port_text)


# -- sources -----------------------------------------------------------------------------------------

Layer = dict[str, tuple[Any, str]]
"""Dotted key -> (value, source description)."""

_RUN_KEYS = {f.name for f in dataclasses.fields(StartSettings)} - {"node"} | {"preset"}
_NODE_FIELDS = {f.name: f for f in dataclasses.fields(NodeConfig)}
_TRANSPORT_FIELDS = {f.name: f for f in dataclasses.fields(TransportConfig)}


def _flatten(data: Mapping[str, Any], source: str) -> Layer:
    out: Layer = {}
    for key, value in data.items():
        if key in ("transport", "metadata") and isinstance(value, Mapping):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = (v, source)
        else:
            out[key] = (value, source)
    return out


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
    return _flatten(data, f"config file {p}")


def env_layer(environ: Mapping[str, str]) -> Layer:
    """The ``FOUNDATION_*`` variables (except ``FOUNDATION_CONFIG``/``FOUNDATION_NODE``) as a layer."""
    out: Layer = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _SKIP_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        if key == "seeds":
            out[key] = ([s.strip() for s in value.split(",") if s.strip()], name)
        else:
            out[key] = (value, name)
    return out


def flag_layer(flags: Mapping[str, Any]) -> Layer:
    """Command-line values (None means "not given"); ``set`` holds ``KEY=VALUE`` overrides."""
    out: Layer = {}
    for key, value in flags.items():
        if key == "set":
            for item in value or ():
                k, eq, v = str(item).partition("=")
                if not eq or not k.strip():
                    raise SettingsError(f"--set {item!r}: use KEY=VALUE, e.g. --set transport.linger_ms=100")
                out[k.strip()] = (v, f"--set {k.strip()}")
        elif key == "metadata":
            for item in value or ():
                k, eq, v = str(item).partition("=")
                if not eq or not k:
                    raise SettingsError(f"--meta {item!r}: use KEY=VALUE")
                out[f"metadata.{k}"] = (v, "--meta")
        elif value is not None and value != ():
            out[key] = (list(value) if isinstance(value, tuple) else value, f"--{key.replace('_', '-')}")
    return out


# -- coercion ----------------------------------------------------------------------------------------


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Convert ``value`` (typed from TOML, or text from env/flags) to ``hint``; raise SettingsError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        return _coerce(args[0], value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip(), 0)
            except ValueError:
                pass
        raise SettingsError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise SettingsError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise SettingsError(f"{where}: expected a string, got {value!r}")
    if origin is tuple and len(typing.get_args(hint)) == 2 and typing.get_args(hint)[1] is Ellipsis:
        # tuple[X, ...]: a TOML array, or comma-separated text from the environment or a flag
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            item = typing.get_args(hint)[0]
            return tuple(_coerce(item, v, where) for v in value)
        raise SettingsError(f"{where}: expected a list, got {value!r}")
    return value


def _hints(cls: type) -> dict[str, Any]:
    import fabric.config as config_module

    return typing.get_type_hints(cls, vars(config_module))


def _channels(value: Any, where: str) -> tuple[ChannelConfig, ...]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise SettingsError(f"{where}: channels: expected a list of tables ([[channels]])")
    known = {f.name for f in dataclasses.fields(ChannelConfig)}
    hints = _hints(ChannelConfig)
    out = []
    for i, table in enumerate(value):
        name = table.get("name", f"#{i}")
        kwargs: dict[str, Any] = {}
        for k, v in table.items():
            if k not in known:
                raise SettingsError(f"{where}: channels.{name}.{k}: unknown setting; known: {', '.join(sorted(known))}")
            kwargs[k] = v if k in ("kind", "on_full") else _coerce(hints[k], v, f"{where}: channels.{name}.{k}")
        try:
            out.append(ChannelConfig(**kwargs))
        except TypeError as exc:
            raise SettingsError(f"{where}: channels.{name}: {exc}") from None
        except ConfigError as exc:
            raise SettingsError(f"{where}: {exc}") from None
    return tuple(out)


def build(*layers: Layer) -> StartSettings:
    """Merge layers (later wins) into validated :class:`StartSettings`. Raises SettingsError."""
    merged: Layer = {}
    for layer in layers:
        merged.update(layer)
    preset_value, preset_src = merged.pop("preset", ("lan", "default"))
    if preset_value not in PRESETS:
        raise SettingsError(f"{preset_src}: preset: expected one of {', '.join(PRESETS)}, got {preset_value!r}")
    node_hints = _hints(NodeConfig)
    transport_hints = _hints(TransportConfig)
    node_kwargs: dict[str, Any] = {}
    transport_kwargs: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    run_kwargs: dict[str, Any] = {}
    run_hints = typing.get_type_hints(StartSettings)
    sources: dict[str, str] = {}
    for key, (value, source) in merged.items():
        where = f"{source}: {key}"
        sources[key] = source
        if key.startswith("transport."):
            sub = key.split(".", 1)[1]
            if sub not in _TRANSPORT_FIELDS:
                raise SettingsError(f"{where}: unknown transport setting; known: {', '.join(sorted(_TRANSPORT_FIELDS))}")
            transport_kwargs[sub] = _coerce(transport_hints[sub], value, where)
        elif key.startswith("metadata."):
            metadata[key.split(".", 1)[1]] = _coerce(str, value, where)
        elif key == "channels":
            node_kwargs["channels"] = _channels(value, source)
        elif key == "seeds":
            if isinstance(value, str):
                value = [s.strip() for s in value.split(",") if s.strip()]
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                raise SettingsError(f"{where}: expected a list of endpoints")
            run_kwargs["seeds"] = tuple(value)
        elif key in _RUN_KEYS:
            run_kwargs[key] = _coerce(run_hints[key], value, where)
        elif key in _NODE_FIELDS and key not in ("transport", "metadata"):
            node_kwargs[key] = _coerce(node_hints[key], value, where)
        else:
            known = sorted({*_NODE_FIELDS, *_RUN_KEYS} - {"channels"})
            raise SettingsError(f"{where}: unknown setting; known: {', '.join(known)}")
    if metadata:
        node_kwargs["metadata"] = metadata
    factory = getattr(NodeConfig, str(preset_value))
    try:
        base: NodeConfig = factory()
        if transport_kwargs:
            node_kwargs["transport"] = dataclasses.replace(base.transport, **transport_kwargs)
        node = base.replace(**node_kwargs)
        return StartSettings(node=node, **run_kwargs)
    except ConfigError as exc:  # validation by the dataclasses: add where the offending value came from
        field_name = str(exc).split(":", 1)[0].split(".")[0]
        source = next((s for k, s in sources.items() if k.split(".")[0] == field_name), "")
        raise SettingsError(f"{source + ': ' if source else ''}{exc}") from None


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


__all__ = ["SettingsError", "StartSettings", "check_endpoint", "load", "file_layer", "env_layer", "flag_layer", "build"]
