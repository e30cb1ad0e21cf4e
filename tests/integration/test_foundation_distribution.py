"""foundation.attach(node) and foundation.BEAM.Distribution.switch_topology on a real cluster."""

from __future__ import annotations

import time

import pytest

import foundation
from fabric import BlockingNode, NodeConfig


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
    finally:
        for node in nodes:
            node.stop()
