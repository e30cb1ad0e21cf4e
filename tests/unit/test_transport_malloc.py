"""TransportConfig.malloc_trim_threshold: applied once per process on glibc, never over the application's own
malloc settings. Each case runs in a fresh interpreter (the setting is process-wide and applied once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fabric import TransportConfig
from fabric.errors import ConfigError
from tests.support import python_env

_PROBE = (
    "import json, sys; from fabric.transport.zmq import tune_malloc; "
    "first = tune_malloc(int(sys.argv[1])); again = tune_malloc(12345); print(json.dumps([first, again]))"
)


_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def _probe(threshold: int, **env: str) -> list[object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(threshold)],
        env={**{k: v for k, v in python_env().items() if k not in _MALLOC_ENV}, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: list[object] = json.loads(out.stdout)
    return result


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def test_applied_once_on_glibc_with_the_heap_serving_large_messages() -> None:
    first, again = _probe(TransportConfig().malloc_trim_threshold)
    if not _glibc():
        assert first is None and again is None
        return
    assert first == {"mmap_threshold": 32 * 1024 * 1024, "trim_threshold": 64 * 1024 * 1024}
    assert again == first  # once per process: a second node or transport does not re-apply


@pytest.mark.parametrize(
    "env",
    [{"MALLOC_TRIM_THRESHOLD_": "131072"}, {"MALLOC_MMAP_THRESHOLD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}],
)
def test_the_applications_own_malloc_setting_wins(env: dict[str, str]) -> None:
    assert _probe(64 * 1024 * 1024, **env) == [None, None]


def test_zero_leaves_the_allocator_alone_and_values_must_fit_a_c_int() -> None:
    assert _probe(0) == [None, None]
    with pytest.raises(ConfigError):
        TransportConfig(malloc_trim_threshold=2**31)
