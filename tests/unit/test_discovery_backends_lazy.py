"""The optional discovery backends' libraries load when their strategy is built, never with the fabric."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fabric.discovery import MissingDependencyError, PluginLoadError, registry
from tests.support import python_env

BACKEND_LIBRARIES = {"zeroconf", "dns", "consul", "httpx"}


def test_importing_the_fabric_imports_no_backend_library() -> None:
    # A fresh interpreter: this one has imported them already through other tests.
    code = ("import fabric, fabric.discovery, sys; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(BACKEND_LIBRARIES)!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=python_env(), check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_building_a_strategy_imports_its_library() -> None:
    code = ("import sys; from fabric.discovery import registry; "
            "registry.create('mdns', {}); print('zeroconf' in sys.modules, 'httpx' in sys.modules); "
            "registry.create('kubernetes', {'service': 'x', 'namespace': 'y'}); print('httpx' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=python_env(), check=True)
    assert result.stdout.split() == ["True", "False", "True"], result.stdout


@pytest.mark.parametrize(("strategy", "options", "library", "package"), [
    ("mdns", {}, "zeroconf", "zeroconf"),
    ("dns", {"query": "example.test"}, "dns", "dnspython"),
    ("kubernetes", {"service": "x", "namespace": "y"}, "httpx", "httpx"),
    ("kubernetes", {"mode": "dns", "service": "x", "namespace": "y"}, "dns", "dnspython"),
    ("consul", {}, "httpx", "httpx"),
])
def test_a_missing_library_gives_one_line_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, strategy: str, options: dict[str, object], library: str, package: str
) -> None:
    for name in list(sys.modules):
        if name == library or name.startswith(library + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, library, None)  # makes `import <library>` fail as if not installed
    with pytest.raises(MissingDependencyError) as caught:
        registry.create(strategy, options)
    message = str(caught.value)
    assert "\n" not in message and f"pip install {package}" in message and repr(strategy) in message
    assert isinstance(caught.value, PluginLoadError)
