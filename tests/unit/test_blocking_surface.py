"""The blocking facades expose every public method and property of the async classes, with the same
names and parameters (coroutines become plain methods), so they cannot drift apart again."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from fabric import BlockingClient, BlockingNode, Client, Node

# start/stop: the facade owns the loop thread, so both also take a ``timeout`` for it (documented).
LIFECYCLE = {"start", "stop"}


def public(cls: type) -> dict[str, Any]:
    return {name: value for name, value in inspect.getmembers(cls) if not name.startswith("_")}


def parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize(("async_cls", "blocking_cls"), [(Node, BlockingNode), (Client, BlockingClient)])
def test_blocking_facade_has_every_public_name_with_the_same_parameters(async_cls: type, blocking_cls: type) -> None:
    source, facade = public(async_cls), public(blocking_cls)
    missing = sorted(set(source) - set(facade))
    assert not missing, f"{blocking_cls.__name__} lacks {missing}"
    for name, value in source.items():
        mirror = facade[name]
        if isinstance(value, property):
            assert isinstance(mirror, property), f"{name} is a property on {async_cls.__name__}"
            continue
        assert callable(mirror) and not inspect.iscoroutinefunction(mirror), f"{blocking_cls.__name__}.{name}"
        if name in LIFECYCLE:
            assert [p[0] for p in parameters(mirror)] == ["self", "timeout"]
            continue
        assert parameters(mirror) == parameters(value), f"{name}: {inspect.signature(mirror)} != {inspect.signature(value)}"


def test_the_client_is_not_a_node_and_has_no_member_only_methods() -> None:
    assert not issubclass(Client, Node)
    for name in ("add_service", "broadcast", "join", "members", "switch_topology"):
        assert not hasattr(Client, name)
