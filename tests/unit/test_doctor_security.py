"""`foundation-node doctor` says which security mode a node runs in and flags insecure mode."""

from __future__ import annotations

import pytest

from fabric import NodeConfig
from foundation_cli.doctor import DoctorReport, _check_security


@pytest.mark.parametrize("config, level, words", [
    ({"security": "insecure", "insecure": True}, "warn", "unauthenticated"),
    ({"security": "curve"}, "ok", "CURVE"),
    ({"security": "development", "insecure": True}, "ok", "development"),
    ({"insecure": True}, "warn", "unauthenticated"),  # a node from before security modes
])
def test_doctor_reports_the_security_mode(config: dict[str, object], level: str, words: str) -> None:
    report = DoctorReport("test")
    _check_security(report, {"config": config})
    [finding] = [f for f in report.findings if f.check == "security"]
    assert finding.level == level and words in finding.message


def test_the_admin_status_carries_the_mode_doctor_reads() -> None:
    assert NodeConfig.local().security_mode == "development"
    assert NodeConfig(bind="tcp://0.0.0.0", insecure=True).security_mode == "insecure"
