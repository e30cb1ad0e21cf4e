"""The Foundation examples run end to end as separate processes."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO, python_env


def test_quickstart_runs() -> None:
    out = subprocess.run([sys.executable, str(REPO / "examples" / "foundation_quickstart.py")], capture_output=True,
                         text=True, env=python_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "provider: mock"
    assert "notification: ('config_notification', ('config_updated', ('dev', 'debug_mode'), True))" in lines
    assert "chain: ['order_placed', 'order_paid']" in lines
    assert "refused: 1401 config_update_forbidden fixed_delay" in lines
    assert "protected call: charged" in lines
    assert any(line.startswith("orders_placed_total") for line in out.stdout.replace("'", "\n").splitlines())
    assert lines[-1] == "quickstart ok"


def test_explicit_apps_example_runs() -> None:
    out = subprocess.run([sys.executable, str(REPO / "examples" / "foundation_apps.py")], capture_output=True,
                         text=True, env=python_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "default app created at start: False"
    for expected in ("acme debug_mode: True", "globex debug_mode: False", "acme signups: ['acme']",
                     "acme error counters: ['external.timeout', 'system.runtime']",
                     "default app created by the tenants: False", "provider: mock", "default debug_mode: False",
                     "default signups: []", "default mailer: None", "default app created: True"):
        assert expected in lines, expected
    assert lines[-1] == "apps ok"
