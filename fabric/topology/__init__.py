"""Topology: cluster-wide overlay switching (epochs, compare-and-set, cooldown) and the topology manager
(level-triggered reconciliation of wanted and open links)."""

from .coordinator import (
    TopologyConflict,
    TopologyCooldown,
    TopologyCoordinator,
    TopologyError,
    TopologyState,
)
from .manager import LinkPlan, TopologyManager

__all__ = ["LinkPlan", "TopologyConflict", "TopologyCoordinator", "TopologyCooldown", "TopologyError", "TopologyManager",
           "TopologyState"]
