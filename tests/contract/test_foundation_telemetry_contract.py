"""Telemetry: metric kinds, get_metrics shape, handlers, labels, retention, Prometheus export (§1.4)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import foundation
from foundation import FoundationApp, ManualClock, TelemetryConfig


def test_counter_sums_gauge_keeps_latest(fapp: FoundationApp) -> None:
    t = fapp.telemetry
    t.emit_counter(["app", "requests"], {"status": "ok"})
    t.emit_counter(["app", "requests"], {"status": "ok"}, value=4)
    t.emit_gauge(["app", "queue"], 7, {})
    t.emit_gauge(["app", "queue"], 3, {})
    m = t.get_metrics()
    assert m["app"]["requests"]["counter"] == 5 and m["app"]["requests"]["count"] == 2
    assert m["app"]["queue"]["gauge"] == 3
    assert "retrieved_at" in m


def test_histogram_keeps_real_buckets(fapp: FoundationApp) -> None:
    for v in (0.004, 0.5, 0.5, 3.0, 20_000.0):
        fapp.telemetry.emit_histogram(["rpc", "size"], v)
    h = fapp.telemetry.get_metrics()["rpc"]["size"]["histogram"]
    assert h["count"] == 5 and h["sum"] == pytest.approx(20_004.004)
    assert (h["min"], h["max"]) == (0.004, 20_000.0)
    assert h["buckets"][0.005] == 1 and h["buckets"][0.5] == 2 and h["buckets"][5.0] == 1
    assert h["buckets"][float("inf")] == 1  # 1.x averaged old and new values (Q), fixed


@pytest.mark.parametrize("name,value,meta", [([], 1, {}), ("x", 1, {}), ([1], 1, {}), (["x"], "1", {}),
                                             (["x"], 1, [("k", "v")])])
def test_histogram_argument_errors(fapp: FoundationApp, name: Any, value: Any, meta: Any) -> None:
    with pytest.raises(ValueError):
        fapp.telemetry.emit_histogram(name, value, meta)


def test_execute_and_folded_foundation_counters(fapp: FoundationApp) -> None:
    fapp.telemetry.execute(["a", "b", "c"], {"counter": 2, "note": "text"}, {"k": "v"})
    fapp.events.store(fapp.events.new_event("x", 1))
    fapp.config.update(["dev", "debug_mode"], True)
    m = fapp.telemetry.get_metrics()
    entry = m["a"]["b"]["c"]
    assert entry["counter"] == 2 and entry["measurements"] == {"counter": 2, "note": "text"}
    assert entry["metadata"] == {"k": "v"}
    assert m["foundation"]["events_stored"] == 2  # the config_updated event counts too
    assert m["foundation"]["config_updates"] == 1


def test_odd_measurements_never_break_export(fapp: FoundationApp) -> None:
    fapp.telemetry.execute(["odd"], {1: 2, "nan": float("nan"), "flag": True, "text": "x", "ok": 1.5}, {})
    assert fapp.telemetry.get_metrics()["odd"]["ok"] == 1.5
    families = {f.name for f in text_string_to_metric_families(fapp.telemetry.export_prometheus())}
    assert "odd_ok" in families and "odd_nan" not in families


def test_measure_and_span(fapp: FoundationApp, clock: ManualClock) -> None:
    def work() -> str:
        clock.advance(2)
        return "result"

    assert fapp.telemetry.measure(["job"], {"module": "m"}, work) == "result"
    with pytest.raises(KeyError):
        with fapp.telemetry.span(["job"], {}):
            clock.advance(1)
            raise KeyError("boom")
    m = fapp.telemetry.get_metrics()
    assert m["job"]["stop"]["duration"]["sum"] == 2_000_000  # ns on the app clock
    assert m["job"]["exception"]["duration"]["count"] == 1
    assert "KeyError" in m["job"]["exception"]["metadata"]["error"]
    assert fapp.telemetry.time_function("M", "f", lambda: 5) == 5
    assert m is not fapp.telemetry.get_metrics()
    assert fapp.telemetry.get_metrics()["foundation"]["function"]["execution"]["stop"]["count"] == 1


def test_performance_and_system_event(fapp: FoundationApp) -> None:
    fapp.telemetry.emit_performance("latency", 12.5)
    fapp.telemetry.emit_system_event("boot")
    m = fapp.telemetry.get_metrics()["foundation"]
    assert m["performance"]["latency"]["gauge"] == 12.5 and m["system"]["boot"]["counter"] == 1


def test_get_metrics_for_filters_flat_keys(fapp: FoundationApp) -> None:
    fapp.telemetry.emit_counter(["svc", "a"], {})
    fapp.telemetry.emit_counter(["svc", "b"], {})
    fapp.telemetry.emit_counter(["other"], {})
    # 1.x raised on any non-empty metrics (Q); fixed.
    assert set(fapp.telemetry.get_metrics_for(["svc"])) == {("svc", "a"), ("svc", "b")}


def test_only_allowlisted_metadata_become_labels(fapp: FoundationApp) -> None:
    for i in range(50):
        fapp.telemetry.emit_counter(["hits"], {"status": "ok", "request_id": i})
    text = fapp.telemetry.export_prometheus()
    lines = [line for line in text.splitlines() if line.startswith("hits_total")]
    assert lines == ['hits_total{status="ok"} 50.0']


def test_series_cap_overflow(clock: ManualClock) -> None:
    app = foundation.start_app(clock=clock, telemetry_config=TelemetryConfig(max_series_per_metric=3))
    try:
        for i in range(10):
            app.telemetry.emit_counter(["per_path"], {"path": f"p{i}"})
        entry = app.telemetry.get_metrics()["per_path"]
        assert entry["counter"] == 10 and entry["overflowed"] == 7
        samples = _samples(app.telemetry.export_prometheus(), "per_path")
        assert len(samples) == 4 and samples[(("overflow", "true"), ("path", ""))] == 7
    finally:
        foundation.ServiceRegistry.cleanup_test_namespace(app.namespace)


def test_retention_uses_ms_on_injected_clock(fapp: FoundationApp, clock: ManualClock) -> None:
    fapp.telemetry.emit_counter(["stale"], {})
    clock.advance(200_000)
    fapp.telemetry.emit_counter(["fresh"], {})
    fapp.telemetry.cleanup_now()
    m = fapp.telemetry.get_metrics()
    assert "stale" in m and "fresh" in m  # 1.x compared native units to ms and wiped both (Q)
    clock.advance(150_000)
    fapp.telemetry.cleanup_now()
    m = fapp.telemetry.get_metrics()
    assert "stale" not in m and "fresh" in m


def test_handlers_erlang_telemetry_style(fapp: FoundationApp) -> None:
    seen: list[tuple[Any, ...]] = []
    fapp.telemetry.attach("h1", ["db", "query"], lambda n, m, md, cfg: seen.append((n, dict(m), dict(md), cfg)),
                          config={"c": 1})
    with pytest.raises(foundation.FoundationError):
        fapp.telemetry.attach("h1", ["db", "query"], lambda *a: None)
    fapp.telemetry.execute(["db", "query"], {"duration": 5}, {"table": "t"})
    fapp.telemetry.execute(["db", "other"], {"duration": 5}, {})
    assert seen == [(("db", "query"), {"duration": 5}, {"table": "t"}, {"c": 1})]
    assert [h["id"] for h in fapp.telemetry.list_handlers(["db"])] == ["h1"]
    fapp.telemetry.detach("h1")
    with pytest.raises(foundation.FoundationError):
        fapp.telemetry.detach("h1")


def test_failing_handler_is_detached_not_propagated(fapp: FoundationApp) -> None:
    calls: list[int] = []

    def bad(*_: Any) -> None:
        calls.append(1)
        raise RuntimeError("handler bug")

    fapp.telemetry.attach_many("bad", [["x"], ["y"]], bad)
    fapp.telemetry.emit_counter(["x"], {})
    fapp.telemetry.emit_counter(["y"], {})
    assert calls == [1]
    assert fapp.telemetry.status()["handler_failures"] == 1
    assert fapp.telemetry.get_metrics()["y"]["counter"] == 1


def test_attach_handlers_1x(fapp: FoundationApp) -> None:
    seen: list[Any] = []
    fapp.telemetry.attach_handlers([["a"], ["b"]], lambda n, *_: seen.append(n))
    fapp.telemetry.attach_handlers([["a"]])  # idempotent
    fapp.telemetry.emit_counter(["a"], {})
    assert seen == [("a",)]
    assert fapp.telemetry.status()["handlers_count"] == 2
    fapp.telemetry.detach_handlers([["a"], ["b"], ["never"]])
    assert fapp.telemetry.status()["handlers_count"] == 0


def test_stopped_telemetry_is_a_silent_noop(fapp: FoundationApp) -> None:
    fapp.telemetry.stop()
    fapp.telemetry.emit_counter(["x"], {})
    fapp.telemetry.execute(["x"], {"gauge": 1}, {})
    with pytest.raises(foundation.ServiceUnavailable):
        fapp.telemetry.get_metrics()


def _samples(text: str, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            return {tuple(sorted(s.labels.items())): s.value for s in fam.samples}
    raise AssertionError(f"{family} not exported")


def test_prometheus_output_parses_back(fapp: FoundationApp) -> None:
    t = fapp.telemetry
    t.emit_counter(["http", "requests"], {"status": "200", "path": "/a"}, value=3)
    t.emit_counter(["http", "requests"], {"status": "500"})
    t.emit_gauge(["pool", "size"], 12, {"pool": "db"})
    for v in (0.003, 0.2, 7.0):
        t.emit_histogram(["payload"], v, {"service": "api"})
    t.measure(["job"], {}, lambda: None)
    t.execute(["odd-name", "9x"], {"latency": 4.5, "counter": 1}, {})
    text = t.export_prometheus()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["http_requests"].type == "counter"
    assert _samples(text, "http_requests") == {
        (("path", "/a"), ("status", "200")): 3.0, (("path", ""), ("status", "500")): 1.0}
    assert families["pool_size"].type == "gauge"
    hist = families["payload"]
    assert hist.type == "histogram"
    by_name = {(s.name, s.labels.get("le")): s.value for s in hist.samples}
    assert by_name[("payload_count", None)] == 3
    assert by_name[("payload_sum", None)] == pytest.approx(7.203)
    assert by_name[("payload_bucket", "0.005")] == 1 and by_name[("payload_bucket", "+Inf")] == 3
    assert families["job_stop_duration"].type == "histogram"
    assert families["odd_name_9x_latency"].type == "gauge" and families["odd_name_9x"].type == "counter"


def test_prometheus_collector_for_own_registry(fapp: FoundationApp) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(fapp.telemetry.collector())
    fapp.telemetry.emit_counter(["later"], {})  # collected at scrape time
    assert b"later_total 1.0" in generate_latest(registry)


def test_telemetry_config_validation() -> None:
    with pytest.raises(ValueError):
        TelemetryConfig(histogram_buckets=(2.0, 1.0))
    with pytest.raises(ValueError):
        TelemetryConfig(max_series_per_metric=0)
    assert TelemetryConfig.wan().max_series_per_metric < TelemetryConfig.lan().max_series_per_metric
