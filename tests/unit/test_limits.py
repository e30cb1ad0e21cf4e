"""The bounded structures and checks behind NodeConfig.limits (issue 16, item 5): pure, no sockets."""

from __future__ import annotations

import logging
import threading

import pytest

from fabric import ChannelConfig, ChannelKind, ConfigError, LimitsConfig, Message, NodeConfig
from fabric.config import DEFAULT_CHANNELS
from fabric.node.limits import LruCounterMap, RateLimitedLog, TokenBuckets, is_client_route, origin_of
from fabric.node.peers import valid_endpoint
from fabric.node.subscriptions import Subscriptions
from fabric.topology.coordinator import (
    MAX_EPOCH,
    MAX_EPOCH_STEP,
    TopologyCoordinator,
    TopologyError,
    TopologyState,
)
from fabric.wire import Role, routing_id

OVERLAYS = ("full-mesh", "hyparview", "static")


def test_token_buckets_allow_the_burst_then_the_rate() -> None:
    tb = TokenBuckets(rate=10.0, burst=5, max_keys=100)
    assert [tb.allow("a", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert tb.allow("b", 0.0)  # another source has its own bucket
    assert not tb.allow("a", 0.05)  # half a token
    assert tb.allow("a", 0.1) and not tb.allow("a", 0.1)
    assert tb.allow("a", 100.0)  # refilled, capped at the burst
    assert tb.refused == 4


def test_token_buckets_keep_at_most_max_keys_sources() -> None:
    tb = TokenBuckets(rate=1.0, burst=1, max_keys=10)
    for i in range(1000):
        tb.allow(i, 0.0)
    assert len(tb) == 10 and tb.evictions == 990
    tb.forget(999)
    assert len(tb) == 9
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)


def test_lru_counter_map_forgets_what_was_not_used_recently() -> None:
    m: LruCounterMap[str, int] = LruCounterMap(4)  # generations of 2
    assert m.swap("a", 1) is None
    m.swap("b", 1)
    m.swap("c", 1)  # a and b go cold
    assert m.swap("a", 2) == 1  # a is used again: back in the hot generation
    m.swap("d", 1)  # c and a hot are full: the cold generation (b) is forgotten
    assert "b" not in m and "a" in m and "c" in m and m.evictions == 1
    assert m.get("a") == 2 and len(m) <= 4
    for i in range(100):
        m.swap(str(i), i)
        if i % 2:
            m.swap("a", i)  # used all the time: never forgotten
        assert len(m) <= 4
    assert "a" in m and m.evictions >= 100 - 4
    with pytest.raises(ValueError):
        LruCounterMap(1)


def test_origin_is_the_node_id_in_a_fabric_routing_id_or_the_link() -> None:
    nid = bytes(range(16))
    assert origin_of(routing_id(nid, 3, incarnation=5, generation=2), None) == nid
    assert origin_of(routing_id(nid, role=Role.CLIENT), None) == nid
    assert is_client_route(routing_id(nid, role=Role.CLIENT)) and not is_client_route(routing_id(nid))
    assert origin_of(b"\x00foreign-dealer-id-xxxxx", None) is None
    assert origin_of(None, nid) == nid
    assert origin_of(None, ("seed", "tcp://127.0.0.1:1")) is None
    assert origin_of(None, None) is None


@pytest.mark.parametrize(("endpoint", "ok"), [
    ("tcp://127.0.0.1:5555", True), ("tcp://[::1]:5555", True), ("ipc:///tmp/x.sock", True),
    ("inproc://n1-membership", True), ("mem://n1/membership", True),
    ("tcp://127.0.0.1", False), ("tcp://127.0.0.1:0", False), ("tcp://127.0.0.1:70000", False),
    ("tcp://:5555", False), ("tcp://a b:1", False), ("", False), ("garbage", False), ("ipc://" + "p" * 120, False),
    ("tcp://h:" + "1" * 300, False), (None, False), (5555, False),
])
def test_valid_endpoint(endpoint: object, ok: bool) -> None:
    assert valid_endpoint(endpoint) is ok


def test_limits_config_is_validated_and_gives_message_sizes_per_kind() -> None:
    limits = LimitsConfig()
    assert limits.max_message_size(ChannelKind.CONTROL) == 4 << 20
    assert limits.max_message_size(ChannelKind.BROADCAST) == 4 << 20
    assert limits.max_message_size(ChannelKind.BULK) == 64 << 20
    for bad in ({"max_peers": 0}, {"hello_rate": -1.0}, {"client_expiry": 0.0}, {"max_peer_lanes": 300}):
        with pytest.raises(ConfigError, match="limits."):
            LimitsConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="finite"):
        NodeConfig(limits=LimitsConfig(client_expiry=float("inf")))
    assert NodeConfig().limits == limits


def test_channel_specs_take_the_kind_default_unless_the_channel_sets_its_own() -> None:
    specs = {c.name: c.spec(LimitsConfig(control_max_message_size=1000)) for c in DEFAULT_CHANNELS}
    assert specs["membership"].max_message_size == 1000 and specs["coordination"].max_message_size == 1000
    assert specs["data"].max_message_size == 64 << 20
    assert specs["events"].max_subscription_bytes == 256 and specs["events"].max_subscriptions == 1024
    own = ChannelConfig("big", ChannelKind.CONTROL, max_message_size=1 << 30)
    assert own.spec().max_message_size == 1 << 30
    assert ChannelConfig("x", ChannelKind.CONTROL, max_message_size=-1).spec().max_message_size == -1


def test_epochs_stay_in_the_protocol_range() -> None:
    me, other = b"\x01" * 16, b"\x02" * 16
    coord = TopologyCoordinator(me, "full-mesh", OVERLAYS, cooldown=0.0)
    assert TopologyState.from_wire({"e": MAX_EPOCH + 1, "p": other, "o": "static"}, OVERLAYS) is None
    # a jump no sequence of switches makes is refused, and counted
    assert coord.merge({"e": MAX_EPOCH_STEP + 1, "p": other, "o": "static"}, 1.0) is None
    assert coord.counters["out_of_range"] == 1 and coord.state.epoch == 0
    assert coord.merge({"e": MAX_EPOCH_STEP, "p": other, "o": "static"}, 1.0) is not None
    # at the last epoch, a switch is refused instead of producing MAX_EPOCH + 1
    coord.state = TopologyState(MAX_EPOCH, other, "static")
    with pytest.raises(TopologyError, match="last"):
        coord.propose("full-mesh", 2.0)
    assert coord.state.epoch == MAX_EPOCH
    coord.state = TopologyState(MAX_EPOCH - 1, other, "static")
    assert coord.propose("full-mesh", 3.0).epoch == MAX_EPOCH


def test_a_subscription_drops_beyond_its_backlog_and_counts() -> None:
    dropped: list[str] = []
    subs = Subscriptions(lambda _c: None, backlog=3, backlog_bytes=1000, on_drop=dropped.append)
    gate = threading.Event()
    handled: list[bytes] = []

    def slow(msg: Message) -> None:
        gate.wait(10)
        handled.append(msg.payload)

    subs.add("c", slow, None, False)
    sub = subs.by_channel["c"][0]
    for i in range(10):
        subs.deliver("c", Message("c", b"s" * 16, bytes([i]), 0))
    assert sub.pending() == 3 and sub.dropped == 7 and dropped == ["c"] * 7
    assert subs.max_backlog() == 3
    gate.set()
    thread = sub.thread
    subs.close()
    assert thread is not None
    thread.join(10)
    assert handled == [b"\x00", b"\x01", b"\x02"]
    # bytes bound: one message larger than the byte budget is dropped
    subs2 = Subscriptions(lambda _c: None, backlog=100, backlog_bytes=10, on_drop=dropped.append)
    got: list[bytes] = []
    subs2.add("c", lambda m: got.append(m.payload), None, True)  # inline: never queued, never dropped
    subs2.deliver("c", Message("c", b"s" * 16, b"x" * 100, 0))
    assert got == [b"x" * 100]


def test_rate_limited_log_writes_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    rl = RateLimitedLog(logging.getLogger("fabric.test"), interval=1.0)
    with caplog.at_level(logging.WARNING, logger="fabric.test"):
        for i in range(20):
            rl.warning(i * 0.25, "refused %d", i)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5 and lines[0] == "refused 0" and "similar lines suppressed" in lines[1]


def test_limits_are_settable_like_every_nested_config() -> None:
    from fabric.settings import load

    s = load(None, environ={"FOUNDATION_LIMITS__MAX_PEERS": "7"},
             flags={"set": ("limits.client_expiry=30", "channels.coordination.max_message_size=1000")})
    assert s.node.limits.max_peers == 7 and s.node.limits.client_expiry == 30.0
    assert s.node.channel("coordination").max_message_size == 1000 and s.node.channel("data").max_message_size is None
