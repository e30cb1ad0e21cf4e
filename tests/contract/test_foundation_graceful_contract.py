"""Config/Events graceful degradation (§1.9): cached reads, pending updates, buffered stores."""

from __future__ import annotations

import msgpack
import pytest

import foundation
from foundation import FoundationApp, ManualClock


def test_config_reads_fall_back_to_cache(fapp: FoundationApp, clock: ManualClock) -> None:
    gd = fapp.config.GracefulDegradation
    gd.initialize_fallback_system()
    assert gd.get_with_fallback(["ai", "provider"]) == "mock"
    fapp.config.stop()
    assert gd.get_with_fallback(["ai", "provider"]) == "mock"
    with pytest.raises(foundation.FoundationError) as info:
        gd.get_with_fallback(["dev", "debug_mode"])
    assert info.value.error.error_type == "config_unavailable"
    assert isinstance(info.value.__cause__, foundation.ServiceUnavailable)
    clock.advance(300_001)
    assert gd.cleanup_expired_cache() == 1
    assert gd.get_cache_stats()["config_cache_entries"] == 0


def test_pending_updates_are_replayed(fapp: FoundationApp) -> None:
    gd = fapp.config.GracefulDegradation
    fapp.config.stop()
    with pytest.raises(foundation.ServiceUnavailable):
        gd.update_with_fallback(["dev", "debug_mode"], True)
    assert gd.get_cache_stats()["pending_update_entries"] == 1
    assert gd.retry_pending_updates() == 0  # still down: kept
    fapp.config.initialize()
    assert gd.retry_pending_updates() == 1
    assert fapp.config.get(["dev", "debug_mode"]) is True
    assert gd.get_cache_stats()["pending_update_entries"] == 0
    with pytest.raises(foundation.ValidationFailed):  # rejected updates are not remembered
        gd.update_with_fallback(["dev", "debug_mode"], "x")
    assert gd.get_cache_stats()["pending_update_entries"] == 0


def test_events_safe_helpers(fapp: FoundationApp) -> None:
    gd = fapp.events.GracefulDegradation
    bad = gd.new_event_safe("weird", {"f": object()})
    assert bad.data["fallback"] is True and bad.data["reason"] == "type_mismatch"
    ok = gd.new_event_safe("fine", {"a": 1})
    assert fapp.events.deserialize(gd.serialize_safe(ok)) == ok
    assert gd.deserialize_safe(b"\xc1junk")["fallback"] == "undecodable"  # type: ignore[index]
    assert gd.deserialize_safe(msgpack.packb({"fallback": "json", "json": "{}"})) == {"fallback": "json",
                                                                                      "json": "{}"}
    assert gd.query_safe(event_type="fine") == ([], None)
    fapp.events.stop()
    assert gd.store_safe(ok) is None and gd.buffered() == 1
    events, warning = gd.query_safe(event_type="fine")
    assert events == [] and warning == "query failed: service_unavailable"
    fapp.events.initialize()
    assert gd.retry_buffered() == 1 and gd.buffered() == 0
    assert fapp.events.get(ok.event_id) == ok


def test_event_buffer_is_bounded(fapp: FoundationApp) -> None:
    gd = fapp.events.GracefulDegradation
    fapp.events.stop()
    for i in range(130):
        gd.store_safe(fapp.events.new_event("b", i))
    assert gd.buffered() == 100 and gd.buffer_dropped == 30
    fapp.events.initialize()
    assert gd.retry_buffered() == 100
    assert [e.data for e in fapp.events.query()] == list(range(30, 130))
