"""Hypothesis properties: config paths and update sequences, event queries vs a model, retry-delay rules."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import foundation
from foundation import Error, FoundationApp, ManualClock
from foundation._config import UPDATABLE_PATHS, validate_data


@pytest.fixture(scope="module")
def papp() -> Iterator[FoundationApp]:
    app = foundation.start_app(clock=ManualClock())
    yield app
    foundation.ServiceRegistry.cleanup_test_namespace(app.namespace)


# -- config -----------------------------------------------------------------------------------------

components = st.one_of(st.sampled_from(["ai", "dev", "planning", "provider", "storage", "hot", "debug_mode",
                                        "interface", "max_events", "__class__", "../x"]),
                       st.text(max_size=8), st.integers(), st.none())


@given(path=st.lists(components, max_size=60))
def test_get_on_any_path_returns_or_raises_foundation_error(papp: FoundationApp, path: list[Any]) -> None:
    try:
        papp.config.get(path)
    except foundation.SecurityViolation as exc:
        assert exc.error.code == 1000
        assert len(path) > 50 or any(not isinstance(c, str) or "__" in c or "../" in c for c in path)
    except foundation.ConfigPathNotFound as exc:
        assert exc.error.error_type == "config_path_not_found"


valid_values: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("ai", "planning", "sampling_rate"): st.floats(0, 1),
    ("ai", "planning", "performance_target"): st.floats(0, 1e6),
    ("capture", "processing", "batch_size"): st.integers(1, 10_000),
    ("capture", "processing", "flush_interval"): st.integers(1, 10_000),
    ("interface", "query_timeout"): st.integers(1, 10**6),
    ("interface", "max_results"): st.integers(1, 10**6),
    ("dev", "debug_mode"): st.booleans(),
    ("dev", "verbose_logging"): st.booleans(),
    ("dev", "performance_monitoring"): st.booleans(),
    ("infrastructure", "rate_limiting", "enabled"): st.booleans(),
    ("infrastructure", "circuit_breaker", "enabled"): st.booleans(),
    ("infrastructure", "connection_pool", "enabled"): st.booleans(),
    ("infrastructure", "rate_limiting", "cleanup_interval"): st.integers(1, 10**7),
}
any_value = st.one_of(st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.booleans(), st.text(max_size=3),
                      st.none())
update_op = st.sampled_from(list(UPDATABLE_PATHS)).flatmap(
    lambda p: st.tuples(st.just(p), st.one_of(valid_values[p], any_value)))


@settings(max_examples=60)
@given(ops=st.lists(update_op, max_size=25))
def test_update_sequences_keep_a_valid_config_matching_a_model(papp: FoundationApp, ops: list[Any]) -> None:
    papp.config.reset_state()
    box = papp.config.subscribe()
    model = papp.config.get().to_dict()
    succeeded = 0
    for path, value in ops:
        try:
            papp.config.update(path, value)
        except foundation.FoundationError as exc:
            assert exc.error.code in (1001, 1002, 1003, 1004)
            continue
        succeeded += 1
        section = model
        for key in path[:-1]:
            section = section[key]
        section[path[-1]] = value
    validate_data(papp.config.get())  # never left invalid
    assert papp.config.get().to_dict() == model
    notes = []
    while not box.empty():
        notes.append(box.get_nowait())
    assert len(notes) == succeeded  # every successful update notifies, failed ones never
    papp.config.unsubscribe(box)


@given(path=st.sampled_from(list(UPDATABLE_PATHS)))
def test_reset_restores_defaults_after_any_update(papp: FoundationApp, path: tuple[str, ...]) -> None:
    papp.config.reset_state()
    defaults = papp.config.get()
    try:
        papp.config.update(path, True if isinstance(papp.config.get(path), bool) else 1)
    except foundation.ValidationFailed:
        pass
    papp.config.reset()
    assert papp.config.get() == defaults


# -- events -----------------------------------------------------------------------------------------

event_spec = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 50), st.sampled_from(["x", "y", None]))
query_spec = st.fixed_dictionaries({}, optional={
    "event_type": st.sampled_from(["a", "b", "zz"]),
    "time_range": st.tuples(st.integers(-5, 55), st.integers(-5, 55)),
    "order_by": st.sampled_from(["event_id", "timestamp"]),
    "offset": st.integers(0, 30),
    "limit": st.integers(1, 30),
})


def model_query(events: list[Any], q: dict[str, Any]) -> list[Any]:
    found = list(events)
    if "event_type" in q:
        found = [e for e in found if e.event_type == q["event_type"]]
    if "time_range" in q:
        lo, hi = q["time_range"]
        found = [e for e in found if lo <= e.timestamp <= hi]
    if q.get("order_by"):
        found = sorted(found, key=lambda e: getattr(e, q["order_by"]))
    found = found[q.get("offset", 0):]
    return found[:q["limit"]] if "limit" in q else found


@settings(max_examples=80)
@given(specs=st.lists(event_spec, max_size=40), queries=st.lists(query_spec, min_size=1, max_size=5))
def test_queries_match_a_model(papp: FoundationApp, specs: list[Any], queries: list[dict[str, Any]]) -> None:
    papp.events.reset_state()
    events = [papp.events.new_event(t, i, timestamp=ts, correlation_id=c) for i, (t, ts, c) in enumerate(specs)]
    papp.events.store_batch(events)
    for q in queries:
        assert papp.events.query(**q) == model_query(events, q)
        assert papp.events.query(q) == model_query(events, q)
    for cid in ("x", "y"):
        chain = papp.events.get_by_correlation(cid)
        assert chain == sorted((e for e in events if e.correlation_id == cid), key=lambda e: e.timestamp)
    if events:
        recent = papp.events.get_recent(5)
        assert recent == sorted(events, key=lambda e: e.timestamp)[-5:]


@settings(max_examples=80)
@given(specs=st.lists(event_spec, max_size=40), queries=st.lists(query_spec, min_size=1, max_size=5),
       ids=st.lists(st.integers(1, 60), max_size=40), presort=st.booleans())
def test_queries_match_a_model_with_sorted_input_and_overwrites(papp: FoundationApp, specs: list[Any],
                                                                queries: list[dict[str, Any]], ids: list[int],
                                                                presort: bool) -> None:
    """Mostly-ordered input takes the no-sort fast path; explicit ids overwrite and break the id order."""
    papp.events.reset_state()
    if presort:
        specs = sorted(specs, key=lambda s: s[1])
    model: dict[int, Any] = {}
    for i, (t, ts, c) in enumerate(specs):
        eid = ids[i] if i < len(ids) else None
        event = papp.events.new_event(t, i, timestamp=ts, correlation_id=c, event_id=eid)
        papp.events.store(event)
        model.pop(event.event_id, None)  # an overwrite moves the id to the newest position
        model[event.event_id] = event
    events = list(model.values())
    for q in queries:
        assert papp.events.query(**q) == model_query(events, q)
    for n in (1, 3, 50):
        assert papp.events.get_recent(n) == sorted(events, key=lambda e: e.timestamp)[-n:]
    for cid in ("x", "y"):
        expected = sorted((e for e in events if e.correlation_id == cid), key=lambda e: e.timestamp)
        assert papp.events.get_by_correlation(cid) == expected


@settings(max_examples=50)
@given(specs=st.lists(event_spec, max_size=40), cut=st.integers(-5, 55))
def test_store_and_prune_counts_are_consistent(papp: FoundationApp, specs: list[Any], cut: int) -> None:
    papp.events.reset_state()
    for i, (t, ts, c) in enumerate(specs):
        papp.events.store(papp.events.new_event(t, i, timestamp=ts, correlation_id=c))
    pruned = papp.events.prune_before(cut)
    assert pruned == sum(1 for _, ts, _ in specs if ts < cut)
    stats = papp.events.stats()
    assert stats["current_event_count"] == len(specs) - pruned
    assert stats["events_stored"] == len(specs) and stats["events_pruned"] == pruned
    assert all(e.timestamp >= cut for e in papp.events.query())


@given(data=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.text(max_size=5),
                                   st.binary(max_size=5), st.floats(allow_nan=False)),
                         lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                 st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                         max_leaves=10),
       compress=st.booleans())
def test_serialize_roundtrip(papp: FoundationApp, data: Any, compress: bool) -> None:
    event = papp.events.new_event("ser", data)
    assert papp.events.deserialize(papp.events.serialize(event, compress=compress)) == event


# -- errors -----------------------------------------------------------------------------------------

error_types = st.one_of(st.sampled_from(["timeout", "network_error", "external_service_error", "internal_error",
                                         "invalid_config_value", "data_corruption", "service_unavailable",
                                         "range_error", "type_mismatch", "resource_exhausted",
                                         "authentication_failed"]), st.text(max_size=12))


@given(etype=error_types, attempt=st.integers(0, 10**6))
def test_retry_delay_rules(etype: str, attempt: int) -> None:
    err = Error.new(etype)
    delay = err.retry_delay(attempt)
    assert err.is_retryable() == (delay != math.inf)
    if err.retry_strategy == "exponential_backoff":
        assert delay == min(1000 * 2**min(attempt, 20), 30_000)
        assert err.retry_delay(attempt + 1) >= delay
    else:
        assert delay == {"fixed_delay": 1000, "immediate": 0, "no_retry": math.inf}[err.retry_strategy]
    assert 0 <= delay <= 30_000 or delay == math.inf
    if etype in ("timeout", "network_error"):
        assert err.retry_strategy == "exponential_backoff"
    elif err.severity == "critical":
        assert err.retry_strategy == "no_retry"


@given(etype=error_types, ctx=st.dictionaries(st.text(max_size=5), st.integers(), max_size=4))
def test_error_new_always_valid(etype: str, ctx: dict[str, int]) -> None:
    err = Error.new(etype, context=ctx)
    assert isinstance(err.code, int) and err.category in ("config", "system", "data", "external", "unknown")
    assert err.context == ctx and all(isinstance(a, str) for a in err.recovery_actions)
    kind, wrapped = Error.wrap_error(("error", err), "timeout")
    assert kind == "error" and wrapped.code == err.code and wrapped.context["wrapped_by"] == "timeout"


@given(base=st.integers(1, 1000), cap=st.integers(1, 10_000), attempts=st.integers(1, 8))
def test_utils_retry_backoff_schedule(base: int, cap: int, attempts: int) -> None:
    sleeps: list[float] = []
    with pytest.raises(foundation.MaxAttemptsExceeded):
        foundation.Utils.retry(lambda: ("error", "x"), max_attempts=attempts, base_delay=base, max_delay=cap,
                               sleep=sleeps.append)
    assert sleeps == [min(base * 2 ** (n - 1), cap) / 1000 for n in range(1, attempts)]
