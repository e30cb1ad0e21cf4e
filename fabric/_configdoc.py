"""Generate docs/configuration.md from the config dataclasses, so the reference cannot drift.

Field docs are the string literals written under each field (attribute docstrings); they are read from
the source with :mod:`ast`. ``python -m fabric._configdoc > docs/configuration.md`` regenerates the file
and tests/unit/test_configuration_doc.py fails when the committed file differs.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import textwrap
from typing import Any

# (section title, "module:Class", one-paragraph introduction)
SECTIONS: list[tuple[str, str, str]] = [
    (
        "NodeConfig",
        "fabric.config:NodeConfig",
        "Everything a node needs. Presets: `NodeConfig.local()` (tests, one machine: faster ZMTP heartbeats), "
        "`NodeConfig.lan()` (the defaults), `NodeConfig.wan()` (slower heartbeats, longer timeouts).",
    ),
    (
        "ChannelConfig",
        "fabric.config:ChannelConfig",
        "One named channel. The defaults are `membership` (control, reserved), `coordination` (control), "
        "`gossip` (control), `data` (bulk, 4 lanes, its own I/O thread, send HWM 128 messages and 128 MiB per lane, receive HWM 16) and `events` (broadcast).",
    ),
    ("TransportConfig", "fabric.config:TransportConfig", "ZeroMQ socket options and batching."),
    ("SecurityConfig", "fabric.config:SecurityConfig",
     "CURVE keys and the trust file (docs/security.md, \"CURVE and identity\"). Without keys: development "
     "mode on loopback, `insecure=True` for other addresses."),
    (
        "LimitsConfig",
        "fabric.config:LimitsConfig",
        "Bounds on what remote peers can make a node open, remember or spend (`NodeConfig.limits`; "
        "docs/security.md, \"Limits and abuse\", says what happens at each and which counter shows it).",
    ),
    (
        "MembershipConfig",
        "fabric.membership.config:MembershipConfig",
        "Membership of every overlay, in one class: the failure detector, the full-mesh fields, the record "
        "overlays' fields (hyparview, client-server, static) and, nested, `hyparview` and `plumtree` "
        "(docs/membership.md, docs/overlays.md). Presets: `MembershipConfig.local()` (`NodeConfig.local()` uses "
        "it), `.lan()` (the defaults), `.wan()`; each covers every field. `NodeConfig(overlay_config=...)` and "
        "`OverlayConfig` are deprecated aliases for one release (a DeprecationWarning; mapped onto `membership`, "
        "`tombstone_ttl` -> `record_tombstone_ttl`, `max_members` -> `max_records`).",
    ),
    ("HyParViewConfig", "fabric.membership.config:HyParViewConfig",
     "`membership.hyparview`: HyParView's views and walks (Partisan's defaults)."),
    ("PlumtreeConfig", "fabric.membership.config:PlumtreeConfig",
     "`membership.plumtree`: Plumtree's lazy push, grafting and caches."),
    (
        "StartSettings (foundation-node start)",
        "fabric.settings:StartSettings",
        "What `foundation-node start` runs besides the node's config: keys at the top level of the TOML file, "
        "`FOUNDATION_<KEY>` variables and flags, like the NodeConfig fields (docs/cli.md). `discovery` is a "
        "strategy spec (`dns:NAME`, `mdns`, `gossip`, `static:tcp://HOST:PORT`, `consul:SERVICE`, `k8s:SELECTOR`) "
        "and `discovery.OPTION` any field of that strategy's config (docs/discovery.md).",
    ),
]

HEADER = """# Configuration reference

Generated from the configuration dataclasses by `python -m fabric._configdoc`; do not edit by hand
(a test compares this file with the code). Every config is a frozen dataclass validated on construction:
a bad value raises `fabric.ConfigError` naming the field (durations must be finite: `nan` and `inf` are
refused everywhere; metadata is at most 16 KiB).

## Setting any field from TOML, the environment or flags

`foundation-node start` (`fabric.settings.load`) reaches every field below, nested ones included, by its
dotted path from `NodeConfig`; the loader walks these dataclasses, so a new field is settable at once:

| source | scalar field | nested config | one channel | metadata |
|---|---|---|---|---|
| TOML file | `call_timeout = 2.5` | `[membership]` `suspect_timeout = 2` (or `membership.hyparview.active_max = 8`) | `[channels.data]` `parallelism = 8` (`[[channels]]` replaces the list) | `[metadata]` `zone = "a"` |
| environment | `FOUNDATION_CALL_TIMEOUT=2.5` | `FOUNDATION_MEMBERSHIP__SUSPECT_TIMEOUT=2` | `FOUNDATION_CHANNELS__DATA__PARALLELISM=8` | `FOUNDATION_METADATA__ZONE=a` |
| flags | `--set call_timeout=2.5` | `--set membership.suspect_timeout=2` | `--set channels.data.parallelism=8` | `--meta zone=a` |

Precedence: preset < TOML file < environment < flags. Text values are converted to the field's type
(booleans `true/false/yes/no/on/off/1/0`, lists comma-separated, `none` clears an optional value); a bad
key or value is one line naming it and its source, e.g.
`FOUNDATION_MEMBERSHIP__SUSPECT_TIMEOUT: membership.suspect_timeout: expected a number, got 'soon'`.
"""


def _field_docs(cls: type) -> dict[str, str]:
    docs: dict[str, str] = {}
    # base classes first (a config may extend a shared one), the class last
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for stmt, nxt in zip(body, body[1:] + [None], strict=True):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                    docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        return "see below"
    if dataclasses.is_dataclass(value):
        return f"`{type(value).__name__}()`"
    if hasattr(value, "value") and not isinstance(value, int | float | str):
        value = value.value
    if callable(value):
        return "computed"
    return f"`{value!r}`"


def render() -> str:
    """The whole reference as markdown."""
    out = [HEADER]
    for title, target, intro in SECTIONS:
        module, _, name = target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        docs = _field_docs(cls)
        out.append(f"\n## {title}\n\n{intro}\n\n| field | type | default | meaning |\n|---|---|---|---|")
        for f in dataclasses.fields(cls):
            doc = docs.get(f.name)
            if doc is None:
                raise ValueError(f"{name}.{f.name} has no docstring")
            default = _default(f)
            if f.name == "name" and name == "NodeConfig":
                default = "`<hostname>-<pid>`"
            ftype = str(f.type).replace("|", r"\|")
            text = doc.replace("|", r"\|")
            out.append(f"| `{f.name}` | `{ftype}` | {default} | {text} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
