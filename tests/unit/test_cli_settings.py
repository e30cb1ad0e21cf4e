"""fabric.settings: TOML < environment < flags, type coercion, errors that name the field and its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabric.config import NodeConfig, OnFull
from fabric.settings import SettingsError, StartSettings, check_endpoint, load


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "node.toml"
    p.write_text(text)
    return p


def test_defaults_are_the_lan_preset_without_http() -> None:
    s = load(environ={})
    assert s.node.bind == "tcp://127.0.0.1" and s.http_port is None and s.seeds == ()


def test_file_env_flags_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "file"\nport = 7100\ncall_timeout = 2\nseeds = ["tcp://127.0.0.1:7000"]\n'
                           '[transport]\nlinger_ms = 10\n[metadata]\nzone = "a"\n')
    s = load(path, environ={})
    assert (s.node.name, s.node.port, s.node.call_timeout, s.node.transport.linger_ms) == ("file", 7100, 2.0, 10)
    assert s.node.metadata == {"zone": "a"} and s.seeds == ("tcp://127.0.0.1:7000",)
    env = {"FOUNDATION_NAME": "env", "FOUNDATION_PORT": "7200", "FOUNDATION_TRANSPORT__LINGER_MS": "20",
           "FOUNDATION_SEEDS": "tcp://127.0.0.1:1, tcp://127.0.0.1:2", "FOUNDATION_INSECURE": "no"}
    s = load(path, environ=env)
    assert (s.node.name, s.node.port, s.node.transport.linger_ms) == ("env", 7200, 20)
    assert s.seeds == ("tcp://127.0.0.1:1", "tcp://127.0.0.1:2") and s.node.insecure is False
    s = load(path, environ=env, flags={"name": "flag", "port": None, "seeds": ("tcp://127.0.0.1:3",),
                                        "set": ("transport.linger_ms=30",), "metadata": ("zone=b",)})
    assert (s.node.name, s.node.port, s.node.transport.linger_ms) == ("flag", 7200, 30)
    assert s.seeds == ("tcp://127.0.0.1:3",) and s.node.metadata == {"zone": "b"}


def test_config_file_from_environment_and_presets(tmp_path: Path) -> None:
    path = write(tmp_path, 'preset = "wan"\nname = "w"\n')
    s = load(environ={"FOUNDATION_CONFIG": str(path)})
    wan = NodeConfig.wan()
    assert s.node.name == "w" and s.node.call_timeout == wan.call_timeout and s.node.transport == wan.transport


def test_channels_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[[channels]]\nname = "membership"\nkind = "control"\nreserved = true\nbatching = false\n'
                           '[[channels]]\nname = "jobs"\nkind = "bulk"\nparallelism = 2\non_full = "drop"\n')
    s = load(path, environ={})
    assert [c.name for c in s.node.channels] == ["membership", "jobs"]
    assert s.node.channel("jobs").on_full is OnFull.DROP


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name = [\n", "invalid TOML"),
        ('port = "x"\n', "config file"),
        ("port = 70000\n", "port: 70000 leaves no room"),
        ("colour = 1\n", "colour: unknown setting"),
        ("[transport]\nwarp = 1\n", "transport.warp: unknown setting"),
        ("[transport]\nlinger_ms = -1\n", "transport.linger_ms: must be >= 0"),
        ('seeds = "x"\n', "seeds: 'x' is not an endpoint"),
        ("http_port = 99999\n", "http_port: must be 0..65535"),
        ('preset = "moon"\n', "preset: expected one of local, lan, wan"),
        ('[[channels]]\nname = "membership"\nkind = "teleport"\n', "channels.membership"),
        ('[[channels]]\nname = "x"\nkind = "bulk"\nspeed = 1\n', "channels.x.speed: unknown setting"),
        ("insecure = 3\n", "insecure: expected true or false"),
    ],
)
def test_bad_file_names_the_field(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(SettingsError) as err:
        load(write(tmp_path, text), environ={})
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(SettingsError, match="config file /nonexistent/x.toml"):
        load("/nonexistent/x.toml", environ={})


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"FOUNDATION_PORT": "seven"}, "FOUNDATION_PORT: port: expected an integer, got 'seven'"),
        ({"FOUNDATION_CALL_TIMEOUT": "soon"}, "FOUNDATION_CALL_TIMEOUT: call_timeout: expected a number"),
        ({"FOUNDATION_NAME": "has space"}, "FOUNDATION_NAME: name:"),
        ({"FOUNDATION_WHATEVER": "1"}, "FOUNDATION_WHATEVER: whatever: unknown setting"),
        ({"FOUNDATION_CONNECT_TIMEOUT": "0"}, "FOUNDATION_CONNECT_TIMEOUT: connect_timeout: must be > 0"),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as err:
        load(environ=env)
    assert needle in str(err.value)


def test_bad_set_flag() -> None:
    with pytest.raises(SettingsError, match="--set 'linger': use KEY=VALUE"):
        load(environ={}, flags={"set": ("linger",)})
    with pytest.raises(SettingsError, match="--set transport.linger_ms: transport.linger_ms: expected an integer"):
        load(environ={}, flags={"set": ("transport.linger_ms=lots",)})


def test_operator_variables_are_not_settings() -> None:
    s = load(environ={"FOUNDATION_NODE": "tcp://127.0.0.1:1", "UNRELATED": "x"})
    assert isinstance(s, StartSettings)


@pytest.mark.parametrize(
    "endpoint, parsed",
    [
        ("tcp://127.0.0.1:7946", ("tcp", "127.0.0.1", 7946)),
        ("tcp://[::1]:7946", ("tcp", "::1", 7946)),
        ("ipc:///tmp/x", ("ipc", "/tmp/x", None)),
        ("inproc://n", ("inproc", "n", None)),
    ],
)
def test_check_endpoint(endpoint: str, parsed: tuple[str, str, int | None]) -> None:
    assert check_endpoint(endpoint, resolve=False) == parsed


@pytest.mark.parametrize("bad", ["127.0.0.1:7946", "tcp://127.0.0.1", "tcp://:7946", "tcp://h:0", "tcp://h:99999", "udp://h:1", "tcp://"])
def test_check_endpoint_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        check_endpoint(bad, resolve=False)


@pytest.mark.parametrize(
    "spec, strategy, field, value",
    [
        ("dns:nodes.example", "dns", "query", "nodes.example"),
        ("static:tcp://127.0.0.1:7001,tcp://127.0.0.1:7002", "static", "seeds", ("tcp://127.0.0.1:7001", "tcp://127.0.0.1:7002")),
        ("k8s:app=fabric", "kubernetes", "label_selector", "app=fabric"),
        ("consul:orders", "consul", "service", "orders"),
        ("gossip", "gossip", "group", "233.252.1.32"),
        ("MDNS", "mdns", "announce", True),
    ],
)
def test_discovery_specs(spec: str, strategy: str, field: str, value: object) -> None:
    settings = load(environ={}, flags={"discovery": spec})
    assert settings.discovery == strategy
    assert getattr(settings.discovery_config, field) == value


def test_discovery_from_each_source_and_a_later_strategy_drops_earlier_options(tmp_path: Path) -> None:
    path = write(tmp_path, '[discovery]\nstrategy = "dns"\nquery = "a.example"\nport = 7000\n')
    assert load(path, environ={}).discovery_config.port == 7000
    env = {"FOUNDATION_DISCOVERY__PORT": "7100"}
    assert load(path, environ=env).discovery_config.port == 7100
    flags = {"discovery_option": ("port=7200",)}
    assert load(path, environ=env, flags=flags).discovery_config.port == 7200
    other = load(path, environ={}, flags={"discovery": "gossip"})  # dns's query/port do not leak into gossip
    assert other.discovery == "gossip" and other.discovery_config.port == 45892
