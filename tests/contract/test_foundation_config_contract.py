"""Config: the 1.x Configurable contract (reference §1.2) and the fixed quirks."""

from __future__ import annotations

import queue

import pytest

import foundation
from foundation import ConfigData, FoundationApp, as_result

EXPECTED_UPDATABLE = [
    ("ai", "planning", "sampling_rate"),
    ("ai", "planning", "performance_target"),
    ("capture", "processing", "batch_size"),
    ("capture", "processing", "flush_interval"),
    ("interface", "query_timeout"),
    ("interface", "max_results"),
    ("dev", "debug_mode"),
    ("dev", "verbose_logging"),
    ("dev", "performance_monitoring"),
    ("infrastructure", "rate_limiting", "enabled"),
    ("infrastructure", "circuit_breaker", "enabled"),
    ("infrastructure", "connection_pool", "enabled"),
    ("infrastructure", "rate_limiting", "cleanup_interval"),
]


def test_facade_exposes_every_configurable_callback() -> None:
    for name in ("get", "update", "validate", "updatable_paths", "reset", "available", "subscribe",
                 "unsubscribe", "safe_update", "get_with_default", "status", "initialize"):
        assert callable(getattr(foundation.Config, name)), name
        assert getattr(foundation.Config, name).__doc__, name


def test_get_returns_config_with_sections(fapp: FoundationApp) -> None:
    cfg = fapp.config.get()
    assert isinstance(cfg, ConfigData)
    assert "ai" in cfg and "dev" in cfg
    assert cfg["ai"]["provider"] == "mock"
    assert fapp.config.get([]) == cfg


def test_defaults_match_1x(fapp: FoundationApp) -> None:
    get = fapp.config.get
    assert get(["ai", "model"]) == "gpt-4"
    assert get(["ai", "api_key"]) is None  # a None value counts as found
    assert get(["storage", "hot"]) == {"max_events": 100_000, "max_age_seconds": 3600, "prune_interval": 60_000}
    assert get(["infrastructure", "rate_limiting", "default_rules", "file_operations"]) == {"scale": 1000, "limit": 10}
    assert get(["capture", "ring_buffer", "num_buffers"]) == "schedulers"


@pytest.mark.parametrize("path", [["nonexistent"], ["ai", "nonexistent"], ["ai", "provider", "deeper", "path"]])
def test_missing_path_is_config_path_not_found(fapp: FoundationApp, path: list[str]) -> None:
    with pytest.raises(foundation.ConfigPathNotFound) as info:
        fapp.config.get(path)
    assert info.value.error.error_type == "config_path_not_found"
    assert info.value.error.category == "config" and info.value.error.subcategory == "access"


def test_non_list_path_is_type_error(fapp: FoundationApp) -> None:
    with pytest.raises(TypeError):
        fapp.config.get("ai.provider")  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [["a"] * 51, ["ai", "__class__"], ["../etc"], ["etc/passwd"], ["x; DROP TABLE y"],
                                  ["<script>"], ["Elixir.System"], ["ai", 3]])
def test_path_security_is_1000(fapp: FoundationApp, path: list[object]) -> None:
    for call in (lambda: fapp.config.get(path), lambda: fapp.config.update(path, 1)):  # type: ignore[arg-type]
        with pytest.raises(foundation.SecurityViolation) as info:
            call()
        assert info.value.error.code == 1000


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [lambda: 1, b"x" * 1_000_001, "y" * 1_000_001, object(), _nested(22)])
def test_value_security_is_1005(fapp: FoundationApp, value: object) -> None:
    with pytest.raises(foundation.SecurityViolation) as info:
        fapp.config.update(["dev", "debug_mode"], value)
    assert info.value.error.code == 1005
    assert fapp.config.get(["dev", "debug_mode"]) is False


def test_updatable_paths_exactly_the_13(fapp: FoundationApp) -> None:
    assert fapp.config.updatable_paths() == EXPECTED_UPDATABLE


@pytest.mark.parametrize("path", [["ai", "provider"], ["ai", "api_key"], ["storage", "hot", "max_events"],
                                  ["capture", "ring_buffer", "size"]])
def test_forbidden_update_has_code_1401_and_context(fapp: FoundationApp, path: list[str]) -> None:
    with pytest.raises(foundation.ConfigUpdateForbidden) as info:
        fapp.config.update(path, "x")
    err = info.value.error
    assert err.code == 1401  # 1.x: nil (Q), fixed
    assert err.message and err.context["path"] == path
    assert [tuple(p) for p in err.context["allowed_paths"]] == EXPECTED_UPDATABLE
    assert (err.category, err.subcategory, err.severity) == ("config", "runtime", "medium")


def test_update_then_get(fapp: FoundationApp) -> None:
    fapp.config.update(["dev", "debug_mode"], True)
    assert fapp.config.get(["dev", "debug_mode"]) is True
    assert fapp.config.status()["updates_count"] == 1


@pytest.mark.parametrize("path,value,code,etype,severity", [
    (["ai", "planning", "sampling_rate"], 1.5, 1004, "range_error", "high"),
    (["ai", "planning", "sampling_rate"], -0.1, 1004, "range_error", "high"),
    (["ai", "planning", "performance_target"], -1, 1003, "constraint_violation", "high"),
    (["capture", "processing", "batch_size"], 0, 1001, "validation_failed", "medium"),
    (["interface", "query_timeout"], "soon", 1001, "validation_failed", "medium"),
    (["dev", "debug_mode"], "yes", 1001, "validation_failed", "medium"),
    (["infrastructure", "rate_limiting", "cleanup_interval"], True, 1001, "validation_failed", "medium"),
])
def test_invalid_update_codes(fapp: FoundationApp, path: list[str], value: object, code: int, etype: str,
                              severity: str) -> None:
    before = fapp.config.get()
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.config.update(path, value)
    err = info.value.error
    assert (err.code, err.error_type, err.severity, err.category, err.subcategory) == (
        code, etype, severity, "config", "validation")
    assert fapp.config.get() == before


def test_validate(fapp: FoundationApp) -> None:
    assert fapp.config.validate(fapp.config.get()) is None
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.config.validate(foundation.Config.new({"ai": "x"}))
    assert info.value.error.code == 1001
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.config.validate(foundation.Config.new({"ai": {"provider": "skynet"}}))
    assert info.value.error.code == 1002
    with pytest.raises(foundation.ValidationFailed) as info:
        fapp.config.validate(foundation.Config.new({"storage": {"warm": {"enable": True, "compression": "lz4"}}}))
    assert info.value.error.code == 1002
    with pytest.raises(TypeError):
        fapp.config.validate({})  # type: ignore[arg-type]


def test_subscribe_notification_shapes(fapp: FoundationApp) -> None:
    box = fapp.config.subscribe()
    assert fapp.config.subscribe(box) is box  # idempotent
    fapp.config.update(["dev", "verbose_logging"], True)
    assert box.get_nowait() == ("config_notification", ("config_updated", ("dev", "verbose_logging"), True))
    assert box.empty()
    fapp.config.reset()
    tag, (kind, cfg) = box.get_nowait()
    assert (tag, kind) == ("config_notification", "config_reset")
    assert isinstance(cfg, ConfigData) and cfg["dev"]["verbose_logging"] is False
    fapp.config.unsubscribe(box)
    fapp.config.update(["dev", "verbose_logging"], True)
    assert box.empty()
    assert fapp.config.status()["subscribers_count"] == 0


def test_dropped_mailbox_unsubscribes_itself(fapp: FoundationApp) -> None:
    fapp.config.subscribe(queue.Queue())
    assert fapp.config.status()["subscribers_count"] == 0


def test_failed_update_notifies_nobody(fapp: FoundationApp) -> None:
    box = fapp.config.subscribe()
    with pytest.raises(foundation.FoundationError):
        fapp.config.update(["dev", "debug_mode"], "no")
    assert box.empty()


def test_update_stores_event_and_counts(fapp: FoundationApp) -> None:
    fapp.config.update(["interface", "max_results"], 50)
    (event,) = fapp.events.query(event_type="config_updated")
    assert event.data["path"] == ["interface", "max_results"]
    assert event.data["new_value"] == 50
    assert event.data["previous_value"] == 1000  # 1.x stored the raw {:ok, 1000} tuple (Q), fixed
    assert fapp.telemetry.get_metrics()["foundation"]["config_updates"] == 1


def test_reset_restores_defaults_and_records(fapp: FoundationApp) -> None:
    fapp.config.update(["dev", "debug_mode"], True)
    fapp.config.reset()
    assert fapp.config.get(["dev", "debug_mode"]) is False
    assert len(fapp.events.query(event_type="config_reset")) == 1
    assert fapp.telemetry.get_metrics()["foundation"]["config_resets"] == 1


def test_reset_uses_1x_defaults_not_initialize_overrides(clock: foundation.ManualClock) -> None:
    app = foundation.start_app(config={"interface": {"max_results": 7}}, clock=clock)
    try:
        assert app.config.get(["interface", "max_results"]) == 7
        assert app.config.get(["interface", "query_timeout"]) == 10_000  # deep merge keeps siblings
        app.config.reset()
        assert app.config.get(["interface", "max_results"]) == 1000
    finally:
        foundation.ServiceRegistry.cleanup_test_namespace(app.namespace)


def test_initialize_rejects_invalid_config() -> None:
    with pytest.raises(foundation.ValidationFailed):
        foundation.start_app(config={"ai": {"planning": {"sampling_rate": 2}}})


def test_get_with_default_and_safe_update(fapp: FoundationApp) -> None:
    assert fapp.config.get_with_default(["nope"], "d") == "d"
    assert fapp.config.get_with_default("bad", 1) == 1  # type: ignore[arg-type]
    assert fapp.config.get_with_default(["dev", "debug_mode"], "d") is False
    kind, err = as_result(fapp.config.safe_update, "dev.debug_mode", True)
    assert kind == "error" and err.error_type == "invalid_path" and err.code == 9999
    for path in (["ai", "api_key"], ["storage", "encryption_key"], ["security"], ["system", "node_name"]):
        with pytest.raises(foundation.ConfigUpdateForbidden) as info:
            fapp.config.safe_update(path, "x")
        assert info.value.error.code == 1401
    fapp.config.safe_update(["dev", "debug_mode"], True)
    assert fapp.config.get(["dev", "debug_mode"]) is True


def test_reads_are_copies(fapp: FoundationApp) -> None:
    hot = fapp.config.get(["storage", "hot"])
    hot["max_events"] = 1
    assert fapp.config.get(["storage", "hot", "max_events"]) == 100_000
    assert fapp.config.get().to_dict()["storage"]["hot"]["max_events"] == 100_000


def test_stopped_service_is_unavailable(fapp: FoundationApp) -> None:
    assert fapp.config.available()
    fapp.config.stop()
    assert not fapp.config.available()
    with pytest.raises(foundation.ServiceUnavailable) as info:
        fapp.config.get(["dev"])
    assert info.value.error.code == 5000


def test_reset_state_only_in_test_mode(fapp: FoundationApp) -> None:
    fapp.config.update(["dev", "debug_mode"], True)
    fapp.config.reset_state()
    assert fapp.config.get(["dev", "debug_mode"]) is False
    with pytest.raises(foundation.SecurityViolation) as info:
        foundation.Config.reset_state()
    assert info.value.error.code == 5002


def test_diff_configs() -> None:
    old = foundation.Config.new()
    new = foundation.Config.new({"dev": {"debug_mode": True}})
    assert foundation.Config.diff(old, new) == {
        "dev": {"debug_mode": {"old": False, "new": True, "path": ["dev", "debug_mode"]}}}
