"""foundation.attach(node) and foundation.BEAM.Distribution.switch_topology on a real cluster."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import foundation
from fabric import BlockingNode, Node, NodeConfig


def test_distribution_switch_topology_through_the_foundation_api() -> None:
    app = foundation.start_app()
    with pytest.raises(foundation.FoundationError) as info:
        foundation.BEAM.Distribution.current_topology(app=app)
    assert info.value.error_type == "service_unavailable"
    nodes = [BlockingNode(NodeConfig.local(name=f"f{i}", topology_cooldown=0.5)) for i in range(3)]
    for node in nodes:
        node.start()
    try:
        for node in nodes[1:]:
            node.connect(nodes[0].seed)
        deadline = time.monotonic() + 20
        while any(len(n.node.alive_members()) < 3 for n in nodes):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        foundation.attach(nodes[1], app=app)
        assert app.node_name == "f1"
        assert foundation.BEAM.Distribution.current_topology(app=app)["overlay"] == "full-mesh"
        topo = foundation.BEAM.Distribution.switch_topology("full-mesh", "hyparview", app=app)
        assert topo["overlay"] == "hyparview" and topo["epoch"] == 1
        deadline = time.monotonic() + 20
        while any(n.node.overlay != "hyparview" for n in nodes):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(foundation.FoundationError) as conflict:  # compare-and-set against a stale view
            foundation.BEAM.Distribution.switch_topology("full-mesh", "static", app=app)
        assert conflict.value.error_type == "invalid_input" and "TopologyConflict" in str(conflict.value)
        foundation.detach(app=app)
        assert app.node is None
        with pytest.raises(foundation.FoundationError) as detached:
            foundation.BEAM.Distribution.current_topology(app=app)
        assert detached.value.error_type == "service_unavailable"
    finally:
        for node in nodes:
            node.stop()
        foundation.ServiceRegistry.cleanup_test_namespace(app.namespace)
    foundation.attach(nodes[0], app=app)  # a stopped BlockingNode: a Foundation error, not a fabric one
    with pytest.raises(foundation.FoundationError) as stopped:
        foundation.BEAM.Distribution.current_topology(app=app)
    assert stopped.value.error_type == "service_unavailable"


def test_attach_an_async_node_through_its_loop() -> None:
    """An async Node is reached through the loop it runs on: given as ``loop=`` or captured when
    ``attach`` is called from a coroutine on that loop; only the Node's public methods are used."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, name="test-async-node-loop")
    runner.start()
    node = Node(NodeConfig.local(name="anode"))
    by_arg = foundation.FoundationApp()
    in_loop = foundation.FoundationApp()
    try:
        asyncio.run_coroutine_threadsafe(node.start(), loop).result(30)
        foundation.attach(node, app=by_arg, loop=loop)
        assert by_arg.node is node and by_arg.node_name == "anode"
        assert foundation.BEAM.Distribution.current_topology(app=by_arg)["overlay"] == "full-mesh"

        async def attach_here() -> None:
            foundation.attach(node, app=in_loop)
            with pytest.raises(foundation.FoundationError) as own_loop:  # would block the loop it waits on
                foundation.BEAM.Distribution.current_topology(app=in_loop)
            assert own_loop.value.error_type == "service_unavailable"

        asyncio.run_coroutine_threadsafe(attach_here(), loop).result(30)
        topo = foundation.BEAM.Distribution.switch_topology("full-mesh", "hyparview", app=in_loop)
        assert topo["overlay"] == "hyparview"
    finally:
        asyncio.run_coroutine_threadsafe(node.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(30)
        loop.close()
    with pytest.raises(foundation.FoundationError) as closed:
        foundation.BEAM.Distribution.current_topology(app=by_arg)
    assert closed.value.error_type == "service_unavailable"
