"""Every exception the Node (and the parts, the topology layer, the transports, the wire codec under it)
raises is exported from ``fabric``: found by walking the raise sites in the source, not a hand-kept list."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import fabric
from fabric import errors

ROOT = Path(fabric.__file__).parent
RAISING = [*sorted((ROOT / "node").glob("*.py")), *sorted((ROOT / "topology").glob("*.py")),
           *sorted((ROOT / "transport").glob("*.py")), *sorted((ROOT / "wire").glob("*.py")),
           ROOT / "client.py", ROOT / "blocking.py", ROOT / "_values.py", ROOT / "config.py"]


def raised_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id[:1].isupper():
                names.add(exc.id)
            elif isinstance(exc, ast.Attribute):
                names.add(exc.attr)
    return names


def test_every_exception_raised_under_the_node_is_exported_from_fabric() -> None:
    raised = set().union(*(raised_names(p) for p in RAISING))
    assert {"NodeStateError", "Unreachable", "JoinTimeout", "TopologyConflict", "ProcessSettingsConflict"} <= raised
    missing = sorted(n for n in raised if not hasattr(builtins, n) and n not in fabric.__all__)
    assert not missing, f"raised but not exported from fabric: {missing}"


def test_every_call_error_and_every_error_class_is_exported() -> None:
    assert all(cls.__name__ in fabric.__all__ for cls in errors.CALL_ERRORS.values())
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert all(cls.__name__ in fabric.__all__ for cls in classes)


def test_one_configuration_error_class() -> None:
    from fabric.membership.config import MembershipConfig  # noqa: F401  (imports the other packages)
    from fabric.testing.overlay_sim import NetFaults
    from fabric.topology import TopologyManager

    for bad in (lambda: TopologyManager(interval=0), lambda: NetFaults(drop=2.0), lambda: fabric.NodeConfig(overlay="x")):
        try:
            bad()
        except fabric.ConfigError:
            continue
        raise AssertionError("expected ConfigError")
