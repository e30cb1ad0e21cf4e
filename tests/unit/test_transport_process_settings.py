"""Process-wide transport settings (one libzmq context, one allocator per process): applied once, shown in
``stats()``, and a second node asking for different values gets ProcessSettingsConflict instead of being
silently ignored. Runs in a fresh interpreter (the settings are per process)."""

from __future__ import annotations

import json
import subprocess
import sys

import fabric
from tests.support import python_env

_PROBE = r"""
import asyncio, dataclasses, json
from fabric import Node, NodeConfig, ProcessSettingsConflict, TransportConfig

async def main():
    base = NodeConfig.local(name="a")
    a = Node(base)
    await a.start()
    same = Node(NodeConfig.local(name="b"))
    await same.start()  # the same settings: fine
    out = {"process": a.stats()["transport"]["process"]}
    for field, value in (("io_threads", 3), ("max_sockets", 1024), ("io_thread_nice", (0, 7)),
                         ("malloc_trim_threshold", 1 << 20)):
        cfg = dataclasses.replace(base, name="c", transport=dataclasses.replace(base.transport, **{field: value}))
        other = Node(cfg)
        try:
            await other.start()
            out[field] = "started"
            await other.stop()
        except ProcessSettingsConflict as exc:
            out[field] = str(exc)
    await same.stop()
    await a.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_a_second_node_asking_for_other_process_wide_settings_gets_a_clear_error() -> None:
    run = subprocess.run([sys.executable, "-c", _PROBE], env=python_env(), capture_output=True, text=True,
                         timeout=120, check=True)
    out = json.loads(run.stdout.strip().splitlines()[-1])
    context = out["process"]["context"]
    assert context["io_threads"] == 2 and context["max_sockets"] == 65536 and "malloc_trim_threshold" in context
    for field in ("io_threads", "max_sockets", "io_thread_nice", "malloc_trim_threshold"):
        assert out[field] != "started", field
        assert field in out[field] and "process-wide" in out[field], out[field]


def test_the_conflict_is_a_configuration_error_exported_from_fabric() -> None:
    assert issubclass(fabric.ProcessSettingsConflict, fabric.ConfigError)
    assert issubclass(fabric.ConfigError, ValueError)
