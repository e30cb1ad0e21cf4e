"""Configuration validation: bad values raise ConfigError naming the field; presets differ on purpose."""

from __future__ import annotations

import pytest

from fabric import (
    ChannelConfig,
    ChannelKind,
    ConfigError,
    InsecureBindError,
    NodeConfig,
    OnFull,
    TransportConfig,
)
from fabric.config import DEFAULT_CHANNELS


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"node_id": "not-a-uuid"}, "node_id"),
        ({"port": 70000}, "port"),
        ({"bind": "udp://127.0.0.1"}, "bind"),
        ({"call_timeout": 0}, "call_timeout"),
        ({"max_inflight_calls": 0}, "max_inflight_calls"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"channels": DEFAULT_CHANNELS[1:]}, "membership"),
        ({"channels": (*DEFAULT_CHANNELS, DEFAULT_CHANNELS[1])}, "unique"),
        ({"bind": "ipc:///tmp/" + "x" * 120}, "107"),
    ],
)
def test_bad_node_config_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        NodeConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"parallelism": 0}, "parallelism"),
        ({"parallelism": 300}, "parallelism"),
        ({"name": "has space"}, "name"),
        ({"send_timeout": 0}, "send_timeout"),
        ({"sndhwm": 0}, "sndhwm"),
        ({"max_message_size": 0}, "max_message_size"),
        ({"on_full": "explode"}, "explode"),
    ],
)
def test_bad_channel_config_names_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"name": "c", "kind": ChannelKind.CONTROL}
    with pytest.raises(ConfigError, match=field):
        ChannelConfig(**{**base, **kwargs})  # type: ignore[arg-type]


def test_broadcast_channels_have_one_lane_and_io_threads_are_checked() -> None:
    with pytest.raises(ConfigError, match="one lane"):
        ChannelConfig("b", ChannelKind.BROADCAST, parallelism=2)
    with pytest.raises(ConfigError, match="io_thread"):
        NodeConfig(transport=TransportConfig(io_threads=1))  # the data channel wants I/O thread 1
    with pytest.raises(ConfigError, match="reconnect_ivl_ms"):
        TransportConfig(reconnect_ivl_ms=-1)


def test_non_loopback_binds_need_insecure_until_security_lands() -> None:
    for bind in ("tcp://10.0.0.5", "tcp://0.0.0.0", "tcp://*", "tcp://example.com"):
        with pytest.raises(InsecureBindError, match="insecure"):
            NodeConfig(bind=bind)
        assert NodeConfig(bind=bind, insecure=True).insecure
    for bind in ("tcp://127.0.0.1", "tcp://localhost", "tcp://[::1]", "ipc:///tmp/x", "inproc://x"):
        NodeConfig(bind=bind)


def test_presets_and_strings_coerce() -> None:
    assert NodeConfig.local().transport.reconnect_ivl_max_ms < NodeConfig.lan().transport.reconnect_ivl_max_ms
    assert NodeConfig.lan().transport.heartbeat_ivl_ms == 0  # ZMTP heartbeats off: see TransportConfig
    assert NodeConfig.wan().call_timeout > NodeConfig.lan().call_timeout
    ch = ChannelConfig("c", "bulk", on_full="drop")  # type: ignore[arg-type]
    assert ch.kind is ChannelKind.BULK and ch.on_full is OnFull.DROP
    assert NodeConfig().channel("data").parallelism == 4
