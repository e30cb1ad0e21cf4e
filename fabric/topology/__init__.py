"""Topology: cluster-wide overlay switching (epochs, compare-and-set, cooldown)."""

from .coordinator import (
    TopologyConflict,
    TopologyCooldown,
    TopologyCoordinator,
    TopologyError,
    TopologyState,
)

__all__ = ["TopologyConflict", "TopologyCoordinator", "TopologyCooldown", "TopologyError", "TopologyState"]
