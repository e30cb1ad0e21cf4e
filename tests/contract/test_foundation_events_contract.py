"""Events: the 1.x EventStore contract (reference §1.3), bounded storage, msgpack serialization."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgpack
import pytest

import foundation
from foundation import Event, FoundationApp, ManualClock


def test_new_event_defaults(fapp: FoundationApp, clock: ManualClock) -> None:
    e = fapp.events.new_event("test", {"k": 1})
    assert e.event_type == "test" and e.data == {"k": 1}
    assert e.event_id > 0 and e.timestamp == clock.monotonic_ms()
    assert isinstance(e.wall_time, datetime) and e.wall_time.tzinfo is not None
    assert e.node == "nonode@nohost" and isinstance(e.pid, int)
    assert uuid.UUID(e.correlation_id or "").version == 4 and e.parent_id is None
    assert fapp.events.new_event("test").correlation_id != e.correlation_id  # a new UUID per event
    assert fapp.events.new_event("test", None).data is None  # nil data is allowed


def test_new_event_opts_override(fapp: FoundationApp) -> None:
    e = fapp.events.new_event("t", 1, event_id=5, timestamp=7, correlation_id="c", parent_id=3, node="n", pid=9)
    assert (e.event_id, e.timestamp, e.correlation_id, e.parent_id, e.node, e.pid) == (5, 7, "c", 3, "n", 9)


@pytest.mark.parametrize("kwargs,code,etype", [
    ({"event_id": 0}, 2002, "type_mismatch"),
    ({"event_id": -4}, 2002, "type_mismatch"),
    ({"parent_id": 0}, 2002, "type_mismatch"),
    ({"timestamp": 1.5}, 2002, "type_mismatch"),
    ({"correlation_id": 5}, 2002, "type_mismatch"),
])
def test_new_event_validation(fapp: FoundationApp, kwargs: dict[str, object], code: int, etype: str) -> None:
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.events.new_event("t", {}, **kwargs)  # type: ignore[arg-type]
    assert (info.value.error.code, info.value.error.error_type, info.value.error.category) == (code, etype, "data")


def test_event_type_and_data_validation(fapp: FoundationApp) -> None:
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.events.new_event(5, {})  # type: ignore[arg-type]
    assert info.value.error.code == 2002
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.events.new_event("t", {"blob": b"x" * 1_000_001})
    assert (info.value.error.code, info.value.error.error_type, info.value.error.severity) == (
        2003, "data_too_large", "high")
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.events.new_event("t", {"f": object()})
    assert info.value.error.code == 2002
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.events.store(Event(event_type=None, event_id=1, timestamp=1))  # type: ignore[arg-type]
    assert (info.value.error.code, info.value.error.error_type) == (2001, "validation_failed")
    assert fapp.events.new_event("any_type_at_all", {}).event_type == "any_type_at_all"  # no allow-list


def test_store_get_roundtrip(fapp: FoundationApp) -> None:
    e = fapp.events.new_event("smoke_test", {"n": 1}, correlation_id="corr")
    eid = fapp.events.store(e)
    assert eid == e.event_id
    assert fapp.events.get(eid) == e
    assert fapp.events.query(event_type="smoke_test", limit=10) == [e]
    assert fapp.events.query({"event_type": "smoke_test", "limit": 10, "unknown": 1}) == [e]


def test_store_rejects_non_events(fapp: FoundationApp) -> None:
    with pytest.raises(foundation.DataError) as info:
        fapp.events.store({"event_type": "x"})  # type: ignore[arg-type]
    assert (info.value.error.code, info.value.error.error_type) == (2005, "invalid_argument")


def test_same_id_overwrites(fapp: FoundationApp) -> None:
    fapp.events.store(fapp.events.new_event("a", 1, event_id=42))
    fapp.events.store(fapp.events.new_event("b", 2, event_id=42))
    assert fapp.events.get(42).data == 2
    assert fapp.events.stats()["current_event_count"] == 1
    assert fapp.events.query(event_type="a") == []
    assert fapp.events.status()["next_id"] == 44  # next_id = max(next_id, id) + 1 on every store


def test_get_not_found_and_bad_id(fapp: FoundationApp) -> None:
    with pytest.raises(foundation.EventNotFound) as info:
        fapp.events.get(123)
    err = info.value.error
    assert (err.code, err.error_type, err.category, err.subcategory, err.severity) == (
        3001, "not_found", "data", "retrieval", "low")
    with pytest.raises(TypeError):
        fapp.events.get(0)


def test_store_batch_atomic(fapp: FoundationApp) -> None:
    good = [fapp.events.new_event("batch", i) for i in range(10)]
    assert fapp.events.store_batch(good) == [e.event_id for e in good]
    bad = Event(event_type="batch", event_id=-1, timestamp=1)
    more = [fapp.events.new_event("batch", i) for i in range(3)]
    with pytest.raises(foundation.ValidationFailed):
        fapp.events.store_batch([*more, bad])
    assert len(fapp.events.query(event_type="batch")) == 10
    assert fapp.telemetry.get_metrics()["foundation"]["events_stored"] == 10


def _seed(app: FoundationApp) -> list[Event]:
    specs = [("a", 30), ("b", 10), ("a", 20), ("c", 40), ("a", 10)]
    events = [app.events.new_event(t, i, timestamp=ts) for i, (t, ts) in enumerate(specs)]
    app.events.store_batch(events)
    return events


def test_query_semantics(fapp: FoundationApp) -> None:
    ev = _seed(fapp)
    q = fapp.events.query
    assert q() == ev  # insertion order when unsorted
    assert q(event_type="a") == [ev[0], ev[2], ev[4]]
    assert q(time_range=(10, 20), order_by="timestamp") == [ev[1], ev[4], ev[2]]  # inclusive, stable
    assert q(order_by="event_id") == sorted(ev, key=lambda e: e.event_id)
    assert q(order_by="timestamp", offset=1, limit=2) == [ev[4], ev[2]]
    assert q(event_type="zzz") == []
    with pytest.raises(ValueError):
        q(limit=0)
    with pytest.raises(ValueError):
        q(offset=-1)
    with pytest.raises(ValueError):
        q(order_by="size")


def test_time_range_recent_correlation(fapp: FoundationApp) -> None:
    ev = _seed(fapp)
    assert fapp.events.get_time_range(20, 40) == [ev[2], ev[0], ev[3]]
    # 1.x returned the *oldest* N (Q); fixed: the newest N, oldest of them first.
    assert fapp.events.get_recent(2) == [ev[0], ev[3]]
    chain = [fapp.events.new_event("step", i, correlation_id="flow", timestamp=100 - i) for i in range(3)]
    fapp.events.store_batch(chain)
    assert fapp.events.get_by_correlation("flow") == list(reversed(chain))
    assert fapp.events.get_correlation_chain("flow") == list(reversed(chain))
    assert fapp.events.get_by_correlation("none") == []


def test_prune_before_and_stats(fapp: FoundationApp) -> None:
    _seed(fapp)
    assert fapp.events.prune_before(20) == 2
    stats = fapp.events.stats()
    assert stats["events_stored"] == 5 and stats["events_pruned"] == 2 and stats["current_event_count"] == 3
    assert stats["memory_usage_estimate"] > 0
    status = fapp.events.status()
    assert status["status"] == "running" and status["event_count"] == 3


def test_hot_storage_max_events_drops_oldest(clock: ManualClock) -> None:
    app = foundation.start_app(config={"storage": {"hot": {"max_events": 3}}}, clock=clock)
    try:
        ids = [app.events.store(app.events.new_event("x", i)) for i in range(5)]
        assert [e.event_id for e in app.events.query()] == ids[2:]
        stats = app.events.stats()
        assert stats["events_dropped"] == 2 and stats["current_event_count"] == 3 and stats["max_events"] == 3
        with pytest.raises(foundation.EventNotFound):
            app.events.get(ids[0])
    finally:
        foundation.ServiceRegistry.cleanup_test_namespace(app.namespace)


def test_hot_storage_max_age_expires_on_clock(clock: ManualClock) -> None:
    cfg = {"storage": {"hot": {"max_age_seconds": 10, "prune_interval": 1000}}}
    app = foundation.start_app(config=cfg, clock=clock)
    try:
        app.events.store(app.events.new_event("old", 1))
        clock.advance(9_000)
        app.events.store(app.events.new_event("mid", 2))
        clock.advance(2_000)  # "old" is now 11 s old; the sweep runs on the next store
        app.events.store(app.events.new_event("new", 3))
        assert [e.event_type for e in app.events.query()] == ["mid", "new"]
        assert app.events.stats()["events_expired"] == 1
        clock.advance(20_000)
        assert app.events.expire_now() == 2
    finally:
        foundation.ServiceRegistry.cleanup_test_namespace(app.namespace)


def test_serialize_is_msgpack_and_roundtrips(fapp: FoundationApp) -> None:
    e = fapp.events.new_event("ser", {"list": [1, 2], "nested": {"x": None}, "b": b"\x00"}, parent_id=9)
    blob = fapp.events.serialize(e)
    assert msgpack.unpackb(blob)["v"] == 1  # plain msgpack, never pickle
    assert fapp.events.deserialize(blob) == e
    assert fapp.events.deserialize(fapp.events.serialize(e, compress=True)) == e
    assert fapp.events.serialized_size(e) == len(blob)
    for junk in (b"", b"\x80abc", msgpack.packb({"v": 2}), msgpack.packb({"v": 1, "e": {"event_type": 1}})):
        with pytest.raises(foundation.DataError) as info:
            fapp.events.deserialize(junk)
        assert (info.value.error.code, info.value.error.error_type) == (3102, "deserialization_failed")


def test_function_entry_exit_state_change(fapp: FoundationApp) -> None:
    entry = fapp.events.function_entry("Mod", "fun", 2, ["a", "b"], caller_line=10)
    assert entry.event_type == "function_entry"
    assert {"call_id", "module", "function", "arity", "args", "caller_module", "caller_function",
            "caller_line"} <= set(entry.data)
    big = fapp.events.function_entry("Mod", "fun", 1, ["x" * 20_000])
    assert big.data["args"]["truncated"] is True
    exit_ = fapp.events.function_exit("Mod", "fun", 2, entry.data["call_id"], "ok", 1500, "normal")
    assert exit_.data["duration_ns"] == 1500 and exit_.data["call_id"] == entry.data["call_id"]
    sc = fapp.events.state_change("srv", "handle_call", {"n": 1}, {"n": 1})
    assert sc.data["state_diff"] == "no_change"
    assert fapp.events.state_change("srv", "handle_call", 1, 2).data["state_diff"] == "changed"
    assert fapp.events.stats()["current_event_count"] == 0  # none of them stores anything


def test_store_unavailable_is_3000(fapp: FoundationApp) -> None:
    fapp.events.stop()
    with pytest.raises(foundation.ServiceUnavailable) as info:
        fapp.events.store(fapp.events.new_event("x", 1))
    assert info.value.error.code == 3000


def test_event_logic_helpers(fapp: FoundationApp) -> None:
    es = [fapp.events.new_event("x", i, correlation_id=c, timestamp=t)
          for i, (c, t) in enumerate([("a", 3), ("b", 1), ("a", 1)])]
    groups = foundation.EventStore.group_by_correlation(es)
    assert [e.timestamp for e in groups["a"]] == [1, 3]
    assert foundation.EventStore.extract_correlation_chain(es, "b") == [es[1]]
    assert foundation.EventStore.filter_by_time_range(es, 2, 3) == [es[0]]
    assert foundation.EventStore.transform_event_data(es[0], lambda d: d + 1).data == 1
