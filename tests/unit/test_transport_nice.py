"""TransportConfig.io_thread_nice: the bulk I/O thread runs at a lower CPU priority than the control one.

Each case runs in a fresh interpreter: the setting is process-wide and applied when the process's libzmq
context is created. The probe reads the real per-thread nice values from /proc (Linux).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fabric import TransportConfig
from fabric.errors import ConfigError
from fabric.settings import SettingsError, load
from tests.support import python_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux-only")

_PROBE = """
import json, os, sys, time
from fabric import TransportConfig
from fabric.transport import zmq as fz
config = TransportConfig(**json.loads(sys.argv[1]))
fz.shared_context(config)
fz.shared_context(config)  # a second user of the context changes nothing
# libzmq starts its threads with the first socket (shared_context opens one when it renices any)
want = {f"7/ZMQbg/IO/{i}" for i in range(config.io_threads)} if any(config.io_thread_nice[:config.io_threads]) else set()
for _ in range(500):  # bounded: each libzmq thread names itself as it starts, a moment after the context
    threads = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                threads[f.read().strip()] = os.getpriority(os.PRIO_PROCESS, int(tid))
        except OSError:
            continue
    if want <= set(threads):
        break
    time.sleep(0.002)
print(json.dumps({"applied": fz.io_thread_nice_applied, "threads": threads, "base": os.getpriority(os.PRIO_PROCESS, 0)}))
"""


def _probe(**config: object) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(config)], env=python_env(), capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_default_lowers_only_the_bulk_io_thread() -> None:
    r = _probe()
    base = r["base"]
    assert isinstance(base, int)
    threads = r["threads"]
    assert isinstance(threads, dict)
    assert threads["7/ZMQbg/IO/0"] == base  # control channels: unchanged
    assert threads["7/ZMQbg/IO/1"] == min(19, base + 5)  # bulk channels
    if base + 5 <= 19:
        assert r["applied"] == {"1": base + 5}


def test_zero_and_missing_threads_change_nothing() -> None:
    r = _probe(io_thread_nice=[0])
    assert r["applied"] == {}
    assert isinstance(r["threads"], dict) and set(r["threads"].values()) == {r["base"]}
    # One I/O thread: the default's entry for thread 1 has no thread to apply to.
    r = _probe(io_threads=1)
    assert r["applied"] == {} and "7/ZMQbg/IO/1" not in r["threads"]  # type: ignore[operator]


def test_values_are_validated() -> None:
    for bad in ((0, 20), (-1,), (0, 2.5)):
        with pytest.raises(ConfigError, match="io_thread_nice"):
            TransportConfig(io_thread_nice=bad)  # type: ignore[arg-type]
    assert TransportConfig(io_thread_nice=(3, 19)).io_thread_nice == (3, 19)


def test_settings_accept_a_list_or_comma_separated_text(tmp_path: Path) -> None:
    s = load(environ={"FOUNDATION_TRANSPORT__IO_THREAD_NICE": "0, 7"})
    assert s.node.transport.io_thread_nice == (0, 7)
    path = tmp_path / "f.toml"
    path.write_text("[transport]\nio_thread_nice = [1, 2]\n")
    assert load(path, environ={}).node.transport.io_thread_nice == (1, 2)
    with pytest.raises(SettingsError, match="io_thread_nice"):
        load(environ={"FOUNDATION_TRANSPORT__IO_THREAD_NICE": "0,high"})
    with pytest.raises(SettingsError, match="io_thread_nice"):
        load(environ={"FOUNDATION_TRANSPORT__IO_THREAD_NICE": "0,25"})
