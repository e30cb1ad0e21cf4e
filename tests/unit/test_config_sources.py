"""Every leaf field of every config dataclass is settable from TOML, the environment and ``--set``
(issue 14, defect 4: a ``[membership]`` table reached the node as a raw dict, and
``FOUNDATION_MEMBERSHIP__SUSPECT_TIMEOUT`` was rejected).

The fields are found by walking the dataclasses (``dataclasses.fields`` and their type hints,
recursively from :class:`fabric.NodeConfig`, :class:`fabric.settings.StartSettings` and each discovery
strategy's config), never from a list kept here, so a field added anywhere is covered at once. For each
leaf a valid non-default value is searched among generic candidates (the config's own validation
decides what is valid), then set through each source in turn and read back from the built settings.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fabric import NodeConfig
from fabric.discovery import registry
from fabric.settings import SettingsError, StartSettings, load

# Discovery strategies whose config has a required option: the walk supplies it as the base.
DISCOVERY_BASE: dict[str, dict[str, str]] = {
    "dns": {"query": "nodes.example"},
    "kubernetes": {"service": "fabric"},  # dns mode needs the service
    "consul": {"cert_file": "/tmp/fabric-walk-cert.pem"},  # key_file needs cert_file
}
WALKED_ITEM = {"channels": "coordination"}
"""Fields of a list of config items are walked on one item each; other items pin some fields (the
``membership`` channel must keep its name and kind, broadcast channels have one lane)."""
SKIPPED_STRATEGIES = {"multi"}  # its options are per-child tables, covered by test_multi_options_from_toml

STRINGS = ["hyparview", "client", "walker-1", "tcp://127.0.0.2", "127.0.0.2", "v6", "_fabric._tcp.local.",
           "nodes.example", "app=fabric", "default", "http://127.0.0.1:8501", "/tmp/fabric-walk", "dc2",
           "239.1.2.3", "s3cret", "SRV", "AAAA", "dns"]
Leaf = tuple[tuple[str, ...], Any]


def _unwrap(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _leaves(cls: type, instance: Any, prefix: tuple[str, ...] = ()) -> Iterator[Leaf]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        hint, _optional = _unwrap(hints[f.name])
        value = getattr(instance, f.name)
        path = (*prefix, f.name)
        args = typing.get_args(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield from _leaves(hint, value, path)
        elif typing.get_origin(hint) is tuple and args and isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
            item = next(x for x in value if x.name == WALKED_ITEM[f.name])
            yield from _leaves(args[0], item, (*path, item.name))
        elif typing.get_origin(hint) in (dict, Mapping, typing.get_origin(Mapping[str, str])):
            yield (*path, "walkkey"), str
        else:
            yield path, hints[f.name]


def _candidates(hint: Any, current: Any) -> list[Any]:
    hint, optional = _unwrap(hint)
    out: list[Any]
    if hint is bool:
        out = [not current]
    elif hint is int:
        base = current if isinstance(current, int) else 1
        out = [base + 1, base + 2, base * 2, base - 1, 1, 2, 3]
    elif hint is float:
        base = current if isinstance(current, float) else 1.0
        out = [base * 1.5, base * 2, base + 1, base / 2, 0.5, 1.5]
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        out = list(hint)
    elif typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        out = [(1,), (0, 6)] if item is int else [("tcp://127.0.0.1:7001",), ("membership", "coordination"), ("A",),
                                                ("127.0.0.1",), ("walk",)]
    elif hint is str:
        out = [str(uuid.UUID(int=7))] + STRINGS
    else:
        raise AssertionError(f"no candidates for {hint!r}: teach this test the new field type")
    return [v for v in out if v != current and not (optional and v is None)]


def _get(settings: StartSettings, path: tuple[str, ...]) -> Any:
    if path[0] == "discovery":
        obj: Any = settings.discovery_config
        path = path[1:]
    elif path[0] in {f.name for f in dataclasses.fields(StartSettings)} - {"node"}:
        return getattr(settings, path[0])
    else:
        obj = settings.node
    for i, part in enumerate(path):
        if isinstance(obj, tuple) and obj and dataclasses.is_dataclass(obj[0]):
            if path[i + 1 :] == ("name",):  # renamed: the item now has the new name, at the same place
                return [x.name for x in obj][[x.name for x in _default_items(path[:i])].index(part)]
            obj = next(x for x in obj if x.name == part)
        elif isinstance(obj, Mapping):
            return obj.get(".".join(path[i:]))
        else:
            obj = getattr(obj, part)
    return obj


def _default_items(path: tuple[str, ...]) -> Any:
    obj: Any = load(environ={}).node
    for part in path:
        obj = getattr(obj, part)
    return obj


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    return str(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return json.dumps(str(value.value))
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def _key(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _toml_key(path: tuple[str, ...]) -> str:
    return ".".join(json.dumps(p) if not p.replace("_", "").isalnum() else p for p in path)


class Sources:
    """Sets one setting (plus the discovery base, when the path is a discovery option) via one source."""

    def __init__(self, tmp: Path, strategy: str | None) -> None:
        self.tmp = tmp
        self.strategy = strategy
        self.base = DISCOVERY_BASE.get(strategy or "", {})

    def flag(self, path: tuple[str, ...], value: Any) -> StartSettings:
        sets = [f"{_key(path)}={_text(value)}"]
        flags: dict[str, Any] = {}
        if self.strategy:
            flags["discovery"] = self.strategy
            sets += [f"discovery.{k}={v}" for k, v in self.base.items() if ("discovery", k) != path]
        flags["set"] = tuple(sets)
        return load(environ={}, flags=flags)

    def env(self, path: tuple[str, ...], value: Any) -> StartSettings:
        env = {"FOUNDATION_" + "__".join(path).upper(): _text(value)}
        if self.strategy:
            env["FOUNDATION_DISCOVERY__STRATEGY"] = self.strategy
            env.update({f"FOUNDATION_DISCOVERY__{k.upper()}": v for k, v in self.base.items() if ("discovery", k) != path})
        return load(environ=env)

    def toml(self, path: tuple[str, ...], value: Any) -> StartSettings:
        lines = [f"{_toml_key(path)} = {_toml(value)}"]
        if self.strategy:
            lines.append(f'discovery.strategy = "{self.strategy}"')
            lines += [f'discovery.{k} = "{v}"' for k, v in self.base.items() if ("discovery", k) != path]
        file = self.tmp / "walk.toml"
        file.write_text("\n".join(lines) + "\n")
        return load(file, environ={})


def _all_leaves() -> list[tuple[str | None, tuple[str, ...], Any, Any]]:
    """(strategy or None, path, hint, current value) for every leaf field."""
    out: list[tuple[str | None, tuple[str, ...], Any, Any]] = []
    node = load(environ={}).node
    for path, hint in _leaves(NodeConfig, node):
        if path[-1] == "walkkey":
            out.append((None, path, hint, None))
            continue
        obj: Any = node
        for part in path:
            obj = next(x for x in obj if x.name == part) if isinstance(obj, tuple) else getattr(obj, part)
        out.append((None, path, hint, obj))
    settings_hints = typing.get_type_hints(StartSettings)
    for f in dataclasses.fields(StartSettings):
        if f.name not in ("node", "discovery", "discovery_config"):
            out.append((None, (f.name,), settings_hints[f.name], f.default))
    for strategy in registry.names():
        if strategy in SKIPPED_STRATEGIES:
            continue
        config_type = registry.get(strategy).config_type
        base = config_type(**DISCOVERY_BASE.get(strategy, {}))
        for path, hint in _leaves(config_type, base):
            out.append((strategy, ("discovery", *path), hint, getattr(base, path[0])))
    return out


LEAVES = _all_leaves()


def test_the_walk_reaches_the_nested_configs() -> None:
    paths = {_key(p) for _s, p, _h, _c in LEAVES}
    hints = typing.get_type_hints(NodeConfig)
    nested = [f.name for f in dataclasses.fields(NodeConfig) if dataclasses.is_dataclass(_unwrap(hints[f.name])[0])]
    assert "membership" in nested and "transport" in nested
    for name in nested:  # every nested config class has its leaves walked
        assert any(p.startswith(f"{name}.") for p in paths), name
    assert any(p.count(".") >= 2 and not p.startswith(("channels.", "discovery.")) for p in paths)  # tables in tables
    for expected in ("membership.suspect_timeout", "membership.record_ttl", "membership.hyparview.active_max",
                     "membership.plumtree.lazy_interval", "transport.linger_ms", "channels.coordination.parallelism",
                     "metadata.walkkey", "member_expiry", "discovery.query"):
        assert expected in paths
    assert len(LEAVES) > 150


@pytest.mark.parametrize("strategy, path, hint, current", LEAVES, ids=[f"{s or 'node'}:{_key(p)}" for s, p, _h, _c in LEAVES])
def test_every_leaf_field_from_toml_env_and_flags(tmp_path: Path, strategy: str | None, path: tuple[str, ...],
                                                  hint: Any, current: Any) -> None:
    sources = Sources(tmp_path, strategy)
    value = None
    errors = []
    for candidate in _candidates(hint, current):
        try:
            sources.flag(path, candidate)
        except SettingsError as exc:
            errors.append(str(exc))
            continue
        value = candidate
        break
    assert value is not None, f"no valid non-default value found for {_key(path)}: {errors}"
    expected = value if not isinstance(value, tuple) else tuple(value)
    for name in ("toml", "env", "flag"):
        got = _get(getattr(sources, name)(path, value), path)
        assert got == expected and got != current, f"{name}: {_key(path)} = {got!r}, wanted {expected!r}"


def test_membership_table_from_toml_becomes_the_config_class(tmp_path: Path) -> None:
    file = tmp_path / "node.toml"
    file.write_text("[membership]\nsuspect_timeout = 2.5\nheartbeat_interval = 0.5\n")
    node = load(file, environ={"FOUNDATION_MEMBERSHIP__GOSSIP_FANOUT": "5"}).node
    assert dataclasses.is_dataclass(node.membership) and not isinstance(node.membership, dict)
    assert (node.membership.suspect_timeout, node.membership.heartbeat_interval, node.membership.gossip_fanout) == (2.5, 0.5, 5)


def test_multi_options_from_toml(tmp_path: Path) -> None:
    file = tmp_path / "node.toml"
    file.write_text('[discovery]\nstrategy = "multi"\nstrategies = ["static", "dns"]\n'
                    '[discovery.options.dns]\nquery = "nodes.example"\n[discovery.options.static]\nseeds = ["tcp://127.0.0.1:7001"]\n')
    settings = load(file, environ={})
    assert settings.discovery == "multi"
    assert settings.discovery_config.strategies == ("static", "dns")
    assert settings.discovery_config.options["dns"] == {"query": "nodes.example"}


@pytest.mark.parametrize(
    "flags, needle",
    [
        ({"set": ("membership=3",)}, "membership: is a table"),
        ({"set": ("membership.warp=1",)}, "membership.warp: unknown setting"),
        ({"set": ("port.x=1",)}, "port.x: port is not a table"),
        ({"set": ("channels.nosuch.parallelism=2",)}, "no channels item called 'nosuch'"),
        ({"set": ("channels.data.kind=teleport",)}, "channels.data.kind: expected one of"),
        ({"set": ("membership.hyparview.active_max=many",)}, "membership.hyparview.active_max: expected an integer"),
        ({"set": ("membership.suspect_timeout=-1",)}, "suspect_timeout"),
        ({"discovery": "dns:", "set": ()}, "nothing after ':'"),
        ({"discovery": "mdns:x"}, "service_type must look like"),
        ({"discovery": ":x"}, "no strategy name"),
        ({"discovery": "carrier-pigeon"}, "unknown discovery strategy 'carrier-pigeon'"),
        ({"discovery": "dns:x", "discovery_option": ("warp=1",)}, "discovery.warp: unknown setting"),
        ({"discovery_option": ("port=1",)}, "no strategy"),
    ],
)
def test_bad_nested_settings_are_one_line(flags: dict[str, Any], needle: str) -> None:
    with pytest.raises(SettingsError) as err:
        load(environ={}, flags=flags)
    assert needle in str(err.value) and "\n" not in str(err.value)
